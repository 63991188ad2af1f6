// Package ns is Fornax's name space: a Plan 9 style tree of synthetic
// files into which file servers are mounted. It is plain Go and knows no
// particular server: anything with the four methods of file.Server
// (fs/file) can be mounted, so servers (the cluster package, for one)
// need not import it.
package ns

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	"sync"

	"fornax/fs/file"
)

// Errors for malformed names. Both wrap fs.ErrInvalid.
var (
	errNotAbs = invalidError("not an absolute path")
	errEscape = invalidError("path escapes the root")
)

type invalidError string

func (e invalidError) Error() string        { return string(e) }
func (e invalidError) Is(target error) bool { return target == fs.ErrInvalid }

// Namespace is a tree of mounted servers addressed by absolute paths. A
// path is served by the server mounted on its longest mounted prefix;
// directories leading to mount points exist even where no server provides
// them, so "/" lists every top-level mount point.
//
// A Namespace is itself a file.Server and file.Streamer, of absolute
// names. Errors are *fs.PathError values carrying the absolute path. A
// Namespace is safe for concurrent use; servers are called without its
// lock held.
type Namespace struct {
	mu     sync.RWMutex
	mounts map[string]file.Server // by cleaned absolute path
}

// New returns an empty name space.
func New() *Namespace {
	return &Namespace{mounts: make(map[string]file.Server)}
}

// clean validates an absolute path and returns it in canonical form.
// Lexical ".." is allowed as long as it stays below the root: there are no
// symbolic links to make it mean anything else.
func clean(p string) (string, error) {
	if !strings.HasPrefix(p, "/") {
		return "", errNotAbs
	}
	depth := 0
	for elem := range strings.SplitSeq(p, "/") {
		switch elem {
		case "", ".":
		case "..":
			if depth--; depth < 0 {
				return "", errEscape
			}
		default:
			depth++
		}
	}
	return path.Clean(p), nil
}

// Mount attaches s at the absolute path mnt. Mounting on a path that
// already has a server is an error; mounting below one is not (the deeper
// mount wins for paths under it).
func (ns *Namespace) Mount(mnt string, s file.Server) error {
	p, err := clean(mnt)
	if err != nil {
		return &fs.PathError{Op: "mount", Path: mnt, Err: err}
	}
	if s == nil {
		return &fs.PathError{Op: "mount", Path: mnt, Err: errors.New("nil server")}
	}
	ns.mu.Lock()
	defer ns.mu.Unlock()
	if _, ok := ns.mounts[p]; ok {
		return &fs.PathError{Op: "mount", Path: p, Err: fmt.Errorf("already mounted: %w", fs.ErrExist)}
	}
	ns.mounts[p] = s
	return nil
}

// Unmount detaches the server mounted at mnt.
func (ns *Namespace) Unmount(mnt string) error {
	p, err := clean(mnt)
	if err != nil {
		return &fs.PathError{Op: "unmount", Path: mnt, Err: err}
	}
	ns.mu.Lock()
	defer ns.mu.Unlock()
	if _, ok := ns.mounts[p]; !ok {
		return &fs.PathError{Op: "unmount", Path: p, Err: fmt.Errorf("not mounted: %w", fs.ErrNotExist)}
	}
	delete(ns.mounts, p)
	return nil
}

// target is what a path resolves to.
type target struct {
	srv   file.Server // serving server, or nil
	rel   string      // name of the path within srv
	synth bool        // a directory leading to mount points
	below []string    // names of mount points or their ancestors directly below the path
}

func (ns *Namespace) resolve(op, name string) (string, target, error) {
	p, err := clean(name)
	if err != nil {
		return "", target{}, &fs.PathError{Op: op, Path: name, Err: err}
	}
	ns.mu.RLock()
	defer ns.mu.RUnlock()
	// The root always exists, if only to list nothing.
	t := target{synth: p == "/"}
	prefix := p + "/"
	if p == "/" {
		prefix = "/"
	}
	for m := range ns.mounts {
		if rest, ok := strings.CutPrefix(m, prefix); ok && rest != "" {
			t.synth = true
			elem, _, _ := strings.Cut(rest, "/")
			t.below = append(t.below, elem+"/")
		}
	}
	slices.Sort(t.below)
	t.below = slices.Compact(t.below)
	for m := p; ; m = path.Dir(m) {
		if s, ok := ns.mounts[m]; ok {
			t.srv = s
			switch {
			case m == p:
				t.rel = "."
			case m == "/":
				t.rel = p[1:]
			default:
				t.rel = p[len(m)+1:]
			}
			break
		}
		if m == "/" {
			break
		}
	}
	return p, t, nil
}

// pathError wraps a server's error with the absolute path, replacing any
// server-relative path the server put in.
func pathError(op, p string, err error) error {
	if pe, ok := errors.AsType[*fs.PathError](err); ok {
		err = pe.Err
	}
	return &fs.PathError{Op: op, Path: p, Err: err}
}

// Stat reports whether the file at the absolute path name exists and
// whether it is a directory.
func (ns *Namespace) Stat(name string) (isDir bool, err error) {
	p, t, err := ns.resolve("stat", name)
	if err != nil {
		return false, err
	}
	if t.synth || t.rel == "." {
		return true, nil
	}
	if t.srv == nil {
		return false, &fs.PathError{Op: "stat", Path: p, Err: fs.ErrNotExist}
	}
	isDir, err = t.srv.Stat(t.rel)
	if err != nil {
		return false, pathError("stat", p, err)
	}
	return isDir, nil
}

// ReadDir lists the directory at the absolute path name: the server's
// entries in its order, then mount points below it that the server does not
// list, sorted. Subdirectory names end in "/".
func (ns *Namespace) ReadDir(name string) ([]string, error) {
	p, t, err := ns.resolve("readdir", name)
	if err != nil {
		return nil, err
	}
	if t.srv == nil {
		if !t.synth {
			return nil, &fs.PathError{Op: "readdir", Path: p, Err: fs.ErrNotExist}
		}
		return t.below, nil
	}
	names, err := t.srv.ReadDir(t.rel)
	if err != nil {
		// A file of the server hidden under a mount point is a directory.
		if !t.synth {
			return nil, pathError("readdir", p, err)
		}
		names = nil
	}
	if len(t.below) == 0 {
		return names, nil
	}
	// A mount point shadows a server entry of the same name. The server
	// may keep the slice it returned: work on a copy.
	names = slices.DeleteFunc(slices.Clone(names), func(n string) bool {
		_, found := slices.BinarySearch(t.below, strings.TrimSuffix(n, "/")+"/")
		return found
	})
	return append(names, t.below...), nil
}

// ReadFile returns the content of the file at the absolute path name.
func (ns *Namespace) ReadFile(name string) ([]byte, error) {
	p, t, err := ns.resolve("read", name)
	if err != nil {
		return nil, err
	}
	if err := t.fileCheck(); err != nil {
		return nil, &fs.PathError{Op: "read", Path: p, Err: err}
	}
	b, err := t.srv.ReadFile(t.rel)
	if err != nil {
		return nil, pathError("read", p, err)
	}
	return b, nil
}

// WriteFile hands data to the file at the absolute path name.
func (ns *Namespace) WriteFile(name string, data []byte) error {
	p, t, err := ns.resolve("write", name)
	if err != nil {
		return err
	}
	if err := t.fileCheck(); err != nil {
		return &fs.PathError{Op: "write", Path: p, Err: err}
	}
	if err := t.srv.WriteFile(t.rel, data); err != nil {
		return pathError("write", p, err)
	}
	return nil
}

// fileCheck rejects targets that cannot be files before a server sees them.
func (t target) fileCheck() error {
	switch {
	case t.synth || t.rel == ".":
		return file.ErrIsDir
	case t.srv == nil:
		return fs.ErrNotExist
	}
	return nil
}
