package ninep

import (
	"context"
	"encoding/binary"
	"errors"
	"hash/fnv"
	"io"
	"io/fs"
	"net"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// FS is the tree the server serves; kernel/ns.Namespace is one. Names
// are absolute: "/" is the root, "/dev/time" a file.
type FS interface {
	// Stat reports whether name exists and whether it is a directory.
	Stat(name string) (isDir bool, err error)
	// ReadDir lists a directory; subdirectories' names end in "/".
	ReadDir(name string) ([]string, error)
	// ReadFile returns a snapshot of a file's content.
	ReadFile(name string) ([]byte, error)
	// WriteFile hands data to a file.
	WriteFile(name string, data []byte) error
}

// StreamFS is an FS some of whose files are streams: reads that block
// until there is something to read. OpenStream returns, for such a file,
// a read function called once per Tread with a context that ends when
// the request is flushed, the fid clunked or the connection closed, and
// a close function called once when the fid is gone and no read runs.
// For other files it returns an error wrapping fs.ErrInvalid.
type StreamFS interface {
	OpenStream(name string) (read func(ctx context.Context, p []byte) (int, error), close func(), err error)
}

// WritableFS is an FS that tells which of its files take writes. An FS
// without the method has its files named "ctl" writable.
type WritableFS interface {
	Writable(name string) bool
}

// Defaults of Config.
const (
	MaxConns     = 16
	MaxFids      = 256
	MaxMsize     = 64 << 10
	MinMsize     = 256
	MaxPending   = 4
	MaxSnapshot  = 256 << 10
	IdleTimeout  = 10 * time.Minute
	MsgTimeout   = 10 * time.Second
	WriteTimeout = 10 * time.Second
	Owner        = "fornax"
)

// maxEname bounds the text of an Rerror.
const maxEname = 200

// Config sets up a Server; zero fields take the defaults above.
type Config struct {
	// Writable lets clients write the FS's writable files. Off, every
	// open for writing is refused.
	Writable bool

	MaxConns     int           // connections served at once; more are closed
	MaxFids      int           // fids per connection
	MaxMsize     uint32        // largest msize granted (at most 64 KiB)
	MaxPending   int           // stream reads waiting per connection
	MaxSnapshot  int           // bytes of open snapshots per connection
	IdleTimeout  time.Duration // silence, with nothing pending, before a close
	MsgTimeout   time.Duration // time to send the rest of a started message
	WriteTimeout time.Duration // time a client has to take a reply
	Owner        string        // uid, gid and muid of every file

	// Now dates stat entries (default time.Now).
	Now func() time.Time
}

func (c *Config) setDefaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.MaxConns, MaxConns)
	def(&c.MaxFids, MaxFids)
	def(&c.MaxPending, MaxPending)
	def(&c.MaxSnapshot, MaxSnapshot)
	if c.MaxMsize < MinMsize || c.MaxMsize > MaxMsize {
		c.MaxMsize = MaxMsize
	}
	defDur(&c.IdleTimeout, IdleTimeout)
	defDur(&c.MsgTimeout, MsgTimeout)
	defDur(&c.WriteTimeout, WriteTimeout)
	if c.Owner == "" {
		c.Owner = Owner
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Stats counts what a Server did.
type Stats struct {
	Conns    atomic.Int64  // connections being served
	Accepted atomic.Uint64 // connections served, in all
	Refused  atomic.Uint64 // connections closed at once: MaxConns reached
	Errors   atomic.Uint64 // Rerror replies
}

// Server serves an FS over 9P2000.
type Server struct {
	Stats Stats

	fs    FS
	cfg   Config
	slots chan struct{}
}

// New returns a server of fsys configured by cfg.
func New(fsys FS, cfg Config) *Server {
	cfg.setDefaults()
	return &Server{fs: fsys, cfg: cfg, slots: make(chan struct{}, cfg.MaxConns)}
}

// Serve serves each connection l accepts, while there are fewer than
// MaxConns; others are closed at once. It returns l's error.
func (s *Server) Serve(l net.Listener) error {
	for {
		c, err := l.Accept()
		if err != nil {
			return err
		}
		select {
		case s.slots <- struct{}{}:
		default:
			s.Stats.Refused.Add(1)
			c.Close()
			continue
		}
		go func() {
			defer func() { <-s.slots }()
			s.ServeConn(c)
		}()
	}
}

// ServeConn serves one connection until it ends or breaks a rule, then
// closes it. It returns once nothing of the connection runs any more.
func (s *Server) ServeConn(nc net.Conn) {
	s.Stats.Conns.Add(1)
	s.Stats.Accepted.Add(1)
	defer s.Stats.Conns.Add(-1)
	ctx, cancel := context.WithCancel(context.Background())
	c := &conn{s: s, nc: nc, ctx: ctx, cancel: cancel, fids: make(map[uint32]*fid), pending: make(map[uint16]*request)}
	c.serve()
	cancel()
	nc.Close()
	c.clunkAll()
	c.wg.Wait()
}

// conn is one client's session.
type conn struct {
	s      *Server
	nc     net.Conn
	ctx    context.Context // ends with the connection
	cancel context.CancelFunc
	msize  uint32 // 0 until Tversion

	// Only the reading goroutine uses these.
	fids map[uint32]*fid
	snap int // bytes of the open fids' snapshots
	rbuf []byte

	wmu  sync.Mutex // serialises replies; taken before mu, never after
	wbuf []byte
	// lastReply is when the last reply went out (UnixNano): idleness
	// counts from it too, so a client whose stream read was answered
	// after a long wait has IdleTimeout to send its next request.
	lastReply atomic.Int64

	mu      sync.Mutex // guards pending
	pending map[uint16]*request

	wg sync.WaitGroup // stream reads and closes
}

// fid is a client's handle on a file.
type fid struct {
	path   string
	qid    Qid
	open   bool
	mode   uint8  // of the open, OREAD...OEXEC
	data   []byte // snapshot of an open file
	dir    []byte // packed stat entries of an open directory
	dirAt  uint64 // offset of the directory read that ends at dirPos
	dirPos int    // next entry's offset in dir
	cost   int
	st     *stream
}

// stream is an open stream file.
type stream struct {
	read   func(ctx context.Context, p []byte) (int, error)
	close  func()
	sem    chan struct{} // one read at a time
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // reads running
	// burst: the last read returned data. The next read then does not
	// wait: with nothing more there it returns 0 bytes, which ends the
	// burst (see "Streams" in doc.go), and the one after waits again.
	burst bool
}

// request is a pending stream read.
type request struct {
	cancel   context.CancelFunc
	flushed  bool
	flushers []uint16 // tags of the Tflushes waiting for it
}

// testHookReplying, when set, runs in a stream read's goroutine once
// the read has left the pending requests and before its reply is sent.
var testHookReplying func()

// errClose ends the connection.
var errClose = errors.New("close")

func (c *conn) serve() {
	var hdr [4]byte
	for {
		got := 0
		for got < len(hdr) {
			if got == 0 {
				c.nc.SetReadDeadline(time.Now().Add(c.s.cfg.IdleTimeout))
			} else {
				c.nc.SetReadDeadline(time.Now().Add(c.s.cfg.MsgTimeout))
			}
			n, err := c.nc.Read(hdr[got:])
			got += n
			if err != nil {
				var ne net.Error
				if got == 0 && errors.As(err, &ne) && ne.Timeout() &&
					(c.npending() > 0 || time.Since(time.Unix(0, c.lastReply.Load())) < c.s.cfg.IdleTimeout) {
					continue // waiting for a stream, or just answered: not idleness
				}
				return
			}
		}
		size := binary.LittleEndian.Uint32(hdr[:])
		limit := c.msize
		if limit == 0 {
			limit = c.s.cfg.MaxMsize
		}
		if size < headerSize || size > limit {
			return
		}
		if cap(c.rbuf) < int(size) {
			c.rbuf = make([]byte, size)
		}
		b := c.rbuf[:size]
		copy(b, hdr[:])
		c.nc.SetReadDeadline(time.Now().Add(c.s.cfg.MsgTimeout))
		if _, err := io.ReadFull(c.nc, b[4:]); err != nil {
			return
		}
		f, err := Decode(b)
		if err != nil {
			// The header is whole: answer the tag and go on.
			tag := binary.LittleEndian.Uint16(b[5:])
			if c.send(c.rerror(tag, err)) != nil {
				return
			}
			continue
		}
		if c.handle(f) == errClose {
			return
		}
	}
}

func (c *conn) npending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending)
}

// send writes replies, closing the connection on failure.
func (c *conn) send(fs ...*Fcall) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.sendLocked(fs...)
}

// sendLocked is send with wmu held.
func (c *conn) sendLocked(fs ...*Fcall) error {
	b := c.wbuf[:0]
	for _, f := range fs {
		b = f.Append(b)
	}
	if cap(b) <= 2*int(c.s.cfg.MaxMsize) {
		c.wbuf = b
	}
	c.nc.SetWriteDeadline(time.Now().Add(c.s.cfg.WriteTimeout))
	if _, err := c.nc.Write(b); err != nil {
		c.nc.Close()
		return errClose
	}
	c.lastReply.Store(time.Now().UnixNano())
	return nil
}

func (c *conn) rerror(tag uint16, err error) *Fcall {
	c.s.Stats.Errors.Add(1)
	if pe, ok := errors.AsType[*fs.PathError](err); ok {
		err = pe.Err
	}
	msg := err.Error()
	if len(msg) > maxEname {
		msg = msg[:maxEname]
	}
	return &Fcall{Type: Rerror, Tag: tag, Ename: msg}
}

// Errors sent to clients; the texts are Plan 9's, which Linux's v9fs
// maps to errno values.
var (
	errNoFid      = errors.New("unknown fid")
	errFidInUse   = errors.New("fid already in use")
	errTooMany    = errors.New("too many fids")
	errNotDir     = errors.New("not a directory")
	errIsDir      = errors.New("is a directory")
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
)

// handle answers one request. Stream reads answer later, from their
// own goroutine.
func (c *conn) handle(f *Fcall) error {
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
		err = errPerm
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
		return c.send(c.rerror(f.Tag, err))
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

// abortAll drops the pending reads: they will not be answered.
func (c *conn) abortAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for tag, r := range c.pending {
		r.flushed = true
		r.flushers = nil
		r.cancel()
		delete(c.pending, tag)
	}
}

func (c *conn) clunkAll() {
	for n := range c.fids {
		c.clunk(n)
	}
}

// newFid checks that n may name a new fid.
func (c *conn) newFid(n uint32) error {
	if _, ok := c.fids[n]; ok {
		return errFidInUse
	}
	if len(c.fids) >= c.s.cfg.MaxFids {
		return errTooMany
	}
	return nil
}

func (c *conn) attach(f *Fcall) (*Fcall, error) {
	if f.Afid != NoFid {
		return nil, errNoAuth
	}
	if err := c.newFid(f.Fid); err != nil {
		return nil, err
	}
	q := qidOf("/", true)
	c.fids[f.Fid] = &fid{path: "/", qid: q}
	return &Fcall{Type: Rattach, Qid: q}, nil
}

// flush cancels the pending read oldtag; its Rflush goes after that
// read's end. Otherwise it answers at once.
func (c *conn) flush(f *Fcall) *Fcall {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.pending[f.Oldtag]
	if r == nil || len(r.flushers) >= c.s.cfg.MaxPending {
		return &Fcall{Type: Rflush}
	}
	r.flushed = true
	r.flushers = append(r.flushers, f.Tag)
	r.cancel()
	return nil
}

func qidOf(p string, isDir bool) Qid {
	h := fnv.New64a()
	io.WriteString(h, p)
	q := Qid{Path: h.Sum64()}
	if isDir {
		q.Type = QTDIR
	}
	return q
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
			err = errNotDir
		case name == "" || name == "." || strings.Contains(name, "/"):
			err = errBadName
		}
		np := path.Dir(p)
		if name != ".." {
			np = join(p, name)
		}
		var isDir bool
		if err == nil {
			if isDir, err = c.s.fs.Stat(np); err != nil && errors.Is(err, fs.ErrNotExist) {
				err = errNotExist
			}
		}
		if err != nil {
			if i == 0 {
				return nil, err
			}
			break
		}
		p, q = np, qidOf(np, isDir)
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

// notStream reports whether OpenStream's error means a plain file.
func notStream(err error) bool {
	return errors.Is(err, fs.ErrInvalid) || errors.Is(err, errors.ErrUnsupported) ||
		strings.Contains(err.Error(), "not a stream")
}

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
	writing := mode == OWRITE || mode == ORDWR
	r := &Fcall{Type: Ropen, Qid: fd.qid, Iounit: c.msize - IOHdrSz}
	if fd.qid.Type&QTDIR != 0 {
		if writing {
			return nil, errIsDir
		}
		names, err := c.s.fs.ReadDir(fd.path)
		if err != nil {
			return nil, err
		}
		var dir []byte
		for _, n := range names {
			n, isDir := strings.CutSuffix(n, "/")
			d := c.dirOf(join(fd.path, n), isDir)
			dir = d.Append(dir)
			if c.snap+len(dir) > c.s.cfg.MaxSnapshot {
				return nil, errSnapshots
			}
		}
		c.hold(fd, len(dir))
		fd.dir, fd.open, fd.mode = dir, true, mode
		return r, nil
	}
	if writing && !c.writable(fd.path) {
		return nil, errPerm
	}
	if sfs, ok := c.s.fs.(StreamFS); ok && reading {
		read, closeFn, err := sfs.OpenStream(fd.path)
		if err == nil {
			ctx, cancel := context.WithCancel(c.ctx)
			fd.st = &stream{read: read, close: closeFn, sem: make(chan struct{}, 1), ctx: ctx, cancel: cancel}
			fd.open, fd.mode = true, mode
			return r, nil
		}
		if !notStream(err) {
			return nil, err
		}
	}
	if !reading { // nothing will read a snapshot: take none
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

func (c *conn) hold(fd *fid, n int) {
	fd.cost = n
	c.snap += n
}

// dirOf makes the stat entry of p, reading a file for its size.
func (c *conn) dirOf(p string, isDir bool) Dir {
	name := path.Base(p)
	now := uint32(c.s.cfg.Now().Unix())
	d := Dir{Qid: qidOf(p, isDir), Atime: now, Mtime: now, Name: name, Uid: c.s.cfg.Owner, Gid: c.s.cfg.Owner, Muid: c.s.cfg.Owner}
	if isDir {
		d.Mode = DMDIR | 0o555
		return d
	}
	d.Mode = 0o444
	if c.writable(p) {
		d.Mode = 0o664
	}
	if b, err := c.s.fs.ReadFile(p); err == nil {
		d.Length = uint64(len(b))
	}
	return d
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

// burstRead is one read of st, with st.sem held. After a read that
// returned data it does not wait: what is there now, or 0 bytes.
func burstRead(ctx context.Context, st *stream, buf []byte) (int, error) {
	if !st.burst {
		n, err := st.read(ctx, buf)
		st.burst = n > 0
		return n, err
	}
	now, cancel := context.WithCancel(ctx)
	cancel()
	n, err := st.read(now, buf)
	if n == 0 && ctx.Err() == nil && errors.Is(err, context.Canceled) {
		err = nil // the end of a burst
	}
	st.burst = n > 0
	return n, err
}

// streamRead starts a read of st, answered when it returns.
func (c *conn) streamRead(tag uint16, st *stream, count int) error {
	c.mu.Lock()
	if len(c.pending) >= c.s.cfg.MaxPending {
		c.mu.Unlock()
		return errBusy
	}
	ctx, cancel := context.WithCancel(st.ctx)
	req := &request{cancel: cancel}
	c.pending[tag] = req
	c.mu.Unlock()
	c.wg.Add(1)
	st.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer st.wg.Done()
		defer cancel()
		var n int
		var err error
		buf := make([]byte, count)
		select {
		case st.sem <- struct{}{}:
			n, err = burstRead(ctx, st, buf)
			<-st.sem
		case <-ctx.Done():
			err = ctx.Err()
		}
		n = max(0, min(n, count))
		// Hold the replies from the moment the tag leaves pending until
		// its reply is out: a Tflush or Tversion that finds it gone
		// answers after it, so the client never sees the tag's reply
		// after the Rflush (or Rversion) that freed the tag.
		c.wmu.Lock()
		defer c.wmu.Unlock()
		c.mu.Lock()
		if c.pending[tag] == req {
			delete(c.pending, tag)
		}
		flushed, flushers := req.flushed, req.flushers
		c.mu.Unlock()
		if testHookReplying != nil {
			testHookReplying()
		}
		var out []*Fcall
		switch {
		case n > 0 || err == nil || errors.Is(err, io.EOF):
			out = append(out, &Fcall{Type: Rread, Tag: tag, Data: buf[:n]})
		case !flushed:
			out = append(out, c.rerror(tag, err))
		}
		if flushed && len(flushers) == 0 {
			return // the session was reset: no answers
		}
		for _, t := range flushers {
			out = append(out, &Fcall{Type: Rflush, Tag: t})
		}
		c.sendLocked(out...)
	}()
	return nil
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

func (c *conn) clunk(n uint32) error {
	fd, ok := c.fids[n]
	if !ok {
		return errNoFid
	}
	delete(c.fids, n)
	c.snap -= fd.cost
	if st := fd.st; st != nil {
		st.cancel()
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			st.wg.Wait()
			if st.close != nil {
				st.close()
			}
		}()
	}
	return nil
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
	d := c.dirOf(fd.path, isDir)
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
		return nil, err
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
