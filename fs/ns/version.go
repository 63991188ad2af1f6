package ns

import (
	"io/fs"

	"fornax/fs/file"
)

var _ file.Versioner = (*Namespace)(nil)

// Version tells the version of the file at the absolute path name
// (file.Versioner) from the server mounted there, if that server is a
// file.Versioner; a directory, or a file of any other server, has
// version 0. A name that does not exist is an error, as in Stat.
func (ns *Namespace) Version(name string) (uint32, error) {
	p, t, err := ns.resolve("version", name)
	if err != nil {
		return 0, err
	}
	if t.synth || t.rel == "." {
		return 0, nil
	}
	if t.srv == nil {
		return 0, &fs.PathError{Op: "version", Path: p, Err: fs.ErrNotExist}
	}
	v, ok := t.srv.(file.Versioner)
	if !ok {
		if _, err := t.srv.Stat(t.rel); err != nil {
			return 0, pathError("version", p, err)
		}
		return 0, nil
	}
	vers, err := v.Version(t.rel)
	if err != nil {
		return 0, pathError("version", p, err)
	}
	return vers, nil
}
