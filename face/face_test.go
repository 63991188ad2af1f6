package face

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"fornax/cluster"
)

// lan is a fake cluster socket: datagrams put in arrive at the node;
// what the node sends is thrown away.
type lan struct {
	in     chan datagram
	closed chan struct{}
	once   sync.Once
}

type datagram struct {
	b   []byte
	src net.Addr
}

func newLAN() *lan { return &lan{in: make(chan datagram, 4096), closed: make(chan struct{})} }

func (l *lan) ReadFrom(p []byte) (int, net.Addr, error) {
	select {
	case d := <-l.in:
		return copy(p, d.b), d.src, nil
	case <-l.closed:
		return 0, nil, net.ErrClosed
	}
}
func (l *lan) WriteTo(p []byte, a net.Addr) (int, error) { return len(p), nil }
func (l *lan) Close() error                              { l.once.Do(func() { close(l.closed) }); return nil }
func (l *lan) LocalAddr() net.Addr                       { return &net.UDPAddr{Port: cluster.DefaultPort} }
func (l *lan) SetDeadline(time.Time) error               { return nil }
func (l *lan) SetReadDeadline(time.Time) error           { return nil }
func (l *lan) SetWriteDeadline(time.Time) error          { return nil }

// announce has peer i (10.0.x.y, id 1000000+i) announce itself.
func (l *lan) announce(i int, name string) {
	a := peerAddr(i)
	l.in <- datagram{
		b:   fmt.Appendf(nil, "ANNOUNCE %08x %v %s 2 1073741824 536870912 0\n", 0x10000000+i, a, name),
		src: &net.UDPAddr{IP: a.AsSlice(), Port: cluster.DefaultPort},
	}
}

func peerAddr(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, 0, byte(1 + i/250), byte(1 + i%250)})
}

var selfAddr = netip.MustParseAddr("10.0.0.1")

// testNode runs a node at 10.0.0.1/16 with peers peers, all listed, and
// a face on it.
func testNode(t testing.TB, peers int) (*cluster.Node, *lan, *face) {
	t.Helper()
	l := newLAN()
	res := func() cluster.Resources {
		return cluster.Resources{CPUs: 1, MemTotal: 64 << 20, MemFree: 32 << 20, Load: 0.25}
	}
	node, err := cluster.New(cluster.Config{
		ID: "00000001", Name: "fornax-01", Addr: selfAddr, Prefix: netip.MustParsePrefix("10.0.0.1/16"),
		Resources: res,
	}, l)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { node.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); l.Close(); <-done })
	for i := range peers {
		l.announce(i, fmt.Sprintf("peer-%d", i))
	}
	waitFor(t, func() bool { return len(node.Peers()) == peers }, "%d peers listed", peers)
	s, err := New(Config{Node: node, Addr: selfAddr, Profile: "default", Resources: res})
	if err != nil {
		t.Fatal(err)
	}
	return node, l, &face{Server: s}
}

// face is a Server under test; its listener starts at the first get.
type face struct {
	*Server
	base string
}

func waitFor(t testing.TB, cond func() bool, format string, args ...any) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not after 10 s: "+format, args...)
		}
	}
}

// serve runs s on a loopback listener and returns its base URL.
func serve(t testing.TB, s *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	t.Cleanup(func() { ln.Close() })
	return "http://" + ln.Addr().String()
}

type reply struct {
	Code   int
	Header http.Header
	Body   []byte
}

// get asks s, through Go's HTTP client, for path with method.
func get(t *testing.T, s *face, method, path string) reply {
	t.Helper()
	if s.base == "" {
		s.base = serve(t, s.Server)
	}
	req, err := http.NewRequest(method, s.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: body: %v", method, path, err)
	}
	return reply{resp.StatusCode, resp.Header, b}
}

func TestMetrics(t *testing.T) {
	_, _, s := testNode(t, 3)
	w := get(t, s, "GET", "/metrics")
	if w.Code != 200 || !strings.HasPrefix(w.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("GET /metrics: %d %q", w.Code, w.Header.Get("Content-Type"))
	}
	body := string(w.Body)
	// The reference parser of the format.
	parser := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("the reference parser refuses /metrics: %v\n%s", err, body)
	}
	value := func(name string, labels ...string) float64 {
		t.Helper()
		f := fams[name]
		if f == nil {
			t.Fatalf("no %s in\n%s", name, body)
		}
	next:
		for _, m := range f.Metric {
			for i := 0; i+1 < len(labels); i += 2 {
				ok := false
				for _, lp := range m.Label {
					ok = ok || lp.GetName() == labels[i] && lp.GetValue() == labels[i+1]
				}
				if !ok {
					continue next
				}
			}
			if m.Counter != nil {
				return m.Counter.GetValue()
			}
			return m.Gauge.GetValue()
		}
		t.Fatalf("no %s%v in\n%s", name, labels, body)
		return 0
	}
	if v := value("fornax_cluster_peers", "status", "online"); v != 3 {
		t.Errorf("online peers: %v", v)
	}
	if v := value("fornax_cluster_datagrams_accepted_total"); v < 3 {
		t.Errorf("accepted: %v", v)
	}
	if v := value("fornax_cluster_dropped_total", "reason", "malformed"); v != 0 {
		t.Errorf("dropped malformed: %v", v)
	}
	if v := value("fornax_cluster_messages_accepted_total", "kind", "announce"); v != 3 {
		t.Errorf("announces accepted: %v", v)
	}
	value("fornax_cluster_events_lost_total")
	value("fornax_cluster_auth_info", "mode", "plain")
	value("fornax_cluster_info", "id", "00000001", "profile", "default")
	for name, f := range fams {
		if !strings.HasPrefix(name, "fornax_") {
			t.Errorf("%s: no fornax_ prefix", name)
		}
		if f.GetType().String() == "COUNTER" != strings.HasSuffix(name, "_total") {
			t.Errorf("%s is a %v", name, f.GetType())
		}
	}
	promtool(t, body)
}

// promtool runs Prometheus' own linter on a /metrics body.
func promtool(t *testing.T, body string) {
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Log("### SKIPPING promtool check metrics: promtool is not installed (make deps installs Debian's prometheus)")
		return
	}
	cmd := exec.Command(path, "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

func TestMembersAndSD(t *testing.T) {
	_, _, s := testNode(t, 3)
	var ms []Member
	if err := json.Unmarshal(get(t, s, "GET", "/v1/members").Body, &ms); err != nil {
		t.Fatal(err)
	}
	if len(ms) != 4 || ms[0].Status != "self" || ms[0].ID != "00000001" || ms[0].HTTP != "10.0.0.1:9711" {
		t.Fatalf("members: %+v", ms)
	}
	for i, m := range ms[1:] {
		if m.ID != fmt.Sprintf("%08x", 0x10000000+i) || m.Status != "online" || m.Name != fmt.Sprintf("peer-%d", i) ||
			m.Addr != peerAddr(i).String() || m.CPUs != 2 || m.MemTotal != 1<<30 || m.MemFree != 1<<29 || m.Load != nil {
			t.Errorf("member %d: %+v", i, m)
		}
	}
	var self Self
	if err := json.Unmarshal(get(t, s, "GET", "/v1/self").Body, &self); err != nil {
		t.Fatal(err)
	}
	if self.Name != "fornax-01" || self.Auth != "plain" || self.Profile != "default" || self.Load == nil || *self.Load != 0.25 {
		t.Errorf("self: %+v", self)
	}
	var groups []TargetGroup
	if err := json.Unmarshal(get(t, s, "GET", "/sd").Body, &groups); err != nil {
		t.Fatal(err)
	}
	if len(groups) != 4 || groups[1].Targets[0] != peerAddr(0).String()+":9711" || groups[1].Labels["__meta_fornax_name"] != "peer-0" {
		t.Errorf("sd: %+v", groups)
	}
}

func TestRefused(t *testing.T) {
	_, _, s := testNode(t, 0)
	for _, c := range []struct {
		method, path string
		code         int
	}{
		{"POST", "/metrics", 405}, {"PUT", "/", 405}, {"DELETE", "/v1/self", 405},
		{"GET", "/nope", 404}, {"GET", "/v1/", 404}, {"GET", "/metrics/x", 404},
		{"HEAD", "/metrics", 200}, {"GET", "/", 200},
	} {
		if w := get(t, s, c.method, c.path); w.Code != c.code {
			t.Errorf("%s %s: %d, want %d", c.method, c.path, w.Code, c.code)
		}
	}
	if n := s.Stats.BadRequests.Load(); n != 6 {
		t.Errorf("bad requests counted: %d, want 6", n)
	}
	if w := get(t, s, "GET", "/"); len(w.Body) > 8<<10 || !strings.Contains(string(w.Body), `<tbody id="members">`) {
		t.Errorf("page: %d bytes", len(w.Body))
	}
}

func TestEvents(t *testing.T) {
	_, l, s := testNode(t, 1)
	resp, err := http.Get(serve(t, s.Server) + "/v1/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("content type %q", resp.Header.Get("Content-Type"))
	}
	r := bufio.NewReader(resp.Body)
	if l, err := r.ReadString('\n'); err != nil || l != ": fornax events\n" {
		t.Fatalf("first line %q %v", l, err)
	}
	r.ReadString('\n')
	l.announce(7, "late")
	line, err := r.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "data: ") || !strings.HasSuffix(line, " 10000007 joined late 10.0.1.8\n") {
		t.Fatalf("event: %q %v", line, err)
	}
}

// TestLimits: a source over its cap, and the server over its total, get
// their connections closed at once; the others are served.
func TestLimits(t *testing.T) {
	_, _, s := testNode(t, 0)
	s.cfg.MaxConns, s.cfg.MaxPerSource = 4, 2
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	defer ln.Close()
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	dial := func(src string) net.Conn {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		c, err := d.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
		return c
	}
	served := func(c net.Conn) bool {
		fmt.Fprintf(c, "GET /v1/self HTTP/1.1\r\nHost: x\r\n\r\n")
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return false
		}
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode == 200
	}
	a1, a2, a3 := dial("127.0.0.2"), dial("127.0.0.2"), dial("127.0.0.2")
	if !served(a1) || !served(a2) || served(a3) {
		t.Fatal("a source's third connection was served, or one of its first two was not")
	}
	b1, b2, b3 := dial("127.0.0.3"), dial("127.0.0.3"), dial("127.0.0.4")
	if !served(b1) || !served(b2) || served(b3) {
		t.Fatal("over the total: a fifth connection was served, or one of the four was not")
	}
	if n := s.Stats.Refused.Load(); n != 2 {
		t.Errorf("refused: %d, want 2", n)
	}
	a1.Close()
	waitFor(t, func() bool { return s.Stats.Conns.Load() == 3 }, "a closed connection released")
	if !served(dial("127.0.0.5")) {
		t.Error("a newcomer was not served after a connection closed")
	}
}

// BenchmarkRender: /metrics and /v1/members of a node with 1,024 peers,
// rendered as a request does (without the socket).
func BenchmarkRender(b *testing.B) {
	_, _, s := testNode(b, 1024)
	for _, c := range []struct {
		path string
		f    func() []byte
	}{
		{"/metrics", s.metricsText},
		{"/v1/members", func() []byte { return jsonResponse(s.members(time.Now())).body }},
		{"/sd", func() []byte { return jsonResponse(s.sd(time.Now())).body }},
	} {
		b.Run(c.path[1:], func(b *testing.B) {
			n := 0
			for b.Loop() {
				if n = len(c.f()); n == 0 {
					b.Fatal("empty")
				}
			}
			b.ReportMetric(float64(n), "bytes")
		})
	}
}

// TestStatNamesCoverStats: every line of a node's /cluster/stats is a
// family (dropped_, accepted_, sent_), left out, or has its own metric
// name and help in statNames, so that no counter gets the generic text.
func TestStatNamesCoverStats(t *testing.T) {
	node, _, _ := testNode(t, 0)
	b, err := node.Tree().ReadFile("stats")
	if err != nil {
		t.Fatal(err)
	}
	for name := range keyValues(b) {
		switch {
		case name == "dropped" || name == "peers",
			strings.HasPrefix(name, "dropped_"), strings.HasPrefix(name, "accepted_"), strings.HasPrefix(name, "sent_"):
		default:
			if _, ok := statNames[name]; !ok {
				t.Errorf("stats line %q has no entry in statNames", name)
			}
		}
	}
}
