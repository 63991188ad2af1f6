package ns

import (
	"context"
	"errors"
	"io/fs"
)

// Streamer is what a Server implements, besides Server, to serve files
// that are read as streams, such as /cluster/events: each open has its
// own position, and a read blocks until there is something to read.
//
// OpenStream opens the stream name (a name of the server, as for
// ReadFile). read blocks until it has at least one whole line for p, or
// ctx is done (it then returns ctx.Err()); it returns whole lines only,
// and an error if the next line does not fit in p. close releases the
// stream; a read blocked in it returns. For a name that is not a stream,
// OpenStream fails with an error wrapping fs.ErrInvalid, and ReadFile is
// the way to read it.
type Streamer interface {
	OpenStream(name string) (read func(ctx context.Context, p []byte) (int, error), close func(), err error)
}

// errNotStream is OpenStream's error for a file that is not a stream.
var errNotStream = invalidError("not a stream")

// OpenStream opens the stream at the absolute path name on the server
// mounted there, if that server is a Streamer (see Streamer). Any other
// path fails with an error wrapping fs.ErrInvalid.
func (ns *Namespace) OpenStream(name string) (read func(ctx context.Context, p []byte) (int, error), close func(), err error) {
	p, t, err := ns.resolve("open", name)
	if err != nil {
		return nil, nil, err
	}
	s, ok := t.srv.(Streamer)
	if t.fileCheck() != nil || !ok {
		return nil, nil, &fs.PathError{Op: "open", Path: p, Err: errNotStream}
	}
	read, close, err = s.OpenStream(t.rel)
	if errors.Is(err, fs.ErrInvalid) {
		err = errNotStream // one text for every server's
	}
	if err != nil {
		return nil, nil, pathError("open", p, err)
	}
	return read, close, nil
}
