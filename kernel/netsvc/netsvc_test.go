package netsvc

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"fornax/cluster"
)

// fakeUDP hands out datagrams from a list and records the answers.
type fakeUDP struct {
	in      []datagram
	replies []string
	next    func() // called before each read
}

type datagram struct {
	from netip.AddrPort
	to   netip.Addr
	data string
}

func (f *fakeUDP) ReadFromTo(b []byte) (int, netip.AddrPort, netip.Addr, error) {
	if len(f.in) == 0 {
		return 0, netip.AddrPort{}, netip.Addr{}, net.ErrClosed
	}
	if f.next != nil {
		f.next()
	}
	d := f.in[0]
	f.in = f.in[1:]
	return copy(b, d.data), d.from, d.to, nil
}

func (f *fakeUDP) WriteTo(b []byte, addr net.Addr) (int, error) {
	f.replies = append(f.replies, addr.String()+" "+string(b))
	return len(b), nil
}

// TestEchoRefusals: no answer to a well-known source port (a forged
// datagram from another echo would loop) or the cluster's port (a forged
// one would reach a node's gossip socket from our address), nor to
// anything not sent to our own address (a forged broadcast would make
// every node answer).
func TestEchoRefusals(t *testing.T) {
	own := netip.MustParseAddr("10.0.0.2")
	peer := func(port uint16) netip.AddrPort { return netip.AddrPortFrom(netip.MustParseAddr("10.0.0.3"), port) }
	f := &fakeUDP{in: []datagram{
		{peer(7), own, "from echo"},
		{peer(19), own, "from chargen"},
		{peer(0), own, "from port 0"},
		{peer(1023), own, "from 1023"},
		{peer(9710), own, "LEAVE 00000002"},
		{peer(40000), netip.MustParseAddr("10.0.0.255"), "subnet broadcast"},
		{peer(40000), netip.MustParseAddr("255.255.255.255"), "limited broadcast"},
		{peer(40000), netip.MustParseAddr("224.0.0.1"), "multicast"},
		{peer(40000), netip.Addr{}, "destination unknown"},
		{peer(1024), own, "ok 1"},
		{peer(9711), own, "ok 3"},
		{peer(40000), own, "ok 2"},
	}}
	s := New(Config{Addr: own})
	if err := s.EchoUDP(f); !errors.Is(err, net.ErrClosed) {
		t.Fatal(err)
	}
	want := []string{"10.0.0.3:1024 ok 1", "10.0.0.3:9711 ok 3", "10.0.0.3:40000 ok 2"}
	if strings.Join(f.replies, "|") != strings.Join(want, "|") {
		t.Errorf("replies %q, want %q", f.replies, want)
	}
	st := &s.Stats
	if st.UDPLowPort.Load() != 5 || st.UDPNotOurs.Load() != 4 || st.EchoedUDP.Load() != 3 {
		t.Errorf("counters:\n%s", st.String())
	}
	if str := st.String(); !strings.Contains(str, "echo_udp_low_port 5\n") || !strings.Contains(str, "echo_udp_not_ours 4\n") {
		t.Errorf("String: %q", str)
	}
}

// TestClusterPort: echo refuses the port the cluster gossips on.
func TestClusterPort(t *testing.T) {
	if ClusterPort != cluster.DefaultPort {
		t.Errorf("ClusterPort %d, cluster.DefaultPort %d", ClusterPort, cluster.DefaultPort)
	}
}

// TestEchoRateLimit runs the token bucket on a fake clock.
func TestEchoRateLimit(t *testing.T) {
	own := netip.MustParseAddr("10.0.0.2")
	from := netip.MustParseAddrPort("10.0.0.3:40000")
	now := time.Unix(1000, 0)
	f := &fakeUDP{}
	for i := 0; i < 300; i++ {
		f.in = append(f.in, datagram{from, own, "x"})
	}
	big := string(make([]byte, 60000)) // 41 frames
	f.in = append(f.in, datagram{from, own, big})
	f.next = func() { now = now.Add(time.Millisecond) }

	s := New(Config{Addr: own, EchoRate: 100, EchoBurst: 50, Now: func() time.Time { return now }})
	s.EchoUDP(f)

	// 300 datagrams over 300 ms at 100/s, from a bucket of 50: 50 + 30
	if n := s.Stats.EchoedUDP.Load(); n < 79 || n > 81 {
		t.Errorf("echoed %d of 300 small datagrams in 300 ms, want 80", s.Stats.EchoedUDP.Load())
	}
	if s.Stats.UDPLimited.Load()+s.Stats.EchoedUDP.Load() != 301 {
		t.Errorf("counters:\n%s", s.Stats.String())
	}

	// after a rest the bucket is full again: one big datagram fits
	now = now.Add(time.Second)
	f.in = []datagram{{from, own, big}}
	before := s.Stats.EchoedUDP.Load()
	s.EchoUDP(f)
	if s.Stats.EchoedUDP.Load() != before+1 {
		t.Error("a 60000-byte datagram was refused by a full bucket")
	}
	if frames(1472, 1500) != 1 || frames(1473, 1500) != 2 || frames(65507, 1500) != 45 {
		t.Errorf("frames at 1500: %v %v %v", frames(1472, 1500), frames(1473, 1500), frames(65507, 1500))
	}
	if frames(1416, 1450) != 1 || frames(1417, 1450) != 2 || frames(65507, 1450) != 47 {
		t.Errorf("frames at 1450: %v %v %v", frames(1416, 1450), frames(1417, 1450), frames(65507, 1450))
	}
}

func TestDiscard(t *testing.T) {
	s := New(Config{})
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go s.Discard(l)
	c, err := net.Dial("tcp4", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.Write(make([]byte, 100000))
	c.Close()
	for deadline := time.Now().Add(5 * time.Second); s.Stats.DiscardBytes.Load() < 100000; {
		if time.Now().After(deadline) {
			t.Fatalf("discarded %d bytes", s.Stats.DiscardBytes.Load())
		}
		time.Sleep(time.Millisecond)
	}
}

func TestWatch(t *testing.T) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	c, _ := net.Dial("udp4", pc.LocalAddr().String())
	defer c.Close()
	c.Write([]byte("one"))
	c.Write([]byte("two"))
	var out bytes.Buffer
	if err := Watch(&out, pc, time.Now().Add(300*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	if !strings.Contains(got, `"one"`) || !strings.Contains(got, `"two"`) || !strings.HasSuffix(got, "2 datagrams\n") {
		t.Errorf("watch: %q", got)
	}
}

// served waits until counter reaches want.
func served(t *testing.T, counter *atomic.Uint64, want uint64) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); counter.Load() < want; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections served, want %d", counter.Load(), want)
		}
	}
}

// closedAtOnce checks that the server ends a new connection to l at
// once: the reset may come before Dial returns.
func closedAtOnce(t *testing.T, l net.Listener) {
	t.Helper()
	c, err := net.Dial("tcp4", l.Addr().String())
	if errors.Is(err, syscall.ECONNRESET) {
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("connection over the limit: read %v, want EOF or reset", err)
	}
}

func dial(t *testing.T, l net.Listener) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp4", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// retry dials l until counter reaches want: connections made before a
// slot is free are reset, and may fail already in Dial.
func retry(t *testing.T, l net.Listener, counter *atomic.Uint64, want uint64) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); counter.Load() < want; time.Sleep(10 * time.Millisecond) {
		if c, err := net.Dial("tcp4", l.Addr().String()); err == nil {
			t.Cleanup(func() { c.Close() })
		}
		if time.Now().After(deadline) {
			t.Fatal("a freed slot or budget was not used again")
		}
	}
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func TestMaxConns(t *testing.T) {
	// All from 127.0.0.1; a budget that holds MaxConns discards besides
	// the other services' reserves.
	s := New(Config{MaxPerSource: 2 * MaxConns, Budget: 2 * Budget})
	l := listen(t)
	go s.Discard(l)
	var conns []net.Conn
	for i := 0; i < MaxConns; i++ {
		conns = append(conns, dial(t, l))
	}
	served(t, &s.Stats.DiscardConns, MaxConns)
	closedAtOnce(t, l)
	if s.Stats.Refused.Load() != 1 {
		t.Errorf("refused %d", s.Stats.Refused.Load())
	}
	// A slot freed is taken again.
	conns[0].Close()
	retry(t, l, &s.Stats.DiscardConns, MaxConns+1)
}

// TestBudget: the services share one memory budget; a connection that
// does not fit is refused until another gives its share back.
func TestBudget(t *testing.T) {
	s := New(Config{})
	s = New(Config{Budget: s.connCost(SendBuffer, SendBuffer) + 2*s.connCost(RecvBuffer, SendBuffer)})
	echo, discard := listen(t), listen(t)
	go s.EchoTCP(echo)
	go s.Discard(discard)

	dial(t, echo)
	first := dial(t, discard)
	dial(t, discard)
	served(t, &s.Stats.EchoedTCP, 1)
	served(t, &s.Stats.DiscardConns, 2)
	closedAtOnce(t, discard)
	closedAtOnce(t, echo)
	if s.Stats.OverBudget.Load() != 2 || s.Stats.Refused.Load() != 0 {
		t.Errorf("counters:\n%s", s.Stats.String())
	}

	first.Close()
	retry(t, discard, &s.Stats.DiscardConns, 3)
}

func TestChargen(t *testing.T) {
	s := New(Config{WriteTimeout: 300 * time.Millisecond, SendBuffer: 16 << 10})
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go s.Chargen(l)
	c, err := net.Dial("tcp4", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b := make([]byte, 100000)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatal(err)
	}
	const first = " !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefg\r\n!\"#$%"
	if string(b[:len(first)]) != first {
		t.Errorf("chargen starts %q, want %q", b[:len(first)], first)
	}
	// A peer that stops taking the pattern is reset after WriteTimeout,
	// and its slot and budget come back.
	c.(*net.TCPConn).SetReadBuffer(4096)
	for deadline := time.Now().Add(10 * time.Second); s.Stats.WriteStalls.Load() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("a stalled chargen peer was never reset")
		}
	}
	if s.Stats.ChargenConns.Load() != 1 || s.Stats.ChargenBytes.Load() < 100000 {
		t.Errorf("stats: %d conns, %d bytes", s.Stats.ChargenConns.Load(), s.Stats.ChargenBytes.Load())
	}
	left := func() int64 {
		s.budget.mu.Lock()
		defer s.budget.mu.Unlock()
		return s.budget.left
	}
	for deadline := time.Now().Add(5 * time.Second); left() != s.cfg.Budget; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("budget %d after the reset, want %d", left(), s.cfg.Budget)
		}
	}
}
