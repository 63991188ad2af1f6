package main

import (
	"context"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// A Fornax node on the shared LAN owns two sockets: one bound to its own
// address and the port, which sends (broadcasts included) and receives
// the unicasts sent to it, and one bound to the broadcast address and
// the port with SO_REUSEADDR, which receives every broadcast (Linux hands
// a copy to each such socket). dualConn merges them into the one
// net.PacketConn that cluster.New takes, as a fornaxd listening on
// 0.0.0.0:9710 has on a real LAN.

// listenDual opens node addr's two sockets on port.
func listenDual(addr, bcast netip.Addr, port int) (*dualConn, error) {
	lc := net.ListenConfig{Control: reuseAddr}
	uc, err := lc.ListenPacket(context.Background(), "udp4", netip.AddrPortFrom(addr, uint16(port)).String())
	if err != nil {
		return nil, err
	}
	bc, err := lc.ListenPacket(context.Background(), "udp4", netip.AddrPortFrom(bcast, uint16(port)).String())
	if err != nil {
		uc.Close()
		return nil, err
	}
	return newDualConn(uc, bc), nil
}

// reuseAddr lets every node bind the broadcast address and the port.
// (Go sets SO_BROADCAST on UDP sockets itself.)
func reuseAddr(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
	})
	if err != nil {
		return err
	}
	return serr
}

type datagram struct {
	b   []byte
	src net.Addr
	err error
}

// dualConn reads from two sockets and writes through the first.
type dualConn struct {
	send net.PacketConn
	all  []net.PacketConn
	in   chan datagram
	done chan struct{}
	once sync.Once

	mu       sync.Mutex
	deadline time.Time
	changed  chan struct{} // closed when the deadline changes
}

func newDualConn(send, other net.PacketConn) *dualConn {
	d := &dualConn{
		send:    send,
		all:     []net.PacketConn{send, other},
		in:      make(chan datagram, 16),
		done:    make(chan struct{}),
		changed: make(chan struct{}),
	}
	for _, c := range d.all {
		go d.pump(c)
	}
	return d
}

// pump moves c's datagrams into d.in until c fails or d is closed.
func (d *dualConn) pump(c net.PacketConn) {
	for {
		// Room for more than cluster.MaxMessageSize+1, so that the node
		// still sees an oversize datagram as one; small, because it is
		// counted in the node's heap.
		buf := make([]byte, 576)
		k, src, err := c.ReadFrom(buf)
		select {
		case d.in <- datagram{buf[:k], src, err}:
		case <-d.done:
			return
		}
		if err != nil {
			return
		}
	}
}

func (d *dualConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		d.mu.Lock()
		dl, changed := d.deadline, d.changed
		d.mu.Unlock()
		var (
			timer  *time.Timer
			expire <-chan time.Time
		)
		if !dl.IsZero() {
			wait := time.Until(dl)
			if wait <= 0 {
				return 0, nil, &net.OpError{Op: "read", Net: "udp", Err: os.ErrDeadlineExceeded}
			}
			timer = time.NewTimer(wait)
			expire = timer.C
		}
		var (
			g  datagram
			ok bool
		)
		select {
		case g = <-d.in:
			ok = true
		case <-d.done:
			g, ok = datagram{err: net.ErrClosed}, true
		case <-changed:
		case <-expire:
		}
		if timer != nil {
			timer.Stop()
		}
		if ok {
			return copy(p, g.b), g.src, g.err
		}
	}
}

func (d *dualConn) WriteTo(p []byte, addr net.Addr) (int, error) { return d.send.WriteTo(p, addr) }

func (d *dualConn) Close() error {
	var err error
	d.once.Do(func() {
		close(d.done)
		for _, c := range d.all {
			if e := c.Close(); err == nil {
				err = e
			}
		}
	})
	return err
}

func (d *dualConn) LocalAddr() net.Addr { return d.send.LocalAddr() }

func (d *dualConn) SetDeadline(t time.Time) error {
	d.SetReadDeadline(t)
	return d.send.SetWriteDeadline(t)
}

func (d *dualConn) SetReadDeadline(t time.Time) error {
	d.mu.Lock()
	d.deadline = t
	close(d.changed)
	d.changed = make(chan struct{})
	d.mu.Unlock()
	return nil
}

func (d *dualConn) SetWriteDeadline(t time.Time) error { return d.send.SetWriteDeadline(t) }

// traffic counts what one node sent and received: datagrams and bytes of
// UDP payload, and for memberlist's TCP streams their payload bytes, each
// Write a packet sent and each Read that returned data a packet received.
type traffic struct {
	sentPkts, sentBytes, recvPkts, recvBytes atomic.Uint64
	// Of the packets received, the UDP datagrams, and those dropped as lost.
	datagrams, dropped atomic.Uint64
}

func (t *traffic) sent(n int) {
	t.sentPkts.Add(1)
	t.sentBytes.Add(uint64(n))
}

func (t *traffic) received(n int) {
	t.recvPkts.Add(1)
	t.recvBytes.Add(uint64(n))
}

// datagram counts a UDP datagram received and reports whether it is lost.
func (t *traffic) datagram(n int, d *dropper) (lost bool) {
	t.received(n)
	t.datagrams.Add(1)
	if d.drop() {
		t.dropped.Add(1)
		return true
	}
	return false
}

// trafficSum is the total of many nodes' counters at one time.
type trafficSum struct{ sentPkts, sentBytes, recvPkts, recvBytes, datagrams, dropped uint64 }

func sumTraffic(ts []*traffic) trafficSum {
	var s trafficSum
	for _, t := range ts {
		s.sentPkts += t.sentPkts.Load()
		s.sentBytes += t.sentBytes.Load()
		s.recvPkts += t.recvPkts.Load()
		s.recvBytes += t.recvBytes.Load()
		s.datagrams += t.datagrams.Load()
		s.dropped += t.dropped.Load()
	}
	return s
}

func (a trafficSum) minus(b trafficSum) trafficSum {
	return trafficSum{a.sentPkts - b.sentPkts, a.sentBytes - b.sentBytes,
		a.recvPkts - b.recvPkts, a.recvBytes - b.recvBytes, a.datagrams - b.datagrams, a.dropped - b.dropped}
}

// loss is the fraction of received datagrams every node drops, shared by
// all nodes of a run and changed between phases.
type loss struct{ ppm atomic.Uint32 }

func (l *loss) set(f float64) { l.ppm.Store(uint32(f * 1e6)) }

// dropper decides, for one receiver, which datagrams are lost. It is
// used by one goroutine at a time.
type dropper struct {
	loss *loss
	rng  *rand.Rand
}

func newDropper(l *loss, seed uint64) *dropper {
	return &dropper{loss: l, rng: rand.New(rand.NewPCG(seed, 0x9710))}
}

func (d *dropper) drop() bool {
	ppm := d.loss.ppm.Load()
	return ppm > 0 && d.rng.Uint32N(1e6) < ppm
}

// meteredConn is a Fornax node's PacketConn as the node sees it: it
// counts what goes through and drops received datagrams at the loss
// rate. A node's own broadcasts looped back are passed on but neither
// counted nor dropped: they never cross the wire.
type meteredConn struct {
	net.PacketConn
	self netip.Addr
	t    *traffic
	d    *dropper
}

func (m *meteredConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		k, src, err := m.PacketConn.ReadFrom(p)
		if err != nil {
			return k, src, err
		}
		if ua, ok := src.(*net.UDPAddr); ok && ua.AddrPort().Addr().Unmap() == m.self {
			return k, src, nil
		}
		if m.t.datagram(k, m.d) {
			continue
		}
		return k, src, nil
	}
}

func (m *meteredConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	k, err := m.PacketConn.WriteTo(p, addr)
	if err == nil {
		m.t.sent(k)
	}
	return k, err
}
