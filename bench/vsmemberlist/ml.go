package main

import (
	"fmt"
	"io"
	"log"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/hashicorp/go-metrics"
	"github.com/hashicorp/memberlist"
)

// memberlistPort is where every memberlist node listens, UDP and TCP, on
// its own address of the benchmark's LAN.
const memberlistPort = 7946

// memberlistLAN runs memberlist nodes with DefaultLANConfig, each on its
// own address of the benchmark's LAN, all joining through node 0.
type memberlistLAN struct {
	rec   *recorder
	loss  *loss
	quiet *log.Logger

	mu    sync.Mutex
	index map[string]int // node name → index, for the metrics sink
}

func newMemberlistLAN(rec *recorder, l *loss) *memberlistLAN {
	m := &memberlistLAN{rec: rec, loss: l, quiet: log.New(io.Discard, "", 0), index: make(map[string]int)}
	// memberlist tells no one when it suspects a node, but counts it in
	// its metrics (memberlist.msg.suspect), labelled with the node's
	// MetricLabels: a sink that records those counts is how the benchmark
	// sees a suspicion. The sink is the process's global one.
	conf := metrics.DefaultConfig("")
	conf.EnableHostname, conf.EnableHostnameLabel, conf.EnableRuntimeMetrics = false, false, false
	if _, err := metrics.NewGlobal(conf, &suspectSink{lan: m}); err != nil {
		panic(err) // only a bad config fails, and this one is fixed
	}
	return m
}

func (l *memberlistLAN) name() string { return "memberlist" }

func mlName(k int) string { return fmt.Sprintf("ml-%03d", k) }

type memberlistNode struct {
	idx  int
	name string
	ml   *memberlist.Memberlist
	t    traffic
	once sync.Once
}

func (l *memberlistLAN) start(k int) (member, error) {
	addr := hostAddr(k)
	nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
		BindAddrs: []string{addr.String()},
		BindPort:  memberlistPort,
		Logger:    l.quiet,
	})
	if err != nil {
		return nil, fmt.Errorf("memberlist node %d: %w", k, err)
	}
	n := &memberlistNode{idx: k, name: mlName(k)}
	l.mu.Lock()
	l.index[n.name] = k
	l.mu.Unlock()
	conf := memberlist.DefaultLANConfig()
	conf.Name = n.name
	conf.Transport = newMeteredTransport(nt, &n.t, newDropper(l.loss, uint64(k)+1))
	conf.Logger = l.quiet
	conf.Events = &mlEvents{idx: k, rec: l.rec}
	conf.MetricLabels = []metrics.Label{{Name: "bench_node", Value: n.name}}
	ml, err := memberlist.Create(conf)
	if err != nil {
		nt.Shutdown()
		return nil, fmt.Errorf("memberlist node %d: %w", k, err)
	}
	n.ml = ml
	if k != 0 {
		if _, err := ml.Join([]string{netip.AddrPortFrom(hostAddr(0), memberlistPort).String()}); err != nil {
			ml.Shutdown()
			return nil, fmt.Errorf("memberlist node %d: join: %w", k, err)
		}
	}
	return n, nil
}

// converged reports whether every node lists every other one (alive or
// suspect: memberlist's Members).
func (l *memberlistLAN) converged(ms []member) bool {
	for _, m := range ms {
		if m.(*memberlistNode).ml.NumMembers() != len(ms) {
			return false
		}
	}
	return true
}

func (n *memberlistNode) index() int        { return n.idx }
func (n *memberlistNode) target() string    { return n.name }
func (n *memberlistNode) traffic() *traffic { return &n.t }

// leave is memberlist's graceful exit: Leave, then Shutdown.
func (n *memberlistNode) leave() {
	n.once.Do(func() {
		n.ml.Leave(5 * time.Second)
		n.ml.Shutdown()
	})
}

// crash is Shutdown without Leave: the node stops answering.
func (n *memberlistNode) crash() { n.once.Do(func() { n.ml.Shutdown() }) }

// mlEvents records what node idx's memberlist reports.
type mlEvents struct {
	idx int
	rec *recorder
}

func (e *mlEvents) NotifyJoin(n *memberlist.Node) { e.rec.add(e.idx, n.Name, sawJoined, time.Now()) }
func (e *mlEvents) NotifyLeave(n *memberlist.Node) {
	e.rec.add(e.idx, n.Name, sawGone, time.Now())
}
func (e *mlEvents) NotifyUpdate(*memberlist.Node) {}

// suspectSink is a go-metrics sink that records memberlist.msg.suspect,
// which a node counts once each time it marks an alive node suspect
// (memberlist's suspectNode). The count does not say which node; during
// a crash only one is down, and under loss every suspicion is false.
type suspectSink struct {
	metrics.BlackholeSink
	lan *memberlistLAN
}

func (s *suspectSink) IncrCounterWithLabels(key []string, _ float32, labels []metrics.Label) {
	if len(key) != 3 || key[0] != "memberlist" || key[1] != "msg" || key[2] != "suspect" {
		return
	}
	for _, l := range labels {
		if l.Name == "bench_node" {
			s.lan.mu.Lock()
			k, ok := s.lan.index[l.Value]
			s.lan.mu.Unlock()
			if ok {
				s.lan.rec.add(k, anyTarget, sawSuspect, time.Now())
			}
		}
	}
}

// meteredTransport wraps memberlist's own NetTransport: it counts every
// UDP datagram and the TCP streams' bytes, and drops received datagrams
// at the loss rate (not TCP, whose losses TCP itself repairs). It is a
// plain Transport, so memberlist's node-aware calls come through it too.
type meteredTransport struct {
	inner   *memberlist.NetTransport
	t       *traffic
	packets chan *memberlist.Packet
	streams chan net.Conn
	// closing: memberlist no longer reads, so the pumps throw away what
	// comes (the inner listeners wait for that before they stop);
	// stopped: the inner transport has stopped, and so do the pumps.
	closing, stopped chan struct{}
	once             sync.Once
}

func newMeteredTransport(inner *memberlist.NetTransport, t *traffic, d *dropper) *meteredTransport {
	m := &meteredTransport{
		inner:   inner,
		t:       t,
		packets: make(chan *memberlist.Packet),
		streams: make(chan net.Conn),
		closing: make(chan struct{}),
		stopped: make(chan struct{}),
	}
	go m.pumpPackets(d)
	go m.pumpStreams()
	return m
}

func (m *meteredTransport) pumpPackets(d *dropper) {
	for {
		select {
		case p := <-m.inner.PacketCh():
			if m.t.datagram(len(p.Buf), d) {
				continue
			}
			select {
			case m.packets <- p:
			case <-m.closing:
			}
		case <-m.stopped:
			return
		}
	}
}

func (m *meteredTransport) pumpStreams() {
	for {
		select {
		case c := <-m.inner.StreamCh():
			select {
			case m.streams <- &meteredStream{Conn: c, t: m.t}:
			case <-m.closing:
				c.Close()
			}
		case <-m.stopped:
			return
		}
	}
}

func (m *meteredTransport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	return m.inner.FinalAdvertiseAddr(ip, port)
}

func (m *meteredTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	at, err := m.inner.WriteTo(b, addr)
	if err == nil {
		m.t.sent(len(b))
	}
	return at, err
}

func (m *meteredTransport) PacketCh() <-chan *memberlist.Packet { return m.packets }

func (m *meteredTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	c, err := m.inner.DialTimeout(addr, timeout)
	if err != nil {
		return nil, err
	}
	return &meteredStream{Conn: c, t: m.t}, nil
}

func (m *meteredTransport) StreamCh() <-chan net.Conn { return m.streams }

func (m *meteredTransport) Shutdown() error {
	var err error
	m.once.Do(func() {
		close(m.closing)
		err = m.inner.Shutdown()
		close(m.stopped)
	})
	return err
}

// meteredStream counts a TCP stream's payload.
type meteredStream struct {
	net.Conn
	t *traffic
}

func (s *meteredStream) Read(p []byte) (int, error) {
	k, err := s.Conn.Read(p)
	if k > 0 {
		s.t.received(k)
	}
	return k, err
}

func (s *meteredStream) Write(p []byte) (int, error) {
	k, err := s.Conn.Write(p)
	if k > 0 {
		s.t.sent(k)
	}
	return k, err
}
