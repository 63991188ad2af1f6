package ns

import (
	"bytes"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"sync"

	"fornax/fs/file"
)

// File is a synthetic file in a Dir, defined by the functions that produce
// and consume its content.
//
// Read returns the whole content. It may return a slice it keeps, provided
// it never modifies that slice afterwards (replace it instead): the caller
// gets a copy. A nil Read makes the file write-only.
//
// Write receives the whole of one write, as a copy the function may keep.
// Text written by the shell's echo ends in a newline; use TrimNewline where
// that is not wanted. A nil Write makes the file read-only.
type File struct {
	Read  func() ([]byte, error)
	Write func([]byte) error
}

// Dir is a directory of Files and subdirectories built in code, for
// servers whose tree is fixed or grows only. It implements file.Server
// and is safe for concurrent use, including adding entries while others
// read.
type Dir struct {
	mu      *sync.RWMutex  // shared by the whole tree, so a walk sees one state
	entries map[string]any // File or *Dir
}

// NewDir returns an empty root directory.
func NewDir() *Dir {
	return &Dir{mu: new(sync.RWMutex), entries: make(map[string]any)}
}

// File adds or replaces the file name in d and returns d, so calls chain.
// It panics if name is not a single path element or names a directory:
// trees are built in code, so either is a programming error.
func (d *Dir) File(name string, f File) *Dir {
	checkName(name)
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.entries[name].(*Dir); ok {
		panic(fmt.Sprintf("ns: File(%q): a directory has that name", name))
	}
	d.entries[name] = f
	return d
}

// Dir returns the subdirectory name of d, creating it if needed. It panics
// if name is not a single path element or names a file.
func (d *Dir) Dir(name string) *Dir {
	checkName(name)
	d.mu.Lock()
	defer d.mu.Unlock()
	switch e := d.entries[name].(type) {
	case *Dir:
		return e
	case File:
		panic(fmt.Sprintf("ns: Dir(%q): a file has that name", name))
	}
	sub := &Dir{mu: d.mu, entries: make(map[string]any)}
	d.entries[name] = sub
	return sub
}

func checkName(name string) {
	if name == "" || name == "." || name == ".." || strings.Contains(name, "/") {
		panic(fmt.Sprintf("ns: bad entry name %q", name))
	}
}

// lookup walks to name. The caller holds d.mu.
func (d *Dir) lookup(name string) (any, error) {
	if !fs.ValidPath(name) {
		return nil, fs.ErrInvalid
	}
	var e any = d
	if name == "." {
		return e, nil
	}
	for elem := range strings.SplitSeq(name, "/") {
		dir, ok := e.(*Dir)
		if !ok {
			return nil, file.ErrNotDir
		}
		if e, ok = dir.entries[elem]; !ok {
			return nil, fs.ErrNotExist
		}
	}
	return e, nil
}

// Stat implements file.Server.
func (d *Dir) Stat(name string) (bool, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	e, err := d.lookup(name)
	if err != nil {
		return false, err
	}
	_, isDir := e.(*Dir)
	return isDir, nil
}

// ReadDir implements file.Server. Entries are sorted by name.
func (d *Dir) ReadDir(name string) ([]string, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	e, err := d.lookup(name)
	if err != nil {
		return nil, err
	}
	dir, ok := e.(*Dir)
	if !ok {
		return nil, file.ErrNotDir
	}
	names := make([]string, 0, len(dir.entries))
	for n, e := range dir.entries {
		if _, ok := e.(*Dir); ok {
			n += "/"
		}
		names = append(names, n)
	}
	slices.Sort(names)
	return names, nil
}

// file finds the file name, releasing the lock before the caller runs its
// functions: they may be slow or use the tree themselves.
func (d *Dir) file(name string) (File, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	e, err := d.lookup(name)
	if err != nil {
		return File{}, err
	}
	f, ok := e.(File)
	if !ok {
		return File{}, file.ErrIsDir
	}
	return f, nil
}

// ReadFile implements file.Server. The result is a copy of what one call
// of the file's Read returned.
func (d *Dir) ReadFile(name string) ([]byte, error) {
	f, err := d.file(name)
	if err != nil {
		return nil, err
	}
	if f.Read == nil {
		return nil, fs.ErrPermission
	}
	b, err := f.Read()
	if err != nil {
		return nil, err
	}
	return bytes.Clone(b), nil
}

// WriteFile implements file.Server.
func (d *Dir) WriteFile(name string, data []byte) error {
	f, err := d.file(name)
	if err != nil {
		return err
	}
	if f.Write == nil {
		return fs.ErrPermission
	}
	return f.Write(bytes.Clone(data))
}

// TrimNewline returns b without one trailing newline, for write functions
// fed by echo, which ends its output with one as Plan 9's does.
func TrimNewline(b []byte) []byte {
	return bytes.TrimSuffix(b, []byte("\n"))
}
