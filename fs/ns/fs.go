package ns

import (
	"bytes"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"

	"fornax/fs/file"
)

// FS returns a read-only io/fs view of the server s, for code written
// against io/fs (fs.WalkDir, fs.Glob, testing/fstest). Names are s's own:
// io/fs names, "." being the root.
//
// Opening a file reads it: the open file is a snapshot of one ReadFile,
// whatever its reader does. Opening a directory lists it. As in Plan 9
// and in Linux's /proc, the content of a file is made when it is read,
// so sizes are reported as 0 and there are no modification times;
// files have mode 0444 and directories fs.ModeDir|0555. The view does
// not write: WriteFile stays the way to use a writable file.
func FS(s file.Server) fs.FS { return fsView{s} }

// FS returns a read-only io/fs view of the name space (see the function
// FS): the name "dev/time" is the path /dev/time and "." is the root.
func (ns *Namespace) FS() fs.FS { return FS(rooted{ns}) }

// rooted serves the name space under io/fs names.
type rooted struct{ ns *Namespace }

func (r rooted) abs(name string) string {
	if name == "." {
		return "/"
	}
	return "/" + name
}

func (r rooted) Stat(name string) (bool, error)        { return r.ns.Stat(r.abs(name)) }
func (r rooted) ReadDir(name string) ([]string, error) { return r.ns.ReadDir(r.abs(name)) }
func (r rooted) ReadFile(name string) ([]byte, error)  { return r.ns.ReadFile(r.abs(name)) }
func (r rooted) WriteFile(name string, data []byte) error {
	return r.ns.WriteFile(r.abs(name), data)
}

// fsView is FS's file system.
type fsView struct{ s file.Server }

var (
	_ fs.StatFS     = fsView{}
	_ fs.ReadDirFS  = fsView{}
	_ fs.ReadFileFS = fsView{}
)

// check rejects what io/fs does not call a name before s sees it.
func check(op, name string) error {
	if !fs.ValidPath(name) {
		return &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	return nil
}

// Open implements fs.FS.
func (v fsView) Open(name string) (fs.File, error) {
	if err := check("open", name); err != nil {
		return nil, err
	}
	isDir, err := v.s.Stat(name)
	if err != nil {
		return nil, pathError("open", name, err)
	}
	fi := info{name: path.Base(name), dir: isDir}
	if isDir {
		list, err := v.readDir("open", name)
		if err != nil {
			return nil, err
		}
		return &openDir{info: fi, path: name, list: list}, nil
	}
	b, err := v.s.ReadFile(name)
	if err != nil {
		return nil, pathError("open", name, err)
	}
	return &openFile{info: fi, Reader: bytes.NewReader(b)}, nil
}

// Stat implements fs.StatFS.
func (v fsView) Stat(name string) (fs.FileInfo, error) {
	if err := check("stat", name); err != nil {
		return nil, err
	}
	isDir, err := v.s.Stat(name)
	if err != nil {
		return nil, pathError("stat", name, err)
	}
	return info{name: path.Base(name), dir: isDir}, nil
}

// ReadFile implements fs.ReadFileFS.
func (v fsView) ReadFile(name string) ([]byte, error) {
	if err := check("read", name); err != nil {
		return nil, err
	}
	b, err := v.s.ReadFile(name)
	if err != nil {
		return nil, pathError("read", name, err)
	}
	return bytes.Clone(b), nil
}

// ReadDir implements fs.ReadDirFS.
func (v fsView) ReadDir(name string) ([]fs.DirEntry, error) {
	if err := check("readdir", name); err != nil {
		return nil, err
	}
	return v.readDir("readdir", name)
}

// readDir lists a directory as io/fs wants it: sorted by name, without
// the trailing "/" of subdirectories.
func (v fsView) readDir(op, name string) ([]fs.DirEntry, error) {
	names, err := v.s.ReadDir(name)
	if err != nil {
		return nil, pathError(op, name, err)
	}
	list := make([]fs.DirEntry, len(names))
	for i, n := range names {
		n, isDir := strings.CutSuffix(n, "/")
		list[i] = info{name: n, dir: isDir}
	}
	slices.SortFunc(list, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return list, nil
}

// info is both the fs.FileInfo and the fs.DirEntry of a name.
type info struct {
	name string
	dir  bool
}

func (i info) Name() string               { return i.name }
func (i info) Size() int64                { return 0 }
func (i info) ModTime() time.Time         { return time.Time{} }
func (i info) IsDir() bool                { return i.dir }
func (i info) Sys() any                   { return nil }
func (i info) Info() (fs.FileInfo, error) { return i, nil }
func (i info) Type() fs.FileMode          { return i.Mode().Type() }
func (i info) String() string             { return fs.FormatFileInfo(i) }

func (i info) Mode() fs.FileMode {
	if i.dir {
		return fs.ModeDir | 0o555
	}
	return 0o444
}

// openFile is an open file: a reader of the snapshot Open read.
type openFile struct {
	info
	*bytes.Reader
}

func (f *openFile) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *openFile) Close() error               { return nil }

// openDir is an open directory: the listing Open made, read in turn.
type openDir struct {
	info
	path string
	list []fs.DirEntry
	off  int
}

func (d *openDir) Stat() (fs.FileInfo, error) { return d.info, nil }
func (d *openDir) Close() error               { return nil }

func (d *openDir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.path, Err: file.ErrIsDir}
}

// ReadDir implements fs.ReadDirFile.
func (d *openDir) ReadDir(n int) ([]fs.DirEntry, error) {
	rest := d.list[d.off:]
	if n > 0 && len(rest) == 0 {
		return nil, io.EOF
	}
	if n > 0 && n < len(rest) {
		rest = rest[:n]
	}
	d.off += len(rest)
	return slices.Clone(rest), nil
}

var _ fs.ReadDirFile = (*openDir)(nil)
