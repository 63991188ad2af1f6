package cluster

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// t0 is when every fake clock starts.
var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// fakeClock is a Clock that moves only when told to.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	c     *fakeClock
	at    time.Time
	ch    chan time.Time
	fired bool
}

func newFakeClock() *fakeClock { return &fakeClock{now: t0} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) TimerAt(at time.Time) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, at: at, ch: make(chan time.Time, 1)}
	if !at.After(c.now) {
		t.fired = true
		t.ch <- c.now
		return t
	}
	c.timers = append(c.timers, t)
	return t
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	if t.fired {
		return false
	}
	t.fired = true
	t.c.timers = slices.DeleteFunc(t.c.timers, func(x *fakeTimer) bool { return x == t })
	return true
}

// set moves the clock to at (never back) and fires the timers due.
func (c *fakeClock) set(at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if at.After(c.now) {
		c.now = at
	}
	c.timers = slices.DeleteFunc(c.timers, func(t *fakeTimer) bool {
		if t.at.After(c.now) {
			return false
		}
		t.fired = true
		t.ch <- c.now
		return true
	})
}

func (c *fakeClock) advance(d time.Duration) { c.set(c.Now().Add(d)) }

// sim is a broadcast network of fake nodes on 10.0.0.0/24 run as a
// discrete-event simulation: one goroutine, the fake clock moving from
// event to event, datagrams handled before the timers due at the same
// instant. Nothing sleeps.
type sim struct {
	t      *testing.T
	clock  *fakeClock
	prefix netip.Prefix
	nodes  map[netip.Addr]*simNode
	queue  []delivery // by time, then order of sending
	seq    int
	// filter, if set, decides the fate of each datagram: drop it, or its
	// delay.
	filter func(d *delivery) (drop bool, delay time.Duration)
	noEcho bool          // do not loop broadcasts back to their sender
	delay  time.Duration // of every datagram unless filter says otherwise

	logMu sync.Mutex // Logf may be called from a reader of the tree
	log   []string
}

type simNode struct {
	*Node
	addr  netip.Addr
	conn  *simConn
	alive bool
}

type delivery struct {
	at       time.Time
	seq      int
	from, to netip.Addr
	b        []byte
}

func (d *delivery) msg() string { return strings.TrimSuffix(string(d.b), "\n") }

func newSim(t *testing.T) *sim {
	return &sim{t: t, clock: newFakeClock(), prefix: netip.MustParsePrefix("10.0.0.0/24"),
		nodes: make(map[netip.Addr]*simNode), delay: time.Millisecond}
}

// simConn is a node's socket on the sim network.
type simConn struct {
	s    *sim
	addr netip.Addr
	sent []sent // what the node wrote
}

type sent struct {
	at      time.Duration // since t0
	msg     string        // without the newline
	unicast bool          // to one node, not the broadcast address
}

func (c *simConn) WriteTo(b []byte, dst net.Addr) (int, error) {
	s := c.s
	u := dst.(*net.UDPAddr)
	to, _ := netip.AddrFromSlice(u.IP)
	to = to.Unmap()
	bcast := to == netip.AddrFrom4([4]byte{10, 0, 0, 255})
	if u.Port != DefaultPort || !bcast && !s.prefix.Contains(to) {
		s.t.Errorf("%v sent to %v, want 10.0.0.255:9710 or a host of 10.0.0.0/24", c.addr, dst)
	}
	c.sent = append(c.sent, sent{s.clock.Now().Sub(t0), strings.TrimSuffix(string(b), "\n"), !bcast})
	if !bcast {
		s.enqueue(c.addr, to, b)
		return len(b), nil
	}
	for _, to := range s.addrs() {
		if to == c.addr && s.noEcho {
			continue
		}
		s.enqueue(c.addr, to, b)
	}
	return len(b), nil
}

func (s *sim) enqueue(from, to netip.Addr, b []byte) {
	s.seq++
	d := &delivery{at: s.clock.Now().Add(s.delay), seq: s.seq, from: from, to: to, b: slices.Clone(b)}
	if s.filter != nil {
		drop, delay := s.filter(d)
		if drop {
			return
		}
		d.at = s.clock.Now().Add(delay)
	}
	i, _ := slices.BinarySearchFunc(s.queue, *d, func(a, b delivery) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return a.seq - b.seq
	})
	s.queue = slices.Insert(s.queue, i, *d)
}

func (c *simConn) ReadFrom([]byte) (int, net.Addr, error) { panic("sim conns are not read") }
func (c *simConn) Close() error                           { return nil }
func (c *simConn) LocalAddr() net.Addr                    { return udp(c.addr) }
func (c *simConn) SetDeadline(time.Time) error            { return nil }
func (c *simConn) SetReadDeadline(time.Time) error        { return nil }
func (c *simConn) SetWriteDeadline(time.Time) error       { return nil }

func udp(a netip.Addr) *net.UDPAddr {
	return net.UDPAddrFromAddrPort(netip.AddrPortFrom(a, DefaultPort))
}

func (s *sim) addrs() []netip.Addr {
	var l []netip.Addr
	for a := range s.nodes {
		l = append(l, a)
	}
	slices.SortFunc(l, netip.Addr.Compare)
	return l
}

// config is the default test config of host h (10.0.0.h) with id 000000hh.
func (s *sim) config(h int) Config {
	return Config{
		ID:        fmt.Sprintf("%08x", h),
		Name:      fmt.Sprintf("n%d", h),
		Addr:      netip.AddrFrom4([4]byte{10, 0, 0, byte(h)}),
		Prefix:    s.prefix,
		Clock:     s.clock,
		WallClock: s.clock.Now,
		Rand:      rand.New(rand.NewPCG(uint64(h), 1)),
		Resources: func() Resources {
			return Resources{CPUs: 2, MemTotal: 256 << 20, MemFree: 128 << 20, Load: 0.25}
		},
	}
}

// start creates host h with cfg (s.config(h) if nil), attaches it and
// starts it as Run would.
func (s *sim) start(h int, edit func(*Config)) *simNode {
	cfg := s.config(h)
	if edit != nil {
		edit(&cfg)
	}
	cfg.Logf = func(format string, args ...any) {
		l := fmt.Sprintf("%v %v ", s.clock.Now().Sub(t0), cfg.Addr) + fmt.Sprintf(format, args...)
		s.logMu.Lock()
		s.log = append(s.log, l)
		s.logMu.Unlock()
	}
	c := &simConn{s: s, addr: cfg.Addr}
	n, err := New(cfg, c)
	if err != nil {
		s.t.Fatal(err)
	}
	sn := &simNode{Node: n, addr: cfg.Addr, conn: c, alive: true}
	s.nodes[cfg.Addr] = sn
	if err := n.start(); err != nil {
		s.t.Fatal(err)
	}
	return sn
}

// kill stops a node without LEAVE, like a crash: it neither sends nor
// receives any more.
func (s *sim) kill(n *simNode) {
	n.alive = false
	n.stop()
	delete(s.nodes, n.addr)
}

// inject queues a datagram from an arbitrary source to host to.
func (s *sim) inject(from string, to *simNode, msg string) {
	s.enqueue(netip.MustParseAddr(from), to.addr, []byte(msg))
}

// injectAll queues a datagram from an arbitrary source to every node, as
// a broadcast would.
func (s *sim) injectAll(from, msg string) {
	for _, a := range s.addrs() {
		s.enqueue(netip.MustParseAddr(from), a, []byte(msg))
	}
}

// injectAt queues a datagram from an arbitrary source to host to so that
// it arrives at t0+at, running the simulation until it is sent.
func (s *sim) injectAt(at time.Duration, from string, to *simNode, msg string) {
	s.runTo(at - s.delay)
	s.inject(from, to, msg)
}

// run advances the simulation by d.
func (s *sim) run(d time.Duration) { s.runUntil(s.clock.Now().Add(d)) }

// runTo advances the simulation to t0+at.
func (s *sim) runTo(at time.Duration) { s.runUntil(t0.Add(at)) }

func (s *sim) runUntil(end time.Time) {
	for steps := 0; ; steps++ {
		if steps > 1e6 {
			s.t.Fatal("simulation does not settle")
		}
		var next time.Time
		if len(s.queue) > 0 {
			next = s.queue[0].at
		}
		for _, a := range s.addrs() {
			next = earliest(next, s.nodes[a].nextWake())
		}
		if next.IsZero() || next.After(end) {
			break
		}
		s.clock.set(next)
		now := s.clock.Now()
		for len(s.queue) > 0 && !s.queue[0].at.After(now) {
			d := s.queue[0]
			s.queue = s.queue[1:]
			if n := s.nodes[d.to]; n != nil && n.alive {
				n.handle(d.b, udp(d.from))
			}
		}
		for _, a := range s.addrs() {
			if n := s.nodes[a]; n != nil {
				if w := n.nextWake(); !w.IsZero() && !w.After(now) {
					n.fire()
				}
			}
		}
	}
	s.clock.set(end)
}

// logged returns the log lines containing substr.
func (s *sim) logged(substr string) []string {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	var l []string
	for _, x := range s.log {
		if strings.Contains(x, substr) {
			l = append(l, x)
		}
	}
	return l
}

// read returns a file of n's tree as a string, or the error text.
func (n *simNode) read(name string) string {
	b, err := n.Tree().ReadFile(name)
	if err != nil {
		return "error: " + err.Error()
	}
	return string(b)
}

// ls returns a directory of n's tree joined with spaces, or the error text.
func (n *simNode) ls(name string) string {
	l, err := n.Tree().ReadDir(name)
	if err != nil {
		return "error: " + err.Error()
	}
	return strings.Join(l, " ")
}

// status returns n's view of peer p: online, suspect, dead, or gone.
func (n *simNode) status(p *simNode) string {
	s := n.read("nodes/" + p.ID() + "/status")
	if strings.HasPrefix(s, "error:") {
		return "gone"
	}
	return strings.TrimSuffix(s, "\n")
}

// verbs lists what n has sent as "time VERB", time since t0, joined by
// ", ".
func (n *simNode) verbs() string {
	var l []string
	for _, m := range n.conn.sent {
		l = append(l, m.at.String()+" "+strings.Fields(m.msg)[0])
	}
	return strings.Join(l, ", ")
}

// stat returns one counter of n's stats file.
func (n *simNode) stat(name string) int {
	for l := range strings.Lines(n.read("stats")) {
		if k, v, _ := strings.Cut(strings.TrimSuffix(l, "\n"), " "); k == name {
			var x int
			fmt.Sscan(v, &x)
			return x
		}
	}
	panic("no stat " + name)
}

// pipeConn is a net.PacketConn for tests of Run: the test reads what the
// node sends from out and feeds datagrams into in.
type pipeConn struct {
	in       chan pipePacket
	out      chan string
	mu       sync.Mutex
	closed   chan struct{}
	deadline chan struct{} // closed while a past read deadline is set
}

type pipePacket struct {
	b   []byte
	src net.Addr
}

func newPipeConn() *pipeConn {
	return &pipeConn{in: make(chan pipePacket, 16), out: make(chan string, 64),
		closed: make(chan struct{}), deadline: make(chan struct{})}
}

func (c *pipeConn) ReadFrom(b []byte) (int, net.Addr, error) {
	c.mu.Lock()
	dl := c.deadline
	c.mu.Unlock()
	select {
	case p := <-c.in:
		return copy(b, p.b), p.src, nil
	case <-dl:
		return 0, nil, os.ErrDeadlineExceeded
	case <-c.closed:
		return 0, nil, net.ErrClosed
	}
}

func (c *pipeConn) WriteTo(b []byte, dst net.Addr) (int, error) {
	c.out <- strings.TrimSuffix(string(b), "\n")
	return len(b), nil
}

func (c *pipeConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-c.deadline:
		if t.IsZero() {
			c.deadline = make(chan struct{})
		}
	default:
		if !t.IsZero() {
			close(c.deadline)
		}
	}
	return nil
}

func (c *pipeConn) Close() error                     { close(c.closed); return nil }
func (c *pipeConn) LocalAddr() net.Addr              { return udp(netip.MustParseAddr("10.0.0.1")) }
func (c *pipeConn) SetDeadline(time.Time) error      { return nil }
func (c *pipeConn) SetWriteDeadline(time.Time) error { return nil }
