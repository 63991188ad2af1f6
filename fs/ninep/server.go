package ninep

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"fornax/fs/file"
)

// WritableFS is a served tree that tells which of its files take
// writes. A tree without the method has its files named "ctl" writable.
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
	Requests atomic.Uint64 // T-messages received
	Errors   atomic.Uint64 // Rerror replies
}

// Server serves a tree of files over 9P2000: a file.Server of absolute
// names, "/" the root and "/dev/time" a file, as fs/ns.Namespace
// takes them.
type Server struct {
	Stats Stats

	fs    file.Server
	cfg   Config
	slots chan struct{}
}

// New returns a server of fsys configured by cfg.
func New(fsys file.Server, cfg Config) *Server {
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
