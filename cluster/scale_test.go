package cluster

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The scale harness: N real Nodes on the simulated LAN of fake_test.go
// (fake clock, loss, delay and partition knobs), run through the
// scenarios of the Scale issue, one profile at a time (docs/protocol.md
// §4.4). Everything counted comes from the nodes themselves (their
// tables, their /cluster/events) or from the LAN (datagrams and bytes
// delivered); nothing is hard-coded. TestScale is the short form (200
// nodes) with assertions; BenchmarkScale the long form (1000 nodes by
// default), `make bench-sim`. The method and the figures are in
// docs/scale.md.

var (
	simLossFor     = flag.Duration("sim.lossfor", 10*time.Minute, "BenchmarkScale: how long the LAN loses datagrams, simulated, default profile")
	simLossForFast = flag.Duration("sim.lossfor.fast", 10*time.Minute, "BenchmarkScale: the same for the fast profile")
	simRemoval     = flag.Bool("sim.removal", true, "BenchmarkScale: partitions last until each side removes the other, not only until it is dead")
	simSteadyOnly  = flag.Bool("sim.steadyonly", false, "BenchmarkScale: only the join storm and the steady state (for CPU figures)")
	simLoss        = flag.Float64("sim.loss", 0.10, "BenchmarkScale: probability that a datagram is lost on the way to one receiver")
	simSegs        = flag.Int("sim.segs", 0, "BenchmarkScale: subnets joined by a router that forwards unicast only, every node seeded with one node of each (protocol §4.6); 0: one LAN")
)

// scaleConf is one run: n nodes of one profile.
type scaleConf struct {
	n       int
	profile Profile
	spread  time.Duration // every node starts within it
	steady  time.Duration // the steady state measured
	loss    float64       // probability of losing a datagram, per receiver
	lossFor time.Duration // how long
	crashes int           // nodes killed at the end
	// removal: the partition lasts until each side has removed the
	// other, not only until it finds it dead.
	removal    bool
	steadyOnly bool // stop after the steady state
	seed       uint64
	// segs, if set, splits the LAN into that many subnets joined by a
	// router that forwards unicast only, every node given the same
	// seeds, the first node of each (protocol §4.6); the partition
	// then cuts the router between the first half of them and the rest.
	segs int
}

// scaleResult is what a run measured.
type scaleResult struct {
	conf scaleConf

	join    joinResult
	joinOne joinOneResult

	// Steady state.
	steady        traffic
	steadyWall    time.Duration
	cpu           time.Duration // process CPU, user and system
	wallPerSimSec time.Duration
	cpuPerNodeSec time.Duration

	// Loss: state changes nodes made about peers that were alive all along.
	lossTraffic               traffic
	falseSuspect, falseDead   int
	falseRemoved, lostEvents  int
	recovered                 time.Duration // after the loss stops, until a full view again
	lossWall                  time.Duration
	suspectPairs, deadPairs   int // distinct (node, peer) pairs
	partitionFor              time.Duration
	sideView                  [2]int // peers online at a node of each side just before the heal
	merge                     time.Duration
	mergeTraffic              traffic
	mergeAnswers              int
	detectSuspect, detectDead []time.Duration // crash to suspect, to dead, per (observer, victim)
	undetected                int
	totalWall                 time.Duration
	laps                      []string // wall time of each phase
}

// events is an open /cluster/events of every node, to count what the
// nodes decided about their peers.
type events struct {
	reads map[*simNode]func(context.Context, []byte) (int, error)
	buf   []byte
	done  context.Context
}

func (s *sim) openEvents() *events {
	e := &events{reads: make(map[*simNode]func(context.Context, []byte) (int, error)), buf: make([]byte, 64<<10)}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // reads return what is there and do not wait
	e.done = ctx
	for _, n := range s.nodes {
		read, closeFn, err := n.Tree().OpenStream("events")
		if err != nil {
			s.t.Fatal(err)
		}
		s.t.Cleanup(closeFn)
		e.reads[n] = read
	}
	return e
}

// drain calls f with each event line that arrived at each node since the
// last drain (without its newline), by node.
func (e *events) drain(t testing.TB, f func(n *simNode, line string)) {
	for n, read := range e.reads {
		for {
			k, err := read(e.done, e.buf)
			for l := range strings.Lines(string(e.buf[:k])) {
				f(n, strings.TrimSuffix(l, "\n"))
			}
			if errors.Is(err, context.Canceled) {
				break
			}
			if err != nil {
				t.Fatalf("events of %v: %v", n.addr, err)
			}
		}
	}
}

// eventTime is when an event line happened, by the simulation's clock:
// lines count from the node's creation.
func eventTime(n *simNode, line string) time.Time {
	f, _, _ := strings.Cut(line, " ")
	sec, ms, _ := strings.Cut(f, ".")
	a, _ := strconv.Atoi(sec)
	b, _ := strconv.Atoi(ms)
	return n.events.start.Add(time.Duration(a)*time.Second + time.Duration(b)*time.Millisecond)
}

// label names a run in the tables: its profile, and its subnets if
// routed.
func (c scaleConf) label() string {
	if c.segs == 0 {
		return c.profile.Name
	}
	return fmt.Sprintf("%s, routed %d×%d", c.profile.Name, c.segs, (c.n+c.segs)/c.segs)
}

// runScale runs the scenarios in turn on one simulated LAN: join storm,
// steady state, loss, partition and heal, crashes.
func runScale(tb testing.TB, c scaleConf) scaleResult {
	wall0 := time.Now()
	r := scaleResult{conf: c}
	lapStart := wall0
	lap := func(phase string) {
		r.laps = append(r.laps, fmt.Sprintf("%s %v", phase, time.Since(lapStart).Round(100*time.Millisecond)))
		lapStart = time.Now()
	}
	s := newSimOn(tb, netip.MustParsePrefix("10.0.0.0/16"))
	s.quiet = true
	rng := rand.New(rand.NewPCG(c.seed, 2))
	iv := c.profile.Interval
	edit := func(cfg *Config) { c.profile.Apply(cfg) }
	if c.segs > 0 {
		s.per = (c.n + c.segs) / c.segs // the newcomer of joinOne fits in the last
		edit = both(edit, seeded(c.segs))
	}

	// Join storm: every node starts at a random time within spread.
	r.join = joinStorm(tb, s, joinConf{n: c.n, interval: iv, timings: edit, spread: c.spread, seed: c.seed})
	// Then one more node, once the storm's answers are out.
	s.run(3 * iv)
	r.joinOne = joinOne(tb, s, iv, edit)
	m := len(s.nodes)
	lap("join")

	// Steady state, once the answers of the storm are out.
	s.run(2 * iv)
	base := s.counters()
	var ru0, ru1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	w := time.Now()
	s.run(c.steady)
	r.steadyWall = time.Since(w)
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	r.steady = s.since(base, c.steady)
	r.cpu = rusageTime(ru1) - rusageTime(ru0)
	nodeSec := float64(m) * c.steady.Seconds()
	r.wallPerSimSec = time.Duration(float64(r.steadyWall) / c.steady.Seconds())
	r.cpuPerNodeSec = time.Duration(float64(r.cpu) / nodeSec)

	// Loss: every datagram to every receiver lost with probability loss.
	// Every node is alive throughout, so every suspect and dead is false.
	ev := s.openEvents()
	suspects, deads := map[[2]string]bool{}, map[[2]string]bool{}
	count := func(n *simNode, line string) {
		f := strings.Fields(line)
		switch {
		case f[0] == "lost":
			k, _ := strconv.Atoi(f[1])
			r.lostEvents += k
		case len(f) == 3 && f[2] == "suspect":
			r.falseSuspect++
			suspects[[2]string{n.ID(), f[1]}] = true
		case len(f) == 3 && f[2] == "dead":
			r.falseDead++
			deads[[2]string{n.ID(), f[1]}] = true
		case len(f) == 3 && f[2] == "removed":
			r.falseRemoved++
		}
	}
	lap("steady")
	if c.steadyOnly {
		r.totalWall = time.Since(wall0)
		return r
	}
	s.loss, s.lossRand = c.loss, rand.New(rand.NewPCG(c.seed, 3))
	base = s.counters()
	w = time.Now()
	for end := s.clock.Now().Add(c.lossFor); s.clock.Now().Before(end); {
		s.runUntil(earliest(end, s.clock.Now().Add(iv)))
		ev.drain(tb, count)
	}
	r.lossWall = time.Since(w)
	r.lossTraffic = s.since(base, c.lossFor)
	s.loss = 0
	r.recovered = s.runToFullView(10*time.Millisecond, 60*iv)
	ev.drain(tb, count)
	r.suspectPairs, r.deadPairs = len(suspects), len(deads)
	if r.recovered < 0 {
		tb.Fatalf("%s, %d nodes: no full view within %v of the end of the loss", c.label(), c.n, 60*iv)
	}
	s.run(2 * iv)
	lap("loss")

	// Partition into halves, long enough that each side finds the other
	// dead (and, with removal, removes it), then heal.
	mid := s.host(m/2 + 1)
	if c.segs > 0 {
		mid = s.host(c.segs/2*s.per + 1) // the first host of the first subnet of the second half
	}
	s.side = func(a netip.Addr) int {
		if a.Less(mid) {
			return 0
		}
		return 1
	}
	r.partitionFor = c.profile.DeadAfter + 2*iv
	if c.removal {
		r.partitionFor += c.profile.RemoveAfter
	}
	s.run(r.partitionFor)
	r.sideView = [2]int{s.nodes[s.host(1)].onlinePeers(), s.nodes[s.host(m)].onlinePeers()}
	s.side = nil
	base, ans := s.counters(), s.answers()
	r.merge = s.runToFullView(10*time.Millisecond, 60*iv)
	if r.merge < 0 {
		tb.Fatalf("%s, %d nodes: the halves did not merge within %v of the heal", c.label(), c.n, 60*iv)
	}
	r.mergeTraffic = s.since(base, r.merge)
	r.mergeAnswers = s.answers() - ans

	lap("partition")

	// Crashes: nodes killed at random times over one interval; each other
	// node's suspect and dead event dates its detection.
	s.run(2 * iv)
	ev = s.openEvents()
	ev.drain(tb, func(*simNode, string) {})
	killed := map[string]time.Time{}
	victims := rng.Perm(m)[:c.crashes]
	at := make([]time.Duration, len(victims))
	for i := range at {
		at[i] = time.Duration(rng.Int64N(int64(iv)))
	}
	slices.Sort(at)
	start := s.clock.Now()
	for i, v := range victims {
		s.runUntil(start.Add(at[i]))
		n := s.nodes[s.host(v+1)]
		killed[n.ID()] = s.clock.Now()
		s.kill(n)
		delete(ev.reads, n)
	}
	s.run(c.profile.DeadAfter + iv)
	seen := map[[2]string]bool{}
	ev.drain(tb, func(n *simNode, line string) {
		f := strings.Fields(line)
		k, ok := killed[f[1]]
		if len(f) != 3 || !ok {
			return
		}
		switch f[2] {
		case "suspect":
			r.detectSuspect = append(r.detectSuspect, eventTime(n, line).Sub(k))
		case "dead":
			r.detectDead = append(r.detectDead, eventTime(n, line).Sub(k))
			seen[[2]string{n.ID(), f[1]}] = true
		}
	})
	r.undetected = len(s.nodes)*len(killed) - len(seen)
	lap("crash")
	r.totalWall = time.Since(wall0)
	return r
}

func rusageTime(u syscall.Rusage) time.Duration {
	return time.Duration(u.Utime.Nano() + u.Stime.Nano())
}

// scaleTables formats the results as one table per scenario, a row per
// run.
func scaleTables(rs []scaleResult) string {
	return scenarioTables(rs) + fmt.Sprintf("\nwall time per run: %s\n", strings.Join(mapSlice(rs, func(r scaleResult) string {
		return fmt.Sprintf("%d %s %v (%s)", r.conf.n, r.conf.label(), r.totalWall.Round(time.Second), strings.Join(r.laps, ", "))
	}), ", "))
}

func scenarioTables(rs []scaleResult) string {
	var b strings.Builder
	row := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	ms := func(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

	row("\nJoin storm: every node starts at a random time within %v; full view = every node lists every other online; "+
		"answer datagrams = sent beyond the periodic schedule", rs[0].conf.spread)
	var js []joinResult
	var names []string
	for _, r := range rs {
		js, names = append(js, r.join), append(names, r.conf.label())
	}
	b.WriteString(strings.TrimPrefix(joinTable("", js, names), "\n\n"))
	var ones []joinOneResult
	for _, r := range rs {
		ones = append(ones, r.joinOne)
	}
	b.WriteString(joinOneTable(ones, names))

	row("\nSteady state, 12 intervals: per node per second; CPU per node-second (the process's, simulation included)")
	row("| nodes | profile | simulated | received /node/s | bytes /node/s | sent /node/s | CPU /node-s | wall per simulated s |")
	row("|---|---|---|---|---|---|---|---|")
	for _, r := range rs {
		t := r.steady
		row("| %d | %s | %v | %.1f | %.0f | %.2f | %.1f µs | %v |", t.n, r.conf.label(), r.conf.steady,
			t.perNodeSec(t.rx), t.perNodeSec(t.rxBytes), t.perNodeSec(t.sent),
			float64(r.cpuPerNodeSec.Nanoseconds())/1e3, r.wallPerSimSec.Round(time.Millisecond))
	}

	if rs[0].conf.steadyOnly {
		return b.String()
	}
	row("\nLoss: %.0f %% of datagrams lost per receiver, no node fails; every suspect and dead is false", rs[0].conf.loss*100)
	row("| nodes | profile | simulated | false suspects | (node, peer) pairs | per node per minute | false deads | pairs | removed | full view again after | wall |")
	row("|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rs {
		row("| %d | %s | %v | %d | %d | %.3f | %d | %d | %d | %s | %v |", r.conf.n, r.conf.label(), r.conf.lossFor,
			r.falseSuspect, r.suspectPairs, float64(r.falseSuspect)/float64(r.lossTraffic.n)/r.conf.lossFor.Minutes(),
			r.falseDead, r.deadPairs, r.falseRemoved, ms(r.recovered), r.lossWall.Round(time.Second))
		if r.lostEvents > 0 {
			row("(%d events lost by the counting reader: the figures above are lower bounds)", r.lostEvents)
		}
	}

	row("\nPartition into halves until each finds the other dead (removal: and removes it), then heal; merged = every node lists every other online")
	row("| nodes | profile | partitioned | peers online before the heal (side 1, side 2) | merged after | ANNOUNCE period | datagrams sent | answers | received /node |")
	row("|---|---|---|---|---|---|---|---|---|")
	for _, r := range rs {
		t := r.mergeTraffic
		row("| %d | %s | %v | %d, %d | %s | %v | %d | %d | %.0f |", r.conf.n, r.conf.label(), r.partitionFor,
			r.sideView[0], r.sideView[1], ms(r.merge), announceEvery*r.conf.profile.Interval, t.sent, r.mergeAnswers,
			float64(t.rx)/float64(t.n))
	}

	row("\nCrash: nodes killed at random times; time until each other node marks each suspect, dead")
	row("| nodes | profile | killed | suspect: min | median | max | dead: min | median | max | not dead |")
	row("|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rs {
		s, d := quantiles(r.detectSuspect), quantiles(r.detectDead)
		row("| %d | %s | %d | %s | %s | %s | %s | %s | %s | %d |", r.conf.n, r.conf.label(), r.conf.crashes,
			ms(s[0]), ms(s[1]), ms(s[2]), ms(d[0]), ms(d[1]), ms(d[2]), r.undetected)
	}
	return b.String()
}

// quantiles returns the min, median and max of l (zeros if empty).
func quantiles(l []time.Duration) [3]time.Duration {
	if len(l) == 0 {
		return [3]time.Duration{}
	}
	l = slices.Clone(l)
	slices.Sort(l)
	return [3]time.Duration{l[0], l[len(l)/2], l[len(l)-1]}
}

func mapSlice[T, U any](l []T, f func(T) U) []U {
	out := make([]U, len(l))
	for i, x := range l {
		out[i] = f(x)
	}
	return out
}

// scaleConfs are the runs of both profiles for n nodes, loss lasting
// lossFor (default profile) and fastLossFor (fast).
func scaleConfs(n int, loss float64, lossFor, fastLossFor time.Duration, removal bool) []scaleConf {
	var cs []scaleConf
	for _, p := range Profiles {
		c := scaleConf{n: n, profile: p, spread: 10 * time.Second, steady: 12 * p.Interval,
			loss: loss, lossFor: lossFor, crashes: max(n/100, 1), removal: removal, seed: 1}
		if p.Name == "fast" {
			c.lossFor = fastLossFor
		}
		cs = append(cs, c)
	}
	return cs
}

// BenchmarkScale is the long form: -sim.n nodes (1000), the loss for
// -sim.lossfor and -sim.lossfor.fast (10 simulated minutes each; the
// wall times are in docs/scale.md), partitions lasting until removal.
// `make bench-sim`.
func BenchmarkScale(b *testing.B) {
	var rs []scaleResult
	for _, c := range scaleConfs(*simNodes, *simLoss, *simLossFor, *simLossForFast, *simRemoval) {
		c.steadyOnly = *simSteadyOnly
		c.segs = *simSegs
		b.Run(fmt.Sprintf("n=%d/%s", c.n, strings.ReplaceAll(c.label(), " ", "-")), func(b *testing.B) {
			var r scaleResult
			for range b.N {
				r = runScale(b, c)
			}
			rs = append(rs, r)
			b.ReportMetric(r.join.fullAfterLast.Seconds(), "s-to-full-view")
			b.ReportMetric(float64(r.join.extra())/float64(c.n), "answer-datagrams/node")
			b.ReportMetric(r.steady.perNodeSec(r.steady.rx), "rx/node/s")
			b.ReportMetric(float64(r.cpuPerNodeSec.Nanoseconds())/1e3, "cpu-µs/node-s")
			b.ReportMetric(float64(r.falseDead), "false-deads")
			b.ReportMetric(r.merge.Seconds(), "s-to-merge")
		})
	}
	if len(rs) > 0 {
		fmt.Fprint(os.Stdout, scaleTables(rs))
	}
}

// TestScale is the short form of BenchmarkScale, with assertions on what
// must hold: 200 nodes, the loss for a minute (12 intervals of the
// default profile, 30 of the fast one in 30 s), partitions until both
// sides are dead to each other. The profiles run in parallel.
func TestScale(t *testing.T) {
	if testing.Short() {
		t.Skip("200 nodes for minutes of simulated time")
	}
	const n = 200
	confs := scaleConfs(n, 0.10, time.Minute, 30*time.Second, false)
	rs := make([]scaleResult, len(confs))
	t.Run("profiles", func(t *testing.T) {
		for i, c := range confs {
			t.Run(c.profile.Name, func(t *testing.T) {
				t.Parallel()
				rs[i] = runScale(t, c)
				checkScale(t, rs[i])
			})
		}
	})
	if !t.Failed() {
		t.Log(scaleTables(rs))
	}
}

// checkScale asserts what must hold of a run of TestScale.
func checkScale(t *testing.T, r scaleResult) {
	c, n, p := r.conf, r.conf.n, r.conf.profile
	// A newcomer is listed by all one network delay after its join
	// ANNOUNCE, and lists all once their answers are in: at most a
	// broadcast answer per interval, 1 s after an ANNOUNCE at the
	// soonest, plus the jitter (§4.1).
	if lim := p.Interval + DefaultAnswerEvery + DefaultReplyJitter; r.join.fullAfterLast > lim {
		t.Errorf("full view %v after the last start, want at most %v", r.join.fullAfterLast, lim)
	}
	// O(N) joins: a bounded number of answer datagrams per node, however
	// many nodes join.
	if per := float64(r.join.extra()) / float64(n); per > joinAnswerBound {
		t.Errorf("the join storm cost %d answer datagrams, %.1f per node: want at most %d per node",
			r.join.extra(), per, joinAnswerBound)
	}
	// One join costs O(N) datagrams delivered: an answer to the newcomer
	// from each node, one broadcast answer of the newcomer's (§4.1).
	if j := r.joinOne; j.extraRecv > 3*j.n {
		t.Errorf("one node joining %d cost %d datagrams delivered beyond the periodic ones, want at most %d",
			j.n, j.extraRecv, 3*j.n)
	}
	// Steady state: each node hears every node, itself included, once
	// per interval, and nothing else.
	want := float64(n+1) / p.Interval.Seconds()
	if got := r.steady.perNodeSec(r.steady.rx); got < 0.99*want || got > 1.01*want {
		t.Errorf("steady state: %.1f datagrams received per node per second, want %.1f", got, want)
	}
	if r.falseDead > 0 {
		// Probes (protocol §4.5) end a false suspicion before it is dead.
		t.Errorf("%d false deads (%d pairs) in %v at %.0f %% loss: a live peer was declared dead",
			r.falseDead, r.deadPairs, c.lossFor, 100*c.loss)
	}
	if lim := announceEvery * p.Interval; r.merge > lim {
		t.Errorf("the halves merged %v after the heal, want within one ANNOUNCE period (%v)", r.merge, lim)
	}
	for i, v := range []int{(n + 1) / 2, n + 1 - (n+1)/2} {
		if r.sideView[i] != v-1 {
			t.Errorf("side %d: a node listed %d peers before the heal, want the %d of its side online", i+1, r.sideView[i], v-1)
		}
	}
	// A crash is dead everywhere DeadAfter after the last message heard,
	// so no later than DeadAfter after the crash, and no sooner than one
	// interval less.
	d := quantiles(r.detectDead)
	if r.undetected > 0 || d[0] < p.DeadAfter-p.Interval || d[2] > p.DeadAfter {
		t.Errorf("crashes: %d (node, victim) pairs not dead; dead after %v to %v, want %v to %v",
			r.undetected, d[0], d[2], p.DeadAfter-p.Interval, p.DeadAfter)
	}
}

// joinAnswerBound is the most answer datagrams per node a join storm may
// cost (TestScale): §4.1 expects about one broadcast per node, plus a few
// unicasts.
const joinAnswerBound = 4
