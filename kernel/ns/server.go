// Package ns is Fornax's name space: a Plan 9 style tree of synthetic
// files into which file servers are mounted. It is plain Go and knows no
// particular server: anything with the four methods of Server can be
// mounted, so servers (the cluster package, for one) need not import it.
package ns

// Server serves a tree of synthetic files.
//
// Names are slash-separated paths relative to the server's root, in the
// form accepted by io/fs.ValidPath: "." is the root, "dev/time" a file.
// Errors wrap io/fs.ErrNotExist or io/fs.ErrPermission where those fit.
// A directory read as a file, or a file listed as a directory, fails with
// an error that reads "is a directory" or "not a directory" (this
// package's ErrIsDir and ErrNotDir for its own trees; a server that does
// not import ns makes its own of the same text). Other errors are short
// strings a person can act on (`bad ctl message: "jion"`).
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
