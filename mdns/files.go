package mdns

import (
	"fmt"
	"io/fs"
	"reflect"
	"time"

	"fornax/fs/file"
)

// The Server is a file.Server of three read-only files, mounted by
// fornaxd at /mdns: host (the name held or probed, empty when not
// publishing), conflicts (one line per name lost: time, name, holder,
// name taken instead) and stats (the counters, "name value" lines).
var _ file.Server = (*Server)(nil)

var fileNames = []string{"conflicts", "host", "stats"}

// Stat implements file.Server.
func (s *Server) Stat(name string) (bool, error) {
	if name == "." {
		return true, nil
	}
	for _, f := range fileNames {
		if f == name {
			return false, nil
		}
	}
	return false, &fs.PathError{Op: "stat", Path: name, Err: fs.ErrNotExist}
}

// ReadDir implements file.Server.
func (s *Server) ReadDir(name string) ([]string, error) {
	if isDir, err := s.Stat(name); err != nil || !isDir {
		if err == nil {
			err = &fs.PathError{Op: "readdir", Path: name, Err: file.ErrNotDir}
		}
		return nil, err
	}
	return append([]string(nil), fileNames...), nil
}

// ReadFile implements file.Server.
func (s *Server) ReadFile(name string) ([]byte, error) {
	switch name {
	case ".":
		return nil, &fs.PathError{Op: "read", Path: name, Err: file.ErrIsDir}
	case "host":
		if h := s.Host(); h != "" {
			return []byte(h + "\n"), nil
		}
		return nil, nil
	case "conflicts":
		var b []byte
		for _, c := range s.Conflicts() {
			b = fmt.Appendf(b, "%s %s %v %s\n", c.At.UTC().Format(time.RFC3339), c.Name, c.By, c.Took)
		}
		return b, nil
	case "stats":
		st := s.Stats()
		v := reflect.ValueOf(st)
		var b []byte
		for i := range v.NumField() {
			b = fmt.Appendf(b, "%s %d\n", v.Type().Field(i).Name, v.Field(i).Uint())
		}
		return fmt.Appendf(b, "WriteErrors %d\n", s.WriteErrors()), nil
	}
	return nil, &fs.PathError{Op: "read", Path: name, Err: fs.ErrNotExist}
}

// WriteFile implements file.Server: nothing here is writable.
func (s *Server) WriteFile(name string, _ []byte) error {
	if _, err := s.Stat(name); err != nil {
		return err
	}
	return &fs.PathError{Op: "write", Path: name, Err: fs.ErrPermission}
}
