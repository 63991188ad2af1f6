package ninep

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"fornax/cluster"
	"fornax/fs/ns"
)

// The cost of 9P requests beside a full table (docs/guide.md "9P"): a
// node with cluster.DefaultMaxPeers peers, fed real datagrams through a
// loopback UDP socket, so that its reader wakes as it does in the VM.

// stillClock is a clock that does not move: no peer ages while a
// benchmark runs, and no timer fires.
type stillClock struct{ t time.Time }

func (c stillClock) Now() time.Time                  { return c.t }
func (c stillClock) TimerAt(time.Time) cluster.Timer { return stillTimer{} }

type stillTimer struct{}

func (stillTimer) C() <-chan time.Time { return nil }
func (stillTimer) Stop() bool          { return true }

// udpFeed is the node's socket: a loopback UDP socket whose datagrams
// start with the 4 bytes of the IPv4 source they stand for. What the
// node sends goes nowhere.
type udpFeed struct{ net.PacketConn }

func (u udpFeed) ReadFrom(b []byte) (int, net.Addr, error) {
	buf := make([]byte, len(b)+4)
	for {
		n, _, err := u.PacketConn.ReadFrom(buf)
		if err != nil {
			return 0, nil, err
		}
		if n < 4 {
			continue
		}
		src := &net.UDPAddr{IP: net.IP(buf[:4:4]).To16(), Port: cluster.DefaultPort}
		return copy(b, buf[4:n]), src, nil
	}
}

func (udpFeed) WriteTo(b []byte, _ net.Addr) (int, error) { return len(b), nil }

// crowd is a running node with a full table, its tree mounted at
// /cluster of a name space.
type crowd struct {
	node *cluster.Node
	ns   *ns.Namespace
	send net.Conn // to the node's socket
	ids  []string
}

func peerID(i int) string { return fmt.Sprintf("%08x", 0x10000000+i) }

func peerAddr(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, 0, byte(1 + i/200), byte(1 + i%200)})
}

// sendAs sends m as if from the address of peer i.
func (c *crowd) sendAs(i int, m cluster.Message) error {
	a := peerAddr(i).As4()
	_, err := c.send.Write(m.Append(a[:]))
	return err
}

func (c *crowd) announce(i int) error {
	return c.sendAs(i, cluster.Message{Kind: cluster.Announce, ID: c.ids[i], Addr: peerAddr(i),
		Name: fmt.Sprintf("node-%04d", i), CPUs: 4, MemTotal: 1 << 30, MemFree: 1 << 29})
}

func newCrowd(t testing.TB, peers int) *crowd {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	node, err := cluster.New(cluster.Config{ID: "0a0b0c0d", Name: "n1", Addr: netip.MustParseAddr("10.0.0.1"),
		Prefix: netip.MustParsePrefix("10.0.0.0/16"), MaxPeers: peers,
		Clock: stillClock{time.Unix(1764493690, 0)}, Logf: func(string, ...any) {}}, udpFeed{pc})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { node.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); pc.Close(); <-done })
	send, err := net.Dial("udp4", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { send.Close() })
	c := &crowd{node: node, ns: ns.New(), send: send}
	for i := range peers {
		c.ids = append(c.ids, peerID(i))
	}
	if err := c.ns.Mount("/cluster", node.Tree()); err != nil {
		t.Fatal(err)
	}
	// Loopback drops what overflows the socket's buffer: announce in
	// rounds until every peer is listed.
	for round := 0; len(node.Peers()) < peers; round++ {
		if round == 50 {
			t.Fatalf("%d of %d peers listed", len(node.Peers()), peers)
		}
		for i := range peers {
			if err := c.announce(i); err != nil {
				t.Fatal(err)
			}
			if i%64 == 63 {
				time.Sleep(time.Millisecond)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return c
}

// BenchmarkCost is the cost of each kind of request at a full table,
// over net.Pipe, one request at a time: µs/req is the figure. The
// request budget is off: it would measure the budget's waits.
func BenchmarkCost(b *testing.B) {
	testNoBudget = true
	defer func() { testNoBudget = false }()
	c := newCrowd(b, cluster.DefaultMaxPeers)
	id := c.ids[len(c.ids)/2]
	walk16 := []string{"cluster", "nodes"}
	for len(walk16) < MaxWElem {
		walk16 = append(walk16, id, "..")
	}
	for _, tc := range []struct {
		name  string
		setup []string // walked to fid 1 once
		reqs  func(*raw) []*Fcall
	}{
		{"stat_view", []string{"cluster", "view"}, func(*raw) []*Fcall {
			return []*Fcall{{Type: Tstat, Fid: 1}}
		}},
		{"stat_status", []string{"cluster", "nodes", id, "status"}, func(*raw) []*Fcall {
			return []*Fcall{{Type: Tstat, Fid: 1}}
		}},
		{"walk16_clunk", nil, func(*raw) []*Fcall {
			return []*Fcall{{Type: Twalk, Fid: 0, Newfid: 2, Wname: walk16}, {Type: Tclunk, Fid: 2}}
		}},
		{"clone_open_peerdir_clunk", []string{"cluster", "nodes", id}, func(*raw) []*Fcall {
			return []*Fcall{{Type: Twalk, Fid: 1, Newfid: 2}, {Type: Topen, Fid: 2}, {Type: Tclunk, Fid: 2}}
		}},
		{"clone_open_read_view_clunk", []string{"cluster", "view"}, func(*raw) []*Fcall {
			return []*Fcall{{Type: Twalk, Fid: 1, Newfid: 2}, {Type: Topen, Fid: 2},
				{Type: Tread, Fid: 2, Count: 8192}, {Type: Tclunk, Fid: 2}}
		}},
		{"clone_open_nodes_clunk", []string{"cluster", "nodes"}, func(*raw) []*Fcall {
			return []*Fcall{{Type: Twalk, Fid: 1, Newfid: 2}, {Type: Topen, Fid: 2}, {Type: Tclunk, Fid: 2}}
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			r := dialRaw(b, New(c.ns, Config{}))
			r.attach(MaxMsize)
			if tc.setup != nil {
				if rf := r.rpc(&Fcall{Type: Twalk, Tag: 1, Fid: 0, Newfid: 1, Wname: tc.setup}); rf.Type != Rwalk || len(rf.Wqid) != len(tc.setup) {
					b.Fatalf("walk %q: %+v", tc.setup, rf)
				}
			}
			reqs := tc.reqs(r)
			for b.Loop() {
				for _, f := range reqs {
					f.Tag = 1
					if rf := r.rpc(f); rf.Type == Rerror {
						b.Fatalf("%d: %s", f.Type, rf.Ename)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*len(reqs)), "µs/req")
		})
	}
}

// tcpRaw is a raw client over a TCP connection to addr, for loops run
// in their own goroutines: its errors end the loop, not the test.
func tcpRaw(t testing.TB, addr string) *raw {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	r := &raw{t, c}
	r.attach(MaxMsize)
	return r
}

// loop sends reqs over and over until stop is closed or a reply fails.
func (r *raw) loop(stop <-chan struct{}, reqs ...*Fcall) (n int) {
	for {
		for _, f := range reqs {
			select {
			case <-stop:
				return n
			default:
			}
			f.Tag = 1
			b := f.Append(nil)
			if _, err := r.c.Write(b); err != nil {
				return n
			}
			if rf, err := r.recv(); err != nil || rf.Type == Rerror {
				return n
			}
			n++
		}
	}
}

// TestAcceptDelay: with a full table, one client looping Tstat view and
// sixteen looping 16-name walks through nodes/<id>/.., on one CPU, how
// long a datagram waits from the node's socket to its effect (an event
// line). It prints the percentiles; it fails only well above the goal
// (5 ms at the 99th percentile, docs/guide.md "9P"), as a loaded
// machine would otherwise make it flaky: before walks stopped copying
// the table it measured 46–56 ms.
func TestAcceptDelay(t *testing.T) {
	if testing.Short() {
		t.Skip("seconds of load")
	}
	c := newCrowd(t, cluster.DefaultMaxPeers)
	// Every connection served, whatever Serve's admission rules.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	srv, addr := New(c.ns, Config{}), l.Addr().String()
	go func() {
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			go srv.ServeConn(nc)
		}
	}()
	read, closeEvents, err := c.node.Tree().OpenStream("events")
	if err != nil {
		t.Fatal(err)
	}
	defer closeEvents()
	type line struct {
		at   time.Time
		text string
	}
	lines := make(chan line, 1024)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := read(ctx, buf)
			if err != nil {
				return
			}
			now := time.Now()
			for l := range strings.Lines(string(buf[:n])) {
				lines <- line{now, l}
			}
		}
	}()

	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var reqs atomic.Int64
	id := c.ids[0]
	walk16 := []string{"cluster", "nodes"}
	for len(walk16) < MaxWElem {
		walk16 = append(walk16, id, "..")
	}
	stat := tcpRaw(t, addr)
	stat.rpc(&Fcall{Type: Twalk, Tag: 1, Fid: 0, Newfid: 1, Wname: []string{"cluster", "view"}})
	wg.Go(func() { reqs.Add(int64(stat.loop(stop, &Fcall{Type: Tstat, Fid: 1}))) })
	for range 16 {
		r := tcpRaw(t, addr)
		wg.Go(func() {
			reqs.Add(int64(r.loop(stop, &Fcall{Type: Twalk, Fid: 0, Newfid: 2, Wname: walk16}, &Fcall{Type: Tclunk, Fid: 2})))
		})
	}

	// Peer 1 leaves and comes back, over and over: each datagram makes
	// one event line.
	var delays []time.Duration
	began := time.Now()
	for k := 0; len(delays) < 200 && time.Since(began) < 15*time.Second; k++ {
		time.Sleep(10 * time.Millisecond)
		m, want := cluster.Message{Kind: cluster.Leave, ID: c.ids[1]}, c.ids[1]+" left"
		if k%2 == 1 {
			want = c.ids[1] + " joined"
		}
		sent := time.Now()
		var err error
		if k%2 == 0 {
			err = c.sendAs(1, m)
		} else {
			err = c.announce(1)
		}
		if err != nil {
			t.Fatal(err)
		}
	wait:
		for {
			select {
			case l := <-lines:
				if strings.Contains(l.text, want) {
					delays = append(delays, l.at.Sub(sent))
					break wait
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("no %q within 10 s", want)
			}
		}
	}
	close(stop)
	wg.Wait()
	elapsed := time.Since(began)
	slices.Sort(delays)
	pct := func(p float64) time.Duration { return delays[int(p*float64(len(delays)-1))] }
	t.Logf("%d datagrams, %d 9P requests in %v (%.0f/s): acceptance delay p50 %v, p99 %v, max %v",
		len(delays), reqs.Load(), elapsed.Round(time.Millisecond), float64(reqs.Load())/elapsed.Seconds(),
		pct(0.5), pct(0.99), delays[len(delays)-1])
	if p99 := pct(0.99); p99 > 25*time.Millisecond {
		t.Errorf("acceptance delay p99 %v, goal 5 ms", p99)
	}
}
