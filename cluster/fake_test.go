package cluster

import (
	"container/heap"
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

// sim is a broadcast network of fake nodes run as a discrete-event
// simulation: one goroutine, the fake clock moving from event to event,
// datagrams handled before the timers due at the same instant. Nothing
// sleeps. Hosts are on 10.0.0.0/24 unless prefix is set (newSimOn) before
// the first start: the scale tests need more than 254 of them.
//
// It is built to run a thousand nodes: a broadcast is one entry of the
// queue, with the list of its receivers, not one per receiver; the queue
// and the nodes' wake times are heaps; and the knobs a LAN needs (loss,
// partition, delay) are applied per receiver as the datagram is sent.
type sim struct {
	t      testing.TB
	clock  *fakeClock
	prefix netip.Prefix
	bcast  netip.Addr
	nodes  map[netip.Addr]*simNode
	order  []netip.Addr // of nodes, sorted; replaced, never changed in place
	queue  sendHeap     // by time, then order of sending
	wakes  wakeHeap     // nodes' nextWake; an entry is stale unless it is the node's wake
	seq    int
	// filter, if set, decides the fate of each datagram: drop it, or its
	// delay.
	filter func(d *delivery) (drop bool, delay time.Duration)
	noEcho bool          // do not loop broadcasts back to their sender
	delay  time.Duration // of every datagram unless filter says otherwise
	// loss is the probability that a datagram is lost on the way to one
	// receiver, drawn from lossRand; side, if set, partitions the LAN:
	// a datagram crosses only between hosts of the same side.
	loss     float64
	lossRand *rand.Rand
	side     func(netip.Addr) int
	// quiet drops the nodes' log lines instead of keeping them for
	// logged, and what they send instead of keeping it in their
	// conn's sent (a thousand nodes with peers off their subnet send
	// millions of datagrams a simulated minute).
	quiet bool
	// viewHint is where fullView starts (joinstorm_test.go).
	viewHint int
	// per, if set, splits the LAN into segments of per hosts, each a /24
	// of prefix (host h is on segment (h-1)/per, at .1 and up), joined
	// by a router that forwards unicast only: a broadcast reaches the
	// hosts of its sender's segment (newSegments, span_test.go).
	per      int
	segOrder map[netip.Prefix][]netip.Addr // of nodes, by segment, sorted
	// anywhere lets nodes send to any address (fuzzing); what goes
	// off the LAN is lost.
	anywhere bool

	logMu sync.Mutex // Logf may be called from a reader of the tree
	log   []string
}

type simNode struct {
	*Node
	addr  netip.Addr
	src   *net.UDPAddr // addr:9710, the source of what it sends
	conn  *simConn
	alive bool
	wake  time.Time // its nextWake as last pushed to sim.wakes

	// What reached it and what it sent, datagrams and payload bytes (a
	// broadcast counts once when sent); of those, extra ones: not
	// messages of the periodic schedule (§4.2), such as answers.
	rx, rxBytes, tx, txBytes, txUnicast int
	rxExtra, txExtra                    int
}

// delivery is one datagram to one receiver, as filter sees it.
type delivery struct {
	at       time.Time
	seq      int
	from, to netip.Addr
	b        []byte
}

func (d *delivery) msg() string { return strings.TrimSuffix(string(d.b), "\n") }

// pending is one datagram sent, due at at to every host of to.
type pending struct {
	at    time.Time
	seq   int
	from  *net.UDPAddr
	to    []netip.Addr
	b     []byte // shared by the receivers: a node does not keep or change it
	extra bool   // not a message of the periodic schedule
}

type sendHeap []*pending

func (h sendHeap) Len() int { return len(h) }
func (h sendHeap) Less(i, j int) bool {
	if c := h[i].at.Compare(h[j].at); c != 0 {
		return c < 0
	}
	return h[i].seq < h[j].seq
}
func (h sendHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *sendHeap) Push(x any)   { *h = append(*h, x.(*pending)) }
func (h *sendHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return x
}

type wakeAt struct {
	at time.Time
	n  *simNode
}

type wakeHeap []wakeAt

func (h wakeHeap) Len() int           { return len(h) }
func (h wakeHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h wakeHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *wakeHeap) Push(x any)        { *h = append(*h, x.(wakeAt)) }
func (h *wakeHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

func newSim(t testing.TB) *sim { return newSimOn(t, netip.MustParsePrefix("10.0.0.0/24")) }

// newSimOn is newSim on another subnet, whose host h is the prefix's
// address plus h.
func newSimOn(t testing.TB, prefix netip.Prefix) *sim {
	prefix = prefix.Masked()
	return &sim{t: t, clock: newFakeClock(), prefix: prefix, bcast: broadcastAddr(prefix),
		nodes: make(map[netip.Addr]*simNode), delay: time.Millisecond}
}

// simConn is a node's socket on the sim network.
type simConn struct {
	s    *sim
	n    *simNode
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
	seg := s.segOf(c.addr)
	bcast := to == broadcastAddr(seg)
	if u.Port != DefaultPort || !bcast && !s.prefix.Contains(to) && !s.anywhere {
		s.t.Errorf("%v sent to %v, want %v:9710 or a host of %v", c.addr, dst, broadcastAddr(seg), s.prefix)
	}
	if !s.quiet {
		c.sent = append(c.sent, sent{s.clock.Now().Sub(t0), strings.TrimSuffix(string(b), "\n"), !bcast})
	}
	src, extra := udp(c.addr), false
	if n := c.n; n != nil {
		src = n.src
		// Message k of the schedule is sent at exactly base + k
		// intervals; anything else (answers, refutations, LEAVE) is not
		// (§4.2). The node does not hold mu while it writes.
		n.mu.Lock()
		extra = s.clock.Now().Sub(n.sched.base)%n.cfg.Interval != 0
		n.mu.Unlock()
		n.tx++
		n.txBytes += len(b)
		if !bcast {
			n.txUnicast++
		}
		if extra {
			n.txExtra++
		}
	}
	if !bcast {
		s.send(src, []netip.Addr{to}, b, extra)
		return len(b), nil
	}
	to4 := s.order
	if s.per > 0 {
		to4 = s.segOrder[seg]
	}
	if s.noEcho {
		to4 = slices.DeleteFunc(slices.Clone(to4), func(a netip.Addr) bool { return a == c.addr })
	}
	s.send(src, to4, b, extra)
	return len(b), nil
}

// send queues b from src to each of to, through the LAN's knobs: loss,
// partition, filter, delay. Receivers due at the same time share an entry.
// extra marks a datagram that is not a periodic message.
func (s *sim) send(src *net.UDPAddr, to []netip.Addr, b []byte, extra bool) {
	b = slices.Clone(b)
	now := s.clock.Now()
	from := src.AddrPort().Addr().Unmap()
	if s.filter == nil && s.loss == 0 && s.side == nil {
		s.seq++
		heap.Push(&s.queue, &pending{at: now.Add(s.delay), seq: s.seq, from: src, to: to, b: b, extra: extra})
		return
	}
	var cur *pending
	for _, a := range to {
		if s.side != nil && s.side(from) != s.side(a) {
			continue
		}
		if s.loss > 0 && s.lossRand.Float64() < s.loss {
			continue
		}
		delay := s.delay
		if s.filter != nil {
			d := delivery{at: now.Add(delay), seq: s.seq + 1, from: from, to: a, b: b}
			drop, dl := s.filter(&d)
			if drop {
				continue
			}
			delay = dl
			if len(d.b) != len(b) || len(b) > 0 && &d.b[0] != &b[0] {
				// The filter rewrote the datagram for this receiver.
				s.seq++
				heap.Push(&s.queue, &pending{at: now.Add(delay), seq: s.seq, from: src, to: []netip.Addr{a}, b: d.b, extra: extra})
				continue
			}
		}
		if cur == nil || !cur.at.Equal(now.Add(delay)) {
			s.seq++
			cur = &pending{at: now.Add(delay), seq: s.seq, from: src, b: b, extra: extra}
			heap.Push(&s.queue, cur)
		}
		cur.to = append(cur.to, a)
	}
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

// addrs returns the hosts' addresses in order. The caller must not change
// the slice.
func (s *sim) addrs() []netip.Addr { return s.order }

// host returns the address of host h: the prefix's address plus h, or,
// with segments, host (h-1)%per + 1 of segment (h-1)/per.
func (s *sim) host(h int) netip.Addr {
	if s.per > 0 {
		h = (h-1)/s.per*256 + (h-1)%s.per + 1
	}
	a := s.prefix.Addr().As4()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3]) + uint32(h)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// config is the default test config of host h (10.0.0.h on the default
// subnet) with id 000000hh. It has no join SYNC (§4.6), so that the
// tests of §4.1–§4.5 see the traffic those sections describe;
// span_test.go and the scale harness turn it on.
func (s *sim) config(h int) Config {
	return Config{
		NoJoinSync: true,
		ID:         fmt.Sprintf("%08x", h),
		Name:       fmt.Sprintf("n%d", h),
		Addr:       s.host(h),
		Prefix:     s.segOf(s.host(h)),
		Clock:      s.clock,
		WallClock:  s.clock.Now,
		Rand:       rand.New(rand.NewPCG(uint64(h), 1)),
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
	if s.quiet {
		cfg.Logf = func(string, ...any) {}
	}
	c := &simConn{s: s, addr: cfg.Addr}
	n, err := New(cfg, c)
	if err != nil {
		s.t.Fatal(err)
	}
	sn := &simNode{Node: n, addr: cfg.Addr, src: udp(cfg.Addr), conn: c, alive: true}
	c.n = sn
	if old := s.nodes[cfg.Addr]; old != nil {
		old.alive = false
	}
	s.nodes[cfg.Addr] = sn
	s.setOrder()
	if err := n.start(); err != nil {
		s.t.Fatal(err)
	}
	s.rewake(sn)
	return sn
}

// setOrder remakes order from nodes: a new slice, since datagrams in
// flight hold the old one as their list of receivers.
func (s *sim) setOrder() {
	l := make([]netip.Addr, 0, len(s.nodes))
	for a := range s.nodes {
		l = append(l, a)
	}
	slices.SortFunc(l, netip.Addr.Compare)
	s.order = l
	if s.per > 0 {
		s.segOrder = make(map[netip.Prefix][]netip.Addr)
		for _, a := range l {
			p := s.segOf(a)
			s.segOrder[p] = append(s.segOrder[p], a)
		}
	}
}

// segOf is the segment of address a: the LAN's prefix, or its /24.
func (s *sim) segOf(a netip.Addr) netip.Prefix {
	if s.per == 0 {
		return s.prefix
	}
	p, _ := a.Prefix(24)
	return p
}

// kill stops a node without LEAVE, like a crash: it neither sends nor
// receives any more.
func (s *sim) kill(n *simNode) {
	n.alive = false
	n.stop()
	if s.nodes[n.addr] == n {
		delete(s.nodes, n.addr)
		s.setOrder()
	}
}

// inject queues a datagram from an arbitrary source to host to.
func (s *sim) inject(from string, to *simNode, msg string) {
	s.send(udp(netip.MustParseAddr(from)), []netip.Addr{to.addr}, []byte(msg), true)
}

// injectAll queues a datagram from an arbitrary source to every node, as
// a broadcast would.
func (s *sim) injectAll(from, msg string) {
	s.send(udp(netip.MustParseAddr(from)), s.order, []byte(msg), true)
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

// rewake records n's next wake in the heap if it changed.
func (s *sim) rewake(n *simNode) {
	w := n.nextWake()
	if w.Equal(n.wake) {
		return
	}
	n.wake = w
	if !w.IsZero() {
		heap.Push(&s.wakes, wakeAt{w, n})
	}
}

// nextWake is the earliest wake of a live node, dropping stale entries.
func (s *sim) nextWake() time.Time {
	for len(s.wakes) > 0 {
		w := s.wakes[0]
		if w.n.alive && s.nodes[w.n.addr] == w.n && w.at.Equal(w.n.wake) {
			return w.at
		}
		heap.Pop(&s.wakes)
	}
	return time.Time{}
}

func (s *sim) runUntil(end time.Time) {
	// Between runs a test may have called into the nodes (Rename, Leave,
	// a read of the tree), which moves their wakes.
	for _, a := range s.order {
		s.rewake(s.nodes[a])
	}
	var fire []*simNode
	for steps := 0; ; steps++ {
		next := s.nextWake()
		if len(s.queue) > 0 {
			next = earliest(next, s.queue[0].at)
		}
		if next.IsZero() || next.After(end) {
			break
		}
		if next.After(s.clock.Now()) {
			steps = 0
		} else if steps > 1e6 {
			s.t.Fatal("simulation does not settle")
		}
		s.clock.set(next)
		now := s.clock.Now()
		for len(s.queue) > 0 && !s.queue[0].at.After(now) {
			p := heap.Pop(&s.queue).(*pending)
			for _, to := range p.to {
				if n := s.nodes[to]; n != nil && n.alive {
					n.rx++
					n.rxBytes += len(p.b)
					if p.extra {
						n.rxExtra++
					}
					n.handle(p.b, p.from)
					s.rewake(n)
				}
			}
		}
		// Nodes due now fire in address order.
		fire = fire[:0]
		for w := s.nextWake(); !w.IsZero() && !w.After(now); w = s.nextWake() {
			n := heap.Pop(&s.wakes).(wakeAt).n
			n.wake = time.Time{}
			fire = append(fire, n)
		}
		slices.SortFunc(fire, func(a, b *simNode) int { return a.addr.Compare(b.addr) })
		for _, n := range fire {
			if w := n.nextWake(); !w.IsZero() && !w.After(now) {
				n.fire()
			}
			s.rewake(n)
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
