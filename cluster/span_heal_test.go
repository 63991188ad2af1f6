package cluster

import (
	"net/netip"
	"slices"
	"testing"
	"time"
)

// Seeds over time (docs/protocol.md §4.6): tried with backoff while
// down, and the merge of segments after a partition of the router.

// seedTries runs sm for d in steps of 100 ms and returns when n's
// seed_tries went up, as times since t0.
func seedTries(sm *sim, n *simNode, d time.Duration) []time.Duration {
	var l []time.Duration
	k := n.stat("seed_tries")
	for end := sm.clock.Now().Add(d); sm.clock.Now().Before(end); {
		sm.run(100 * ms)
		if x := n.stat("seed_tries"); x != k {
			k = x
			l = append(l, sm.clock.Now().Sub(t0).Truncate(100*ms))
		}
	}
	return l
}

// TestSeedBackoff: a seed that never answers is tried 200 ms after the
// join, then after 1, 2, 4, 8, 8 intervals; once it is a live peer and
// has answered it is not tried, and when it is dead again the wait
// starts over.
func TestSeedBackoff(t *testing.T) {
	sm := newSegments(t, 3)
	seed := sm.host(4) // 10.0.1.1, not started
	a := sm.start(1, func(c *Config) { c.Seeds = []netip.Addr{seed} })
	want := []time.Duration{200 * ms, 5200 * ms, 15200 * ms, 35200 * ms, 75200 * ms, 115200 * ms}
	if got := seedTries(sm, a, 120*s); !slices.Equal(got, want) {
		t.Errorf("seed tried at %v, want %v", got, want)
	}
	// The seed comes up, and a is its seed: it lists a. a tries it at
	// most once more (it owes a its state, unless a's periodic SYNC
	// got it first).
	sm.start(4, func(c *Config) { c.Seeds = []netip.Addr{a.addr} })
	if got := seedTries(sm, a, 60*s); len(got) > 1 || !sm.fullView() {
		t.Fatalf("with the seed up: tried at %v, full view %v", got, sm.fullView())
	}
	if got := seedTries(sm, a, 60*s); len(got) != 0 {
		t.Errorf("a tried its live seed at %v", got)
	}
	// It dies: dead 30 s after its last message, then tried again
	// within an interval, and 1, 2 intervals apart.
	sm.kill(sm.nodes[seed])
	dead := sm.clock.Now().Sub(t0)
	got := seedTries(sm, a, 60*s)
	if len(got) < 3 || got[0]-dead > DefaultDeadAfter+DefaultInterval || got[1]-got[0] != DefaultInterval || got[2]-got[1] != 2*DefaultInterval {
		t.Errorf("after the seed died at %v: tried at %v", dead, got)
	}
}

// TestSegmentHeal: two segments of 4, the router cut until each side
// has removed the other, then healed: every node lists every other
// again within 8 intervals, the longest wait between two tries of a
// seed, plus a few round trips. Plain and keyed, both profiles.
func TestSegmentHeal(t *testing.T) {
	for _, p := range Profiles {
		for _, mode := range []struct {
			name string
			edit func(*Config)
		}{{"keyless", nil}, {"keyed", keyed}} {
			t.Run(p.Name+"/"+mode.name, func(t *testing.T) {
				sm := newSegments(t, 4)
				edit := both(mode.edit, seeded(2), func(c *Config) { p.Apply(c) })
				for h := 1; h <= 8; h++ {
					sm.start(h, edit)
					sm.run(50 * ms)
				}
				if sm.runToFullView(10*ms, 10*p.Interval) < 0 {
					t.Fatal("no full view")
				}
				sm.side = func(a netip.Addr) int { return int(a.As4()[2]) }
				sm.run(p.DeadAfter + p.RemoveAfter + 2*p.Interval)
				for _, n := range sm.nodes {
					if k := len(n.Peers()); k != 3 {
						t.Fatalf("%v lists %d peers during the partition, want its 3 neighbours", n.addr, k)
					}
				}
				sm.side = nil
				d := sm.runToFullView(10*ms, 20*p.Interval)
				t.Logf("merged %v after the heal", d)
				if d < 0 || d > seedBackoff*p.Interval+time.Second {
					t.Errorf("merged %v after the heal, want within %v", d, seedBackoff*p.Interval+time.Second)
				}
				for _, n := range sm.nodes {
					if msg := statsConsistent(n.read("stats")); msg != "" {
						t.Error(msg)
					}
				}
			})
		}
	}
}
