package cluster

import (
	"testing"
	"time"
)

// TestScaleRouted is TestScale over 4 subnets of 50 joined by a router
// that forwards unicast only, every node given the same seeds, one node
// of each subnet (docs/protocol.md §4.6, docs/scale.md "Routed"). The
// partition cuts the router between the first two subnets and the
// others.
func TestScaleRouted(t *testing.T) {
	if testing.Short() {
		t.Skip("200 nodes for minutes of simulated time")
	}
	const n = 200
	confs := scaleConfs(n, 0.10, time.Minute, 30*time.Second, false)
	rs := make([]scaleResult, len(confs))
	t.Run("profiles", func(t *testing.T) {
		for i, c := range confs {
			c.segs = 4
			t.Run(c.profile.Name, func(t *testing.T) {
				t.Parallel()
				rs[i] = runScale(t, c)
				checkScaleRouted(t, rs[i])
			})
		}
	})
	if !t.Failed() {
		t.Log(scaleTables(rs))
	}
}

// checkScaleRouted asserts what must hold of a routed run.
func checkScaleRouted(t *testing.T, r scaleResult) {
	c, n, p := r.conf, r.conf.n, r.conf.profile
	// Nodes of other subnets learn of each other through the answers
	// and introductions of §4.6, and at the latest through the SYNC a
	// node sends 1, 2, 4 and then every 6 intervals after its join.
	if lim := (1 + 2 + 4) * p.Interval; r.join.fullAfterLast > lim {
		t.Errorf("full view %v after the last start, want at most %v", r.join.fullAfterLast, lim)
	}
	// A newcomer lists all from its subnet's answer.
	if r.joinOne.fullView > 10*time.Millisecond {
		t.Errorf("a newcomer listed all %v after its join, want 10 ms", r.joinOne.fullView)
	}
	// Steady state: each node hears every node once per interval, by
	// broadcast on its subnet and by unicast from the others, plus the
	// state exchange every 6 intervals: its SYNC and its answer (about
	// N/7 datagrams), and as many answers given on average.
	want := float64(n+1) / p.Interval.Seconds()
	if got := r.steady.perNodeSec(r.steady.rx); got < 0.99*want || got > 1.2*want {
		t.Errorf("steady state: %.1f datagrams received per node per second, want %.1f to %.1f", got, want, 1.2*want)
	}
	if r.falseDead > 0 {
		t.Errorf("%d false deads (%d pairs) in %v at %.0f %% loss", r.falseDead, r.deadPairs, c.lossFor, 100*c.loss)
	}
	// After the cut, each side tries the seeds of the other every 8
	// intervals at most.
	if lim := seedBackoff*p.Interval + time.Second; r.merge > lim {
		t.Errorf("the halves merged %v after the heal, want within %v", r.merge, lim)
	}
	half := 2 * ((n + c.segs) / c.segs)
	if r.sideView != [2]int{half - 1, n + 1 - half - 1} {
		t.Errorf("before the heal the sides saw %v online, want %d and %d", r.sideView, half-1, n+1-half-1)
	}
	d := quantiles(r.detectDead)
	if r.undetected > 0 || d[0] < p.DeadAfter-p.Interval || d[2] > p.DeadAfter {
		t.Errorf("crashes: %d (node, victim) pairs not dead; dead after %v to %v, want %v to %v",
			r.undetected, d[0], d[2], p.DeadAfter-p.Interval, p.DeadAfter)
	}
}
