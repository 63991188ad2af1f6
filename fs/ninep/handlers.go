package ninep

import (
	"encoding/binary"
	"errors"
	"hash/fnv"
	"io"
	"path"
	"strings"
	"time"

	"fornax/fs/file"
)

// Errors sent to clients, besides fs/file's ErrIsDir and ErrNotDir; the
// texts are Plan 9's, which Linux's v9fs maps to errno values.
var (
	errNoFid      = errors.New("unknown fid")
	errFidInUse   = errors.New("fid already in use")
	errTooMany    = errors.New("too many fids")
	errNotExist   = errors.New("file does not exist")
	errPerm       = errors.New("permission denied")
	errOpen       = errors.New("fid is open")
	errNotOpen    = errors.New("fid not open for that")
	errBadName    = errors.New("bad name in walk")
	errNoAuth     = errors.New("authentication not required")
	errVersion    = errors.New("Tversion first")
	errMsize      = errors.New("msize too small")
	errTagInUse   = errors.New("tag in use")
	errBusy       = errors.New("too many pending reads")
	errSnapshots  = errors.New("too much open: clunk some fids")
	errDirOffset  = errors.New("bad offset in directory read")
	errDirCount   = errors.New("count too small for a directory entry")
	errWstat      = errors.New("wstat prohibited")
	errBadMessage = errors.New("unexpected message type")
	errIntr       = errors.New("interrupted")
	errBadStat    = errors.New("malformed stat buffer")
)

// handle answers one request. Stream reads answer later, from their
// own goroutine.
func (c *conn) handle(f *Fcall) error {
	c.s.Stats.Requests.Add(1)
	start := time.Now()
	defer func() {
		// Over its budget, the connection waits before its next request.
		now := time.Now()
		if wait := c.budget.charge(now, now.Sub(start), shareOf(c.s.users.used(c, now))); wait > 0 {
			t := time.NewTimer(wait)
			defer t.Stop()
			select {
			case <-t.C:
			case <-c.ctx.Done():
			}
		}
	}()
	if f.Type == Tversion {
		return c.send(c.version(f))
	}
	if c.msize == 0 {
		return c.send(c.rerror(f.Tag, errVersion))
	}
	c.mu.Lock()
	_, busy := c.pending[f.Tag]
	c.mu.Unlock()
	if busy {
		return c.send(c.rerror(f.Tag, errTagInUse))
	}
	var r *Fcall
	var err error
	switch f.Type {
	case Tauth:
		err = errNoAuth
	case Tattach:
		r, err = c.attach(f)
	case Tflush:
		r = c.flush(f)
	case Twalk:
		r, err = c.walk(f)
	case Topen:
		r, err = c.open(f)
	case Tcreate:
		err = c.create(f)
	case Tread:
		r, err = c.read(f)
	case Twrite:
		r, err = c.write(f)
	case Tclunk:
		err = c.clunk(f.Fid)
		r = &Fcall{Type: Rclunk}
	case Tremove:
		if err = c.clunk(f.Fid); err == nil {
			err = errPerm
		}
	case Tstat:
		r, err = c.stat(f)
	case Twstat:
		r, err = c.wstat(f)
	default:
		err = errBadMessage
	}
	if err != nil {
		return c.send(c.rerror(f.Tag, errors.New(ename(err))))
	}
	if r == nil {
		return nil // answered later
	}
	r.Tag = f.Tag
	return c.send(r)
}

// version starts a session afresh (version(5)).
func (c *conn) version(f *Fcall) *Fcall {
	if f.Msize < MinMsize {
		return c.rerror(f.Tag, errMsize)
	}
	c.abortAll()
	c.clunkAll()
	r := &Fcall{Type: Rversion, Tag: f.Tag, Msize: min(f.Msize, c.s.cfg.MaxMsize), Version: "unknown"}
	c.msize = 0
	if strings.HasPrefix(f.Version, "9P2000") {
		r.Version = "9P2000"
		c.msize = r.Msize
	}
	return r
}

func (c *conn) attach(f *Fcall) (*Fcall, error) {
	if f.Afid != NoFid {
		return nil, errNoAuth
	}
	if err := c.newFid(f.Fid); err != nil {
		return nil, err
	}
	q, _ := c.qidOf("/", true)
	c.fids[f.Fid] = &fid{path: "/", qid: q}
	return &Fcall{Type: Rattach, Qid: q}, nil
}

// qidOf is the qid of p: its path a hash of the name, its version the
// tree's (file.Versioner), 0 for a directory or a tree without versions.
func (c *conn) qidOf(p string, isDir bool) (Qid, error) {
	h := fnv.New64a()
	io.WriteString(h, p)
	q := Qid{Path: h.Sum64()}
	if isDir {
		q.Type = QTDIR
		return q, nil
	}
	if v, ok := c.s.fs.(file.Versioner); ok {
		vers, err := v.Version(p)
		if err != nil {
			return Qid{}, err
		}
		q.Vers = vers
	}
	return q, nil
}

func join(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}

func (c *conn) walk(f *Fcall) (*Fcall, error) {
	from, ok := c.fids[f.Fid]
	if !ok {
		return nil, errNoFid
	}
	if from.open {
		return nil, errOpen
	}
	if f.Newfid != f.Fid {
		if err := c.newFid(f.Newfid); err != nil {
			return nil, err
		}
	}
	p, q := from.path, from.qid
	qids := make([]Qid, 0, len(f.Wname))
	for i, name := range f.Wname {
		var err error
		switch {
		case q.Type&QTDIR == 0:
			err = file.ErrNotDir
		case name == "" || name == "." || strings.Contains(name, "/"):
			err = errBadName
		}
		np := path.Dir(p)
		if name != ".." {
			np = join(p, name)
		}
		var isDir bool
		var nq Qid
		if err == nil {
			isDir, err = c.s.fs.Stat(np)
		}
		if err == nil {
			nq, err = c.qidOf(np, isDir)
		}
		if err != nil {
			if i == 0 {
				return nil, err
			}
			break
		}
		p, q = np, nq
		qids = append(qids, q)
	}
	if len(qids) == len(f.Wname) {
		if f.Newfid == f.Fid {
			from.path, from.qid = p, q
		} else {
			c.fids[f.Newfid] = &fid{path: p, qid: q}
		}
	}
	return &Fcall{Type: Rwalk, Wqid: qids}, nil
}

// writable reports whether clients may write the file p.
func (c *conn) writable(p string) bool {
	if !c.s.cfg.Writable {
		return false
	}
	if w, ok := c.s.fs.(WritableFS); ok {
		return w.Writable(p)
	}
	return path.Base(p) == "ctl"
}

// open opens a fid as open(5) has it: OTRUNC needs write permission,
// and neither it nor writing is allowed on a directory; no file is
// executable (mode 0444 or 0664), so OEXEC opens only directories;
// ORCLOSE is refused, as nothing may be removed.
func (c *conn) open(f *Fcall) (*Fcall, error) {
	fd, ok := c.fids[f.Fid]
	if !ok {
		return nil, errNoFid
	}
	if fd.open {
		return nil, errOpen
	}
	if f.Mode&ORCLOSE != 0 {
		return nil, errPerm
	}
	mode := f.Mode & 3
	reading := mode != OWRITE
	writing := mode == OWRITE || mode == ORDWR || f.Mode&OTRUNC != 0
	if fd.qid.Type&QTDIR != 0 {
		if writing {
			return nil, file.ErrIsDir
		}
		return c.openDir(fd, mode)
	}
	if mode == OEXEC || writing && !c.writable(fd.path) {
		return nil, errPerm
	}
	// The version first, then the content: a change between the two
	// makes a caching client read once more, never keep old content
	// under a new version (file.Versioner).
	q, err := c.qidOf(fd.path, false)
	if err != nil {
		return nil, err
	}
	fd.qid = q
	r := &Fcall{Type: Ropen, Qid: q, Iounit: c.msize - IOHdrSz}
	if reading {
		if err := c.openStream(fd); err != nil {
			return nil, err
		}
	}
	if fd.st != nil || !reading { // a stream, or nothing will read a snapshot: take none
		fd.open, fd.mode = true, mode
		return r, nil
	}
	data, err := c.s.fs.ReadFile(fd.path)
	if err != nil {
		return nil, err
	}
	if c.snap+len(data) > c.s.cfg.MaxSnapshot {
		return nil, errSnapshots
	}
	c.hold(fd, len(data))
	fd.data, fd.open, fd.mode = data, true, mode
	return r, nil
}

// openDir opens a directory: its stat entries, made from names alone,
// with no file read.
func (c *conn) openDir(fd *fid, mode uint8) (*Fcall, error) {
	names, err := c.s.fs.ReadDir(fd.path)
	if err != nil {
		return nil, err
	}
	var dir []byte
	for _, n := range names {
		n, isDir := strings.CutSuffix(n, "/")
		d, err := c.dirOf(join(fd.path, n), isDir)
		if err != nil {
			continue // gone since the listing
		}
		dir = d.Append(dir)
		if c.snap+len(dir) > c.s.cfg.MaxSnapshot {
			return nil, errSnapshots
		}
	}
	c.hold(fd, len(dir))
	fd.dir, fd.open, fd.mode = dir, true, mode
	return &Fcall{Type: Ropen, Qid: fd.qid, Iounit: c.msize - IOHdrSz}, nil
}

// dirOf makes the stat entry of p without reading it: every file's
// length is 0, as in Plan 9's /proc, since a synthetic file's content is
// made when it is read (doc.go, "Semantics").
func (c *conn) dirOf(p string, isDir bool) (Dir, error) {
	q, err := c.qidOf(p, isDir)
	if err != nil {
		return Dir{}, err
	}
	now := uint32(c.s.cfg.Now().Unix())
	d := Dir{Qid: q, Atime: now, Mtime: now, Name: path.Base(p), Uid: c.s.cfg.Owner, Gid: c.s.cfg.Owner, Muid: c.s.cfg.Owner}
	switch {
	case isDir:
		d.Mode = DMDIR | 0o555
	case c.writable(p):
		d.Mode = 0o664
	default:
		d.Mode = 0o444
	}
	return d, nil
}

// create refuses, as the tree has no room for new files; a fid that is
// not there is the first error.
func (c *conn) create(f *Fcall) error {
	fd, ok := c.fids[f.Fid]
	switch {
	case !ok:
		return errNoFid
	case fd.open:
		return errOpen
	case fd.qid.Type&QTDIR == 0:
		return file.ErrNotDir
	}
	return errPerm
}

func (c *conn) read(f *Fcall) (*Fcall, error) {
	fd, ok := c.fids[f.Fid]
	if !ok {
		return nil, errNoFid
	}
	if !fd.open || fd.mode == OWRITE {
		return nil, errNotOpen
	}
	count := min(f.Count, c.msize-IOHdrSz)
	switch {
	case fd.st != nil:
		return nil, c.streamRead(f.Tag, fd.st, int(count))
	case fd.qid.Type&QTDIR != 0:
		switch f.Offset {
		case 0:
			fd.dirAt, fd.dirPos = 0, 0
		case fd.dirAt:
		default:
			return nil, errDirOffset
		}
		start, end := fd.dirPos, fd.dirPos
		for end < len(fd.dir) {
			n := 2 + int(binary.LittleEndian.Uint16(fd.dir[end:]))
			if end+n-start > int(count) {
				break
			}
			end += n
		}
		if start == end && end < len(fd.dir) {
			return nil, errDirCount
		}
		fd.dirAt += uint64(end - start)
		fd.dirPos = end
		return &Fcall{Type: Rread, Data: fd.dir[start:end]}, nil
	}
	if f.Offset >= uint64(len(fd.data)) {
		return &Fcall{Type: Rread}, nil
	}
	end := min(f.Offset+uint64(count), uint64(len(fd.data)))
	return &Fcall{Type: Rread, Data: fd.data[f.Offset:end]}, nil
}

func (c *conn) write(f *Fcall) (*Fcall, error) {
	fd, ok := c.fids[f.Fid]
	if !ok {
		return nil, errNoFid
	}
	if !fd.open || (fd.mode != OWRITE && fd.mode != ORDWR) {
		return nil, errNotOpen
	}
	if err := c.s.fs.WriteFile(fd.path, f.Data); err != nil {
		return nil, err
	}
	return &Fcall{Type: Rwrite, Count: uint32(len(f.Data))}, nil
}

func (c *conn) stat(f *Fcall) (*Fcall, error) {
	fd, ok := c.fids[f.Fid]
	if !ok {
		return nil, errNoFid
	}
	isDir, err := c.s.fs.Stat(fd.path)
	if err != nil {
		return nil, err
	}
	d, err := c.dirOf(fd.path, isDir)
	if err != nil {
		return nil, err
	}
	if fd.path == "/" {
		d.Name = "/"
	}
	return &Fcall{Type: Rstat, Stat: d.Append(nil)}, nil
}

// wstat accepts only what changes nothing: a "sync" (all fields "don't
// touch", wstat(5)), or a truncation of a writable file, which Linux
// sends before writing with O_TRUNC.
func (c *conn) wstat(f *Fcall) (*Fcall, error) {
	fd, ok := c.fids[f.Fid]
	if !ok {
		return nil, errNoFid
	}
	_, _, d, err := UnpackDir(f.Stat)
	if err != nil {
		return nil, errBadStat
	}
	const none32, none64 = ^uint32(0), ^uint64(0)
	keep := d.Mode == none32 && d.Name == "" && d.Uid == "" && d.Gid == "" && d.Muid == ""
	times := d.Atime == none32 && d.Mtime == none32
	switch {
	case keep && times && d.Length == none64: // a no-op, as sync(2) sends
	case keep && c.writable(fd.path) && (d.Length == 0 || d.Length == none64):
		// A truncate, and the times Linux sets with it on an O_TRUNC
		// open (`echo leave > ctl`): meaningless for a ctl file, and
		// ignored there.
	default:
		return nil, errWstat
	}
	return &Fcall{Type: Rwstat}, nil
}
