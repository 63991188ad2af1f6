package cluster

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// The join storm of the scale harness (scale_test.go), apart so that it
// can also run on the code before unicast answers (commit 9ec7f31^), for
// the before/after figures of docs/scale.md: it uses only the sim of
// fake_test.go and what Node has had since then.

var simNodes = flag.Int("sim.n", 1000, "BenchmarkScale, BenchmarkJoinStorm: number of nodes")

// traffic is what the LAN carried over a span of simulated time.
type traffic struct {
	span              time.Duration
	n                 int // nodes
	sent, sentUnicast int // datagrams sent (a broadcast once)
	sentBytes         int
	rx, rxBytes       int // datagrams and payload bytes delivered, all receivers
	extraSent         int // of sent, not messages of the periodic schedule (§4.2): answers
	extraRx           int // of rx, deliveries of those
}

func (t traffic) perNodeSec(x int) float64 {
	if t.span <= 0 || t.n == 0 {
		return 0
	}
	return float64(x) / float64(t.n) / t.span.Seconds()
}

// counters sums the LAN counters of the nodes.
func (s *sim) counters() traffic {
	var t traffic
	for _, n := range s.nodes {
		t.n++
		t.sent += n.tx
		t.sentUnicast += n.txUnicast
		t.sentBytes += n.txBytes
		t.rx += n.rx
		t.rxBytes += n.rxBytes
		t.extraSent += n.txExtra
		t.extraRx += n.rxExtra
	}
	return t
}

// since is the traffic since an earlier snapshot a, over span.
func (s *sim) since(a traffic, span time.Duration) traffic {
	b := s.counters()
	return traffic{span: span, n: b.n, sent: b.sent - a.sent, sentUnicast: b.sentUnicast - a.sentUnicast,
		sentBytes: b.sentBytes - a.sentBytes, rx: b.rx - a.rx, rxBytes: b.rxBytes - a.rxBytes,
		extraSent: b.extraSent - a.extraSent, extraRx: b.extraRx - a.extraRx}
}

// answers sums the nodes' fast-join answers (stats "answers").
func (s *sim) answers() int {
	k := 0
	for _, n := range s.nodes {
		n.mu.Lock()
		k += int(n.st.answers)
		n.mu.Unlock()
	}
	return k
}

// onlinePeers is how many peers n lists online now.
func (n *simNode) onlinePeers() int {
	n.mu.Lock()
	n.tickLocked(n.clock.Now(), false)
	k := 0
	for _, p := range n.tab.peers {
		if p.Status == Online {
			k++
		}
	}
	n.mu.Unlock()
	return k
}

// fullView reports whether every live node lists every other online.
// It starts with the node that failed the last call, which likely still
// does: polled during a storm, it then costs one node, not all.
func (s *sim) fullView() bool {
	k := len(s.order)
	for i := range k {
		j := (s.viewHint + i) % k
		if s.nodes[s.order[j]].onlinePeers() != k-1 {
			s.viewHint = j
			return false
		}
	}
	return true
}

// runToFullView runs in steps of step until fullView, for at most limit;
// it returns how long it ran, or -1 if the view is not full by then.
func (s *sim) runToFullView(step, limit time.Duration) time.Duration {
	start := s.clock.Now()
	for s.clock.Now().Sub(start) <= limit {
		if s.fullView() {
			return s.clock.Now().Sub(start)
		}
		s.run(step)
	}
	return -1
}

// joinConf is a join storm: n nodes, each with timings applied to its
// Config, starting at random times within spread.
type joinConf struct {
	n        int
	interval time.Duration // of the timings
	timings  func(*Config)
	spread   time.Duration
	seed     uint64
}

// joinResult is what a join storm cost, from the first start to the
// full view.
type joinResult struct {
	fullView, fullAfterLast time.Duration // since the first start, the last
	traffic                 traffic
	answers                 int // fast-join answers (stats "answers")
}

// extra is what the join cost beyond the periodic messages: answer
// datagrams, a broadcast or a unicast one each.
func (j joinResult) extra() int { return j.traffic.extraSent }

// joinStorm starts c.n nodes (hosts 1 to n) on s and runs it until every
// node lists every other online.
func joinStorm(tb testing.TB, s *sim, c joinConf) joinResult {
	rng := rand.New(rand.NewPCG(c.seed, 2))
	starts := make([]time.Duration, c.n)
	for i := range starts {
		starts[i] = time.Duration(rng.Int64N(int64(c.spread) + 1))
	}
	slices.Sort(starts)
	t1 := t0.Add(starts[0])
	base := s.counters()
	for i, at := range starts {
		s.runTo(at)
		s.start(i+1, c.timings)
	}
	var r joinResult
	r.fullAfterLast = s.runToFullView(10*time.Millisecond, 60*c.interval)
	if r.fullAfterLast < 0 {
		tb.Fatalf("%d nodes: no full view within %v of the last start", c.n, 60*c.interval)
	}
	r.fullView = s.clock.Now().Sub(t1)
	r.traffic = s.since(base, r.fullView)
	r.answers = s.answers()
	return r
}

// joinOne is one node joining a settled cluster: what it costs beyond
// the periodic messages, sent and delivered, until the answers and the
// answers to the answers are out (§4.1: 1 s after the join ANNOUNCE plus
// the jitter).
type joinOneResult struct {
	n                    int // nodes before the join
	fullView             time.Duration
	extraSent, extraRecv int
}

func joinOne(tb testing.TB, s *sim, interval time.Duration, timings func(*Config)) joinOneResult {
	r := joinOneResult{n: len(s.nodes)}
	base := s.counters()
	start := s.clock.Now()
	s.start(r.n+1, timings)
	r.fullView = s.runToFullView(10*time.Millisecond, 60*interval)
	if r.fullView < 0 {
		tb.Fatalf("a node joining %d: no full view within %v", r.n, 60*interval)
	}
	s.runUntil(later(s.clock.Now(), start.Add(DefaultAnswerEvery+DefaultReplyJitter+100*time.Millisecond)))
	t := s.since(base, s.clock.Now().Sub(start))
	r.extraSent, r.extraRecv = t.extraSent, t.extraRx
	return r
}

// joinTable formats join storms, a row each.
func joinTable(title string, rs []joinResult, names []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n%s\n", title)
	b.WriteString("| nodes | timings | full view after first start | after last start | datagrams sent | answers | answer datagrams | of which unicast | answer datagrams /node | answers received /node | received /node | received /node/s | bytes /node/s |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for i, r := range rs {
		t := r.traffic
		fmt.Fprintf(&b, "| %d | %s | %.2f s | %.2f s | %d | %d | %d | %d | %.2f | %.0f | %.0f | %.0f | %.0f |\n",
			t.n, names[i], r.fullView.Seconds(), r.fullAfterLast.Seconds(), t.sent, r.answers,
			r.extra(), t.sentUnicast, float64(r.extra())/float64(t.n), float64(t.extraRx)/float64(t.n),
			float64(t.rx)/float64(t.n), t.perNodeSec(t.rx), t.perNodeSec(t.rxBytes))
	}
	return b.String()
}

// joinOneTable formats single joins, a row each.
func joinOneTable(rs []joinOneResult, names []string) string {
	var b strings.Builder
	b.WriteString("\nOne node joins a settled cluster: its cost beyond the periodic messages\n")
	b.WriteString("| nodes | timings | newcomer's full view after | datagrams sent | delivered | delivered per node of the cluster |\n")
	b.WriteString("|---|---|---|---|---|---|\n")
	for i, r := range rs {
		fmt.Fprintf(&b, "| %d+1 | %s | %.2f s | %d | %d | %.2f |\n", r.n, names[i], r.fullView.Seconds(),
			r.extraSent, r.extraRecv, float64(r.extraRecv)/float64(r.n))
	}
	return b.String()
}

// BenchmarkJoinStorm is the join storm alone, with the default timings:
// -sim.n nodes (1000) starting within 10 s, then one more node. It
// compiles against the code before unicast answers too, which gives the
// "before" rows of docs/scale.md.
func BenchmarkJoinStorm(b *testing.B) {
	var (
		r   joinResult
		one joinOneResult
	)
	none := func(*Config) {}
	for range b.N {
		s := newSimOn(b, netip.MustParsePrefix("10.0.0.0/16"))
		s.quiet = true
		r = joinStorm(b, s, joinConf{n: *simNodes, interval: DefaultInterval, timings: none,
			spread: 10 * time.Second, seed: 1})
		s.run(3 * DefaultInterval)
		one = joinOne(b, s, DefaultInterval, none)
	}
	b.ReportMetric(float64(r.extra())/float64(r.traffic.n), "answer-datagrams/node")
	b.ReportMetric(float64(r.traffic.rx)/float64(r.traffic.n), "received/node")
	b.ReportMetric(r.fullAfterLast.Seconds(), "s-to-full-view")
	b.ReportMetric(float64(one.extraRecv)/float64(one.n), "join-one-delivered/node")
	fmt.Fprint(os.Stdout, joinTable("Join storm, default timings, every node starting within 10 s", []joinResult{r}, []string{"default"}))
	fmt.Fprint(os.Stdout, joinOneTable([]joinOneResult{one}, []string{"default"}))
}
