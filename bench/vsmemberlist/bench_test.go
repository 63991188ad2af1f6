package main

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"
)

func TestHostAddr(t *testing.T) {
	for k, want := range map[int]string{0: "10.213.0.1", 254: "10.213.0.255", 255: "10.213.1.0", 299: "10.213.1.44"} {
		if got := hostAddr(k).String(); got != want {
			t.Errorf("hostAddr(%d) = %s, want %s", k, got, want)
		}
	}
	if got := broadcastAddr(subnet).String(); got != "10.213.255.255" {
		t.Errorf("broadcast of %v = %s", subnet, got)
	}
	if got := broadcastAddr(netip.MustParsePrefix("10.0.2.15/24")).String(); got != "10.0.2.255" {
		t.Errorf("broadcast of 10.0.2.15/24 = %s", got)
	}
}

func TestDropperRate(t *testing.T) {
	var l loss
	d := newDropper(&l, 1)
	for range 1000 {
		if d.drop() {
			t.Fatal("dropped with loss 0")
		}
	}
	l.set(0.10)
	dropped := 0
	const n = 100000
	for range n {
		if d.drop() {
			dropped++
		}
	}
	// Seeded, so this count is the same every run; 10 % ± 0.5 % is
	// about five standard deviations.
	if f := float64(dropped) / n; f < 0.095 || f > 0.105 {
		t.Errorf("dropped %.3f of datagrams at loss 0.10", f)
	}
}

// fakeConn is an in-memory PacketConn: what is put on in is read.
type fakeConn struct {
	in     chan datagram
	closed chan struct{}
	sent   [][]byte
}

func newFakeConn() *fakeConn {
	return &fakeConn{in: make(chan datagram, 8), closed: make(chan struct{})}
}

func (f *fakeConn) ReadFrom(p []byte) (int, net.Addr, error) {
	select {
	case g := <-f.in:
		return copy(p, g.b), g.src, g.err
	case <-f.closed:
		return 0, nil, net.ErrClosed
	}
}

func (f *fakeConn) WriteTo(p []byte, _ net.Addr) (int, error) {
	f.sent = append(f.sent, append([]byte(nil), p...))
	return len(p), nil
}

func (f *fakeConn) Close() error                     { close(f.closed); return nil }
func (f *fakeConn) LocalAddr() net.Addr              { return &net.UDPAddr{} }
func (f *fakeConn) SetDeadline(time.Time) error      { return nil }
func (f *fakeConn) SetReadDeadline(time.Time) error  { return nil }
func (f *fakeConn) SetWriteDeadline(time.Time) error { return nil }

func udp(s string) *net.UDPAddr { return net.UDPAddrFromAddrPort(netip.MustParseAddrPort(s)) }

func TestDualConn(t *testing.T) {
	a, b := newFakeConn(), newFakeConn()
	d := newDualConn(a, b)
	a.in <- datagram{b: []byte("unicast"), src: udp("10.213.0.2:9710")}
	b.in <- datagram{b: []byte("broadcast"), src: udp("10.213.0.3:9710")}
	got := map[string]bool{}
	buf := make([]byte, 64)
	for range 2 {
		k, _, err := d.ReadFrom(buf)
		if err != nil {
			t.Fatal(err)
		}
		got[string(buf[:k])] = true
	}
	if !got["unicast"] || !got["broadcast"] {
		t.Errorf("read %v from both sockets, want unicast and broadcast", got)
	}
	d.WriteTo([]byte("out"), udp("10.213.255.255:9710"))
	if len(a.sent) != 1 || len(b.sent) != 0 {
		t.Errorf("sent %d through the first socket and %d through the second, want 1 and 0", len(a.sent), len(b.sent))
	}

	// A deadline set while a read waits ends it (cluster.Node.Run stops
	// its reader so); a cleared one lets reads wait again.
	errc := make(chan error, 1)
	go func() { _, _, err := d.ReadFrom(buf); errc <- err }()
	time.Sleep(10 * time.Millisecond)
	d.SetReadDeadline(time.Unix(1, 0))
	if err := <-errc; !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read after a past deadline: %v, want a timeout", err)
	}
	d.SetReadDeadline(time.Time{})
	a.in <- datagram{b: []byte("again"), src: udp("10.213.0.2:9710")}
	if k, _, err := d.ReadFrom(buf); err != nil || string(buf[:k]) != "again" {
		t.Errorf("read after clearing the deadline: %q, %v", buf[:k], err)
	}

	go func() { _, _, err := d.ReadFrom(buf); errc <- err }()
	d.Close()
	if err := <-errc; !errors.Is(err, net.ErrClosed) {
		t.Errorf("read on a closed conn: %v, want net.ErrClosed", err)
	}
}

func TestMeteredConn(t *testing.T) {
	f := newFakeConn()
	var l loss
	m := &meteredConn{PacketConn: f, self: netip.MustParseAddr("10.213.0.1"), t: new(traffic), d: newDropper(&l, 7)}
	f.in <- datagram{b: []byte("echo"), src: udp("10.213.0.1:9710")}
	f.in <- datagram{b: []byte("peer"), src: udp("10.213.0.2:9710")}
	buf := make([]byte, 64)
	for _, want := range []string{"echo", "peer"} {
		if k, _, err := m.ReadFrom(buf); err != nil || string(buf[:k]) != want {
			t.Fatalf("read %q, %v; want %q", buf[:k], err, want)
		}
	}
	m.WriteTo([]byte("hello"), udp("10.213.255.255:9710"))
	if got := m.t.recvPkts.Load(); got != 1 {
		t.Errorf("counted %d datagrams received, want 1 (our own echo is not counted)", got)
	}
	if m.t.sentPkts.Load() != 1 || m.t.sentBytes.Load() != 5 {
		t.Errorf("counted %d datagrams, %d bytes sent; want 1, 5", m.t.sentPkts.Load(), m.t.sentBytes.Load())
	}

	// At loss 1 - 1e-6 nearly everything from peers goes, and echoes stay.
	l.set(0.999999)
	for range 5 {
		f.in <- datagram{b: []byte("peer"), src: udp("10.213.0.2:9710")}
	}
	f.in <- datagram{b: []byte("echo"), src: udp("10.213.0.1:9710")}
	if k, _, _ := m.ReadFrom(buf); string(buf[:k]) != "echo" {
		t.Errorf("read %q, want the echo: every datagram from a peer should be lost", buf[:k])
	}
	if m.t.dropped.Load() != 5 || m.t.datagrams.Load() != 6 || m.t.recvPkts.Load() != 6 {
		t.Errorf("dropped %d of %d datagrams (%d packets) received, want 5 of 6 (6)",
			m.t.dropped.Load(), m.t.datagrams.Load(), m.t.recvPkts.Load())
	}
}

func TestParseEvent(t *testing.T) {
	created := time.Unix(1000, 0)
	for _, c := range []struct {
		line, id, what string
		at             time.Duration
		ok             bool
	}{
		{"12.345 0a1b2c3d joined fornax-02 10.0.0.3\n", "0a1b2c3d", "joined", 12345 * time.Millisecond, true},
		{"0.001 0a1b2c3d suspect\n", "0a1b2c3d", "suspect", time.Millisecond, true},
		{"30.000 0a1b2c3d dead", "0a1b2c3d", "dead", 30 * time.Second, true},
		{"30.001 0a1b2c3d renamed db-1\n", "", "", 0, false},
		{"lost 3 events\n", "", "", 0, false},
		{"1.5 0a1b2c3d left\n", "", "", 0, false},
		{"x.000 0a1b2c3d left\n", "", "", 0, false},
	} {
		at, id, what, ok := parseEvent(c.line, created)
		if ok != c.ok || ok && (id != c.id || what != c.what || at != created.Add(c.at)) {
			t.Errorf("parseEvent(%q) = %v %q %q %v", c.line, at.Sub(created), id, what, ok)
		}
	}
}

func TestFirstSeen(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	obs := []observation{
		{1, "x", sawJoined, at(-5)}, // before since
		{1, "x", sawJoined, at(7)},
		{1, "x", sawJoined, at(3)}, // earlier, recorded later
		{2, "y", sawJoined, at(1)}, // another target
		{2, anyTarget, sawSuspect, at(4)},
		{3, "x", sawLeft, at(2)},   // another kind
		{9, "x", sawJoined, at(1)}, // not an observer asked about
	}
	got := firstSeen(obs, []int{1, 2, 3}, "x", []string{sawJoined}, t0)
	if len(got) != 1 || !got[1].Equal(at(3)) {
		t.Errorf("joined x: %v, want observer 1 at 3 ms only", got)
	}
	got = firstSeen(obs, []int{1, 2, 3}, "x", []string{sawSuspect, sawLeft}, t0)
	if len(got) != 2 || !got[2].Equal(at(4)) || !got[3].Equal(at(2)) {
		t.Errorf("suspect or left x: %v, want observer 2 at 4 ms (any target), 3 at 2 ms", got)
	}
}

func TestRecorderOff(t *testing.T) {
	var r recorder
	r.add(1, "x", sawJoined, time.Now())
	r.start()
	r.add(2, "x", sawJoined, time.Now())
	if obs := r.stop(); len(obs) != 1 || obs[0].observer != 2 {
		t.Errorf("recorded %v, want only what came while on", obs)
	}
	r.add(3, "x", sawJoined, time.Now())
	r.start()
	if obs := r.stop(); len(obs) != 0 {
		t.Errorf("start kept %v from before", obs)
	}
}

func TestTable(t *testing.T) {
	ms := func(d ...int) []timing {
		var ts []timing
		for _, x := range d {
			ts = append(ts, timing{time.Duration(x) * time.Millisecond, 15, 15})
		}
		return ts
	}
	ml := &result{name: "memberlist", n: 16, join: ms(200, 210, 190), leave: ms(400, 300, 350),
		perNode: trafficRate{sentB: 100}, heapPerNode: 80 * 1024, falseSuspect: 3, lossFor: time.Minute}
	fx := &result{name: "fornax default", n: 16, join: ms(1, 2, 3), leave: ms(20, 40, 60),
		perNode: trafficRate{sentB: 25}, heapPerNode: 20 * 1024, falseSuspect: 0, lossFor: time.Minute}
	fx.suspect = []timing{{time.Second, 7, 15}}
	ml.dead = ms(6000, 7000)
	out := table(16, []*result{ml, fx}, plan{lossFor: time.Minute, lossRate: 0.1})
	for _, want := range []string{
		"| N = 16 | memberlist | fornax default | default ÷ memberlist |",
		"| newcomer listed by all | 200 ms (190 ms–210 ms) | 2.0 ms (1.0 ms–3.0 ms) | 0.01× |",
		"| graceful leave seen by all | 350 ms (300 ms–400 ms) | 40 ms (20 ms–60 ms) | 0.114× |",
		"| crash → suspect by all | — | timed out (7/15 saw it) | — |",
		"| crash → dead by all | 6500 ms (6000 ms–7000 ms) | — | — |",
		"| sent, B/s per node | 100 | 25 | 0.25× |",
		"| heap per node | 80.0 KiB | 20.0 KiB | 0.25× |",
		"false suspicions | 3 (0.188 /node/min) | 0 (0 /node/min) | 0× |",
		"default join 0.01× (goal ≤ 0.5×): met; default leave 0.114× (goal ≤ 0.1×): NOT met.",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

func TestTableFailed(t *testing.T) {
	ml := &result{name: "memberlist", n: 16, failed: true}
	ml.notef("failed: %s", "did not converge")
	fx := &result{name: "fornax fast", n: 16, join: []timing{{time.Millisecond, 15, 15}}, perNode: trafficRate{sentB: 25}}
	out := table(16, []*result{ml, fx}, plan{})
	for _, want := range []string{
		"| newcomer listed by all | failed | 1.0 ms | — |",
		"| sent, B/s per node | failed | 25 | — |",
		"fast join not measured",
		"note (memberlist): failed: did not converge",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

func TestParseFlags(t *testing.T) {
	o, err := parseFlags([]string{"-n", "16, 64", "-systems", "memberlist,fast", "-loss", "0"})
	if err != nil {
		t.Fatal(err)
	}
	if len(o.sizes) != 2 || o.sizes[1] != 64 || o.systems[1] != "fast" || o.plan.lossFor != 0 {
		t.Errorf("parsed %+v", o)
	}
	for _, args := range [][]string{
		{"-n", "2"},
		{"-n", "16,x"},
		{"-systems", "memberlist,slow"},
		{"-loss-rate", "1"},
		{"-n", "4", "-crashes", "3"},
		{"extra"},
	} {
		if _, err := parseFlags(args); err == nil {
			t.Errorf("parseFlags(%q) accepted", args)
		}
	}
}
