package ninep

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"fornax/fs/file"
	"fornax/internal/ipv4"
)

// WritableFS is a served tree that tells which of its files take
// writes. A tree without the method has its files named "ctl" writable.
type WritableFS interface {
	Writable(name string) bool
}

// Defaults of Config.
const (
	MaxConns     = 16
	MaxPerSource = 4
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

	MaxConns     int           // connections served at once
	MaxPerSource int           // connections from one address at once
	MaxFids      int           // fids per connection
	MaxMsize     uint32        // largest msize granted (at most 64 KiB)
	MaxPending   int           // stream reads waiting per connection
	MaxSnapshot  int           // bytes of open snapshots per connection
	IdleTimeout  time.Duration // silence of a session, with nothing pending, before a close
	MsgTimeout   time.Duration // time to send the rest of a started message, and silence before Tversion and Tattach
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
	def(&c.MaxPerSource, MaxPerSource)
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
	Refused  atomic.Uint64 // connections closed at once: MaxConns or MaxPerSource reached, none idle
	Evicted  atomic.Uint64 // idle connections closed to make room for a newcomer
	Requests atomic.Uint64 // T-messages received
	Errors   atomic.Uint64 // Rerror replies
}

// Server serves a tree of files over 9P2000: a file.Server of absolute
// names, "/" the root and "/dev/time" a file, as fs/ns.Namespace
// takes them.
type Server struct {
	Stats Stats

	fs  file.Server
	cfg Config

	mu    sync.Mutex // guards admit
	admit *admission
	// users share the request budget (budget.go).
	users users
}

// New returns a server of fsys configured by cfg.
func New(fsys file.Server, cfg Config) *Server {
	cfg.setDefaults()
	return &Server{fs: fsys, cfg: cfg, admit: newAdmission(cfg.MaxConns, cfg.MaxPerSource)}
}

// Serve serves each connection l accepts as admission allows (admit.go:
// MaxConns in all, MaxPerSource from one address, the oldest idle one
// giving way to a newcomer); a refused one is closed at once. It
// returns l's error.
func (s *Server) Serve(l net.Listener) error {
	for {
		nc, err := l.Accept()
		if err != nil {
			return err
		}
		c := s.newConn(nc)
		s.mu.Lock()
		victim, ok := s.admit.admit(c, ipv4.Source(nc.RemoteAddr()))
		s.mu.Unlock()
		if !ok {
			s.Stats.Refused.Add(1)
			nc.Close()
			continue
		}
		if victim != nil {
			// Its reader returns at the close and cleans up as after any
			// end; its slot is already the newcomer's.
			s.Stats.Evicted.Add(1)
			victim.(*conn).nc.Close()
		}
		go func() {
			defer func() {
				s.mu.Lock()
				s.admit.leave(c)
				s.mu.Unlock()
			}()
			s.serveConn(c)
		}()
	}
}

// ServeConn serves one connection until it ends or breaks a rule, then
// closes it. It returns once nothing of the connection runs any more.
// Admission is Serve's: ServeConn serves whatever it is given.
func (s *Server) ServeConn(nc net.Conn) { s.serveConn(s.newConn(nc)) }

func (s *Server) newConn(nc net.Conn) *conn {
	ctx, cancel := context.WithCancel(context.Background())
	c := &conn{s: s, nc: nc, ctx: ctx, cancel: cancel, fids: make(map[uint32]*fid), pending: make(map[uint16]*request)}
	c.lastActive.Store(time.Now().UnixNano())
	return c
}

func (s *Server) serveConn(c *conn) {
	nc := c.nc
	s.Stats.Conns.Add(1)
	s.Stats.Accepted.Add(1)
	defer s.Stats.Conns.Add(-1)
	defer s.users.gone(c)
	c.serve()
	c.cancel()
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
	// budget is the connection's request budget (budget.go).
	budget budget
	// loopReads: the session's Tversion asked for 9P2000.L, Linux's
	// own dialect: the client is v9fs, whose read loop needs the burst
	// rule of streams (doc.go, "Streams").
	loopReads bool

	// session: Tversion and Tattach are done (the connection holds a
	// fid of a session). Written by the reader, read by admission.
	session atomic.Bool

	wmu  sync.Mutex // serialises replies; taken before mu, never after
	wbuf []byte
	// lastActive is when the last message came in or the last reply
	// went out (UnixNano): idleness counts from it, so a client whose
	// stream read was answered after a long wait has IdleTimeout to send
	// its next request, and admission evicts the longest silent first.
	lastActive atomic.Int64

	mu      sync.Mutex // guards pending
	pending map[uint16]*request

	wg sync.WaitGroup // stream reads and closes
}

// errClose ends the connection.
var errClose = errors.New("close")

func (c *conn) serve() {
	var hdr [4]byte
	for {
		// Until Tversion and Tattach are done a connection has
		// MsgTimeout of silence, not IdleTimeout: a slot is not held for
		// minutes by a connection that never said anything.
		idle := c.s.cfg.MsgTimeout
		if c.msize != 0 && len(c.fids) > 0 {
			idle = c.s.cfg.IdleTimeout
			c.session.Store(true)
		} else {
			c.session.Store(false)
		}
		got := 0
		for got < len(hdr) {
			if got == 0 {
				c.nc.SetReadDeadline(time.Now().Add(idle))
			} else {
				c.nc.SetReadDeadline(time.Now().Add(c.s.cfg.MsgTimeout))
			}
			n, err := c.nc.Read(hdr[got:])
			got += n
			if err != nil {
				var ne net.Error
				if got == 0 && errors.As(err, &ne) && ne.Timeout() &&
					(c.npending() > 0 || time.Since(time.Unix(0, c.lastActive.Load())) < idle) {
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
		c.lastActive.Store(time.Now().UnixNano())
		f, err := Decode(b)
		if err != nil {
			// The header is whole: answer the tag and go on.
			tag := binary.LittleEndian.Uint16(b[5:])
			if c.send(c.rerror(tag, err)) != nil {
				return
			}
			continue
		}
		if f.Type == Tversion {
			c.loopReads = strings.HasPrefix(f.Version, "9P2000.L")
		}
		if c.handle(f) == errClose {
			return
		}
	}
}

// idle is the connection as admission sees it (admit.go).
func (c *conn) idle() (ok, session bool, since time.Time) {
	return c.npending() == 0, c.session.Load(), time.Unix(0, c.lastActive.Load())
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
	c.lastActive.Store(time.Now().UnixNano())
	return nil
}

func (c *conn) rerror(tag uint16, err error) *Fcall {
	c.s.Stats.Errors.Add(1)
	msg := ename(err)
	if len(msg) > maxEname {
		msg = msg[:maxEname]
	}
	return &Fcall{Type: Rerror, Tag: tag, Ename: msg}
}
