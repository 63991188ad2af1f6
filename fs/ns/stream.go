package ns

import (
	"context"
	"io/fs"

	"fornax/fs/file"
)

// OpenStream opens the stream at the absolute path name on the server
// mounted there, if that server is a file.Streamer. Any other file, a
// directory or a name that does not exist fails with an error wrapping
// file.ErrNotStream, so that a caller reads it with ReadFile and gets
// ReadFile's error; a malformed name fails as in ReadFile.
func (ns *Namespace) OpenStream(name string) (read func(ctx context.Context, p []byte) (int, error), close func(), err error) {
	p, t, err := ns.resolve("open", name)
	if err != nil {
		return nil, nil, err
	}
	s, ok := t.srv.(file.Streamer)
	if t.fileCheck() != nil || !ok {
		return nil, nil, &fs.PathError{Op: "open", Path: p, Err: file.ErrNotStream}
	}
	read, close, err = s.OpenStream(t.rel)
	if err != nil {
		return nil, nil, pathError("open", p, err)
	}
	return read, close, nil
}
