// Package file is the vocabulary Fornax's file servers and their users
// share: the Server interface, the Streamer interface of servers that
// serve streams, and the errors both return. It imports only the
// standard library, so a server (the cluster's /cluster tree, the
// kernel's /dev) need not import the name space it is mounted in, nor
// the 9P server or the shell that read it.
//
// # Streams
//
// A stream is told from a plain file by type, never by an error's text:
// the server implements Streamer, and its OpenStream fails for a name
// that is not a stream with an error wrapping ErrNotStream. A caller
// that gets one, errors.Is(err, ErrNotStream), reads the name with
// ReadFile instead; any other error is the stream's own.
package file

import (
	"context"
	"errors"
	"io/fs"
)

// Server serves a tree of synthetic files.
//
// Names are slash-separated paths. A server mounted in a name space
// (fs/ns) takes them relative to its root, in the form accepted by
// io/fs.ValidPath: "." is the root, "dev/time" a file. The name space,
// itself a Server, takes absolute ones: "/" is the root, "/dev/time" a
// file.
//
// Errors wrap io/fs.ErrNotExist or io/fs.ErrPermission where those fit.
// A directory read as a file, or a file listed as a directory, fails with
// an error wrapping ErrIsDir or ErrNotDir. Other errors are short strings
// a person can act on (`bad ctl message: "jion"`).
//
// ReadFile returns a snapshot: the whole content, made under the server's
// own locking, never half of one update and half of another.
type Server interface {
	// Stat reports whether name exists and whether it is a directory.
	Stat(name string) (isDir bool, err error)
	// ReadDir lists a directory in a stable order; the names of
	// subdirectories end in "/".
	ReadDir(name string) ([]string, error)
	// ReadFile returns the content of a file.
	ReadFile(name string) ([]byte, error)
	// WriteFile hands data to a file's write function.
	WriteFile(name string, data []byte) error
}

// Streamer is what a Server implements, besides Server, to serve files
// that are read as streams, such as /cluster/events: each open has its
// own position, and a read blocks until there is something to read.
//
// OpenStream opens the stream name (a name of the server, as for
// ReadFile). read blocks until it has at least one whole line for p, or
// ctx is done (it then returns ctx.Err()); it returns whole lines only,
// and an error if the next line does not fit in p. close releases the
// stream; a read blocked in it returns. For a name that is not a stream,
// OpenStream fails with an error wrapping ErrNotStream, and ReadFile is
// the way to read it.
type Streamer interface {
	OpenStream(name string) (read func(ctx context.Context, p []byte) (int, error), close func(), err error)
}

// Versioner is what a Server implements, besides Server, to tell a
// file's version without reading it: a number that changes whenever the
// file's content does, so that a client caching by version (9P's
// qid.vers) sees every change. It may change when the content does not
// (a file that changes with time may have a new version at every call),
// never the reverse. Directories, and the files of a Server that is no
// Versioner, have version 0: unknown. A caller that reads a file and
// wants its version asks for the version first: a change between the
// two then costs a client one more read, never a stale cache.
type Versioner interface {
	Version(name string) (uint32, error)
}

// Errors of servers and their users, compared with errors.Is: they may
// arrive wrapped, in an *fs.PathError for one. Their texts are what 9P
// clients and the console show, Plan 9's where Plan 9 has one.
var (
	ErrIsDir  = errors.New("is a directory")
	ErrNotDir = errors.New("not a directory")
	// ErrNotStream is OpenStream's error for a name that is not a
	// stream. It wraps fs.ErrInvalid: the open asked for something the
	// file is not.
	ErrNotStream error = invalidError("not a stream")
)

// invalidError is an error that wraps fs.ErrInvalid under its own text.
type invalidError string

func (e invalidError) Error() string        { return string(e) }
func (e invalidError) Is(target error) bool { return target == fs.ErrInvalid }
