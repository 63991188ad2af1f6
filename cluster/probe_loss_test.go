package cluster

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The Scale issue's loss test (docs/protocol.md §4.5): N live nodes on a
// LAN that loses each datagram at each receiver independently, for some
// simulated minutes. Every node stays up, so every suspect is a false
// suspect and every dead a false dead.

// lossResult is what a lossy run saw, summed over all nodes.
type lossResult struct {
	suspects, deads  int // events of live peers
	probes, answers  int // PROBEs and their HEARTBEATs sent
	indirect         int // ASKs, PROBEs for them and RELAYs sent
	held             int // probes_held + probe_answers_held
	sent             int // every datagram sent
	nodes            int
	simulated        time.Duration
	probesDelivered  bool
	lossPercent      int
	profile          string
	largestSuspected int           // most suspect events of one (observer, peer) pair
	suspectTime      time.Duration // summed over the suspect spells that ended online
	spells           int           // how many
}

// perNodeSecond is x per node per simulated second.
func (r lossResult) perNodeSecond(x int) float64 {
	return float64(x) / float64(r.nodes) / r.simulated.Seconds()
}

// perNodeHour is x per node per simulated hour.
func (r lossResult) perNodeHour(x int) float64 {
	return float64(x) / float64(r.nodes) / r.simulated.Hours()
}

// probeTraffic is every datagram of §4.5 sent: probes, answers, ASKs,
// the probes for them and RELAYs.
func (r lossResult) probeTraffic() int { return r.probes + r.answers + r.indirect }

// lossRun runs nodes nodes of the given profile for d with lossPercent %
// of datagrams lost, independently per receiver and datagram (a seeded
// RNG: the run is reproducible). Without probes, every PROBE, ASK and
// RELAY is lost too: the nodes behave as before §4.5, at the same loss.
func lossRun(t *testing.T, nodes int, profile string, d time.Duration, lossPercent int, probes bool, seed uint64) lossResult {
	prof, err := LookupProfile(profile)
	if err != nil {
		t.Fatal(err)
	}
	sm := newSim(t)
	rng := rand.New(rand.NewPCG(seed, 7))
	lossy := false // from when the join has settled
	sm.filter = func(dl *delivery) (bool, time.Duration) {
		if !lossy || dl.from == dl.to {
			return false, ms // our own broadcast looped back: not the LAN
		}
		if m := dl.msg(); !probes && (strings.HasPrefix(m, "PROBE ") || strings.HasPrefix(m, "ASK ") || strings.HasPrefix(m, "RELAY ")) {
			return true, 0
		}
		return rng.IntN(100) < lossPercent, ms
	}
	var ns []*simNode
	// Nodes start spread over one interval, as machines booted apart.
	step := prof.Interval / time.Duration(nodes)
	for h := 1; h <= nodes; h++ {
		ns = append(ns, sm.start(h, prof.Apply))
		sm.run(step)
	}
	// Let the join settle (every node lists every other), then count
	// from a clean slate.
	sm.run(2 * prof.Interval)
	lossy = true
	for _, n := range ns {
		if got := len(n.Peers()); got != nodes-1 {
			t.Fatalf("%s lists %d peers after the join, want %d", n.ID(), got, nodes-1)
		}
	}
	marks := make([]uint64, len(ns))
	base := make([]map[string]int, len(ns))
	for i, n := range ns {
		marks[i] = n.events.next
		base[i] = statMap(n)
	}
	res := lossResult{nodes: nodes, simulated: d, probesDelivered: probes, lossPercent: lossPercent, profile: profile}
	pairs := make(map[[2]string]int)
	since := make(map[[2]string]time.Duration) // suspect spells open
	// Read each node's events before its ring can wrap: a node sees at
	// most a few events per interval here.
	for end := sm.clock.Now().Add(d); sm.clock.Now().Before(end); {
		sm.run(min(prof.Interval, end.Sub(sm.clock.Now())))
		for i, n := range ns {
			r := n.events
			r.mu.Lock()
			if r.next-marks[i] > EventBacklog {
				r.mu.Unlock()
				t.Fatalf("%s: %d events in one interval, the ring lost some", n.ID(), r.next-marks[i])
			}
			for ; marks[i] < r.next; marks[i]++ {
				f := strings.Fields(r.lines[marks[i]%EventBacklog])
				at, err := time.ParseDuration(f[0] + "s")
				if err != nil {
					t.Fatal(err)
				}
				k := [2]string{n.ID(), f[1]}
				switch f[2] {
				case "suspect":
					res.suspects++
					pairs[k]++
					res.largestSuspected = max(res.largestSuspected, pairs[k])
					since[k] = at
				case "online":
					if t0, ok := since[k]; ok {
						res.suspectTime += at - t0
						res.spells++
					}
					delete(since, k)
				case "dead":
					res.deads++
					delete(since, k)
				}
			}
			r.mu.Unlock()
		}
	}
	for i, n := range ns {
		st := statMap(n)
		res.probes += st["probes"] - base[i]["probes"]
		res.answers += st["probe_answers"] - base[i]["probe_answers"]
		for _, k := range []string{"asks", "ask_probes", "relays"} {
			res.indirect += st[k] - base[i][k]
		}
		res.held += st["probes_held"] - base[i]["probes_held"] + st["probe_answers_held"] - base[i]["probe_answers_held"]
		res.sent += st["sent"] - base[i]["sent"]
	}
	return res
}

// statMap returns n's stats file as a map.
func statMap(n *simNode) map[string]int {
	m := make(map[string]int)
	for l := range strings.Lines(n.read("stats")) {
		k, v, _ := strings.Cut(strings.TrimSuffix(l, "\n"), " ")
		var x int
		for _, c := range v {
			x = x*10 + int(c-'0')
		}
		m[k] = x
	}
	return m
}

func (r lossResult) log(t *testing.T) {
	t.Helper()
	what := "before §4.5 (probes lost)"
	if r.probesDelivered {
		what = "with probes"
	}
	var mean time.Duration
	if r.spells > 0 {
		mean = r.suspectTime / time.Duration(r.spells)
	}
	t.Logf("%s, %d nodes, %d %% loss, %v simulated, profile %s: %d false suspects (back online after %v on average, "+
		"most for one pair %d), %d false deads; probes %.4f + answers %.4f + ASKs, their probes and RELAYs %.4f "+
		"per node per second (all datagrams %.3f per node per second, held by budgets %d)",
		what, r.nodes, r.lossPercent, r.simulated, r.profile, r.suspects, mean.Round(time.Millisecond),
		r.largestSuspected, r.deads, r.perNodeSecond(r.probes), r.perNodeSecond(r.answers),
		r.perNodeSecond(r.indirect), r.perNodeSecond(r.sent), r.held)
}

func TestProbeLoss(t *testing.T) {
	// 200 nodes, 10 % loss, 10 simulated minutes, default profile: with
	// probes there must be no false dead and no false suspect. Expected without: P(6 losses
	// in a row) = 1e-6 per pair and interval, 200×199×120 pair-intervals,
	// so about 4 false deads (0.9 × 4.8). The run takes about 20 s; with
	// -short or -race, 50 nodes (BenchmarkProbeLoss has more).
	nodes := 200
	if testing.Short() || raceEnabled {
		nodes = 50
	}
	for _, probes := range []bool{false, true} {
		r := lossRun(t, nodes, "default", 10*time.Minute, 10, probes, 1)
		r.log(t)
		if probes && r.deads != 0 {
			t.Errorf("%d false deads with probes", r.deads)
		}
		// A quiet peer is probed before it is suspect (§4.5): a false
		// suspect takes about 7e-13 per pair and interval at 10 % loss.
		if probes && r.suspects != 0 {
			t.Errorf("%d false suspects with probes", r.suspects)
		}
	}
	// The fast profile, 20 nodes: one interval is 1 s, so 10 minutes
	// are 600 intervals.
	r := lossRun(t, 20, "fast", 10*time.Minute, 10, true, 1)
	r.log(t)
	if r.deads != 0 || r.suspects != 0 {
		t.Errorf("%d false suspects, %d false deads with probes", r.suspects, r.deads)
	}
}

// TestProbeLossTable prints the figures of TestProbeLoss for both
// profiles, at 10 % and 20 % loss, with and without probes: 200 nodes
// for 10 simulated minutes, over FORNAX_PROBE_SEEDS seeds (default 1).
// Each run takes about 20 s (default profile) to 2 minutes (fast), so
// it runs only when asked:
//
//	FORNAX_PROBE_TABLE=1 go test -run TestProbeLossTable -v -timeout 60m ./cluster/
//
// FORNAX_PROBE_ONLY=default/10 runs one profile and loss alone,
// FORNAX_PROBE_NODES=50 fewer nodes.
func TestProbeLossTable(t *testing.T) {
	if os.Getenv("FORNAX_PROBE_TABLE") == "" {
		t.Skip("set FORNAX_PROBE_TABLE=1 to run (minutes)")
	}
	seeds := 1
	if v := os.Getenv("FORNAX_PROBE_SEEDS"); v != "" {
		var err error
		if seeds, err = strconv.Atoi(v); err != nil || seeds < 1 {
			t.Fatalf("FORNAX_PROBE_SEEDS=%q: want a positive number", v)
		}
	}
	nodes := 200
	if v := os.Getenv("FORNAX_PROBE_NODES"); v != "" {
		var err error
		if nodes, err = strconv.Atoi(v); err != nil || nodes < 2 || nodes > 250 {
			t.Fatalf("FORNAX_PROBE_NODES=%q: want 2-250", v)
		}
	}
	t.Logf("| profile | loss | probes | runs | false suspects/run | false suspects per node-hour | false deads/run | mean suspect spell | probe datagrams/node/s | held/run |")
	t.Logf("|---|---|---|---|---|---|---|---|---|---|")
	only := os.Getenv("FORNAX_PROBE_ONLY") // "default/10": that profile and loss alone
	for _, profile := range []string{"default", "fast"} {
		for _, loss := range []int{10, 20} {
			if only != "" && only != fmt.Sprintf("%s/%d", profile, loss) {
				continue
			}
			for _, probes := range []bool{false, true} {
				var sum lossResult
				for i := range seeds {
					r := lossRun(t, nodes, profile, 10*time.Minute, loss, probes, uint64(i+1))
					sum.suspects += r.suspects
					sum.deads += r.deads
					sum.probes += r.probes
					sum.answers += r.answers
					sum.indirect += r.indirect
					sum.held += r.held
					sum.suspectTime += r.suspectTime
					sum.spells += r.spells
					sum.nodes, sum.simulated = r.nodes, sum.simulated+r.simulated
				}
				var mean time.Duration
				if sum.spells > 0 {
					mean = sum.suspectTime / time.Duration(sum.spells)
				}
				n := float64(seeds)
				t.Logf("| %s | %d %% | %v | %d | %.1f | %.4g | %.2f | %v | %.4f | %.1f |", profile, loss, probes, seeds,
					float64(sum.suspects)/n, sum.perNodeHour(sum.suspects), float64(sum.deads)/n, mean.Round(time.Millisecond),
					sum.perNodeSecond(sum.probeTraffic()), float64(sum.held)/n)
				if probes && sum.deads != 0 {
					t.Errorf("%s, %d %% loss: %d false deads with probes", profile, loss, sum.deads)
				}
			}
		}
	}
}
