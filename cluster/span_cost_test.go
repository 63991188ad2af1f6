package cluster

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// What the state exchange costs and gives (docs/protocol.md §4.6), on
// the simulated LAN: a newcomer to N nodes lists them all two network
// delays after its join, for one SYNC broadcast and an answer of about
// N/7 datagrams plain, N/2 keyed. The figures are printed (-v) for the
// protocol's text.

// TestJoinSyncCost: N = 64 and 256, both profiles, keyless and keyed.
func TestJoinSyncCost(t *testing.T) {
	sizes := []int{64, 256}
	if testing.Short() {
		sizes = []int{64}
	}
	var b strings.Builder
	b.WriteString("| N | profile | mode | newcomer lists all after | STATEs | STATE bytes | entries per STATE | SYNC deliveries |\n|---|---|---|---|---|---|---|---|\n")
	for _, n := range sizes {
		for _, p := range Profiles {
			for _, mode := range []struct {
				name string
				edit func(*Config)
			}{{"keyless", nil}, {"keyed", keyed}} {
				sm := newSimOn(t, netip.MustParsePrefix("10.0.0.0/16"))
				sm.quiet = true
				edit := both(mode.edit, func(c *Config) { p.Apply(c) })
				for h := 1; h <= n; h++ {
					sm.start(h, edit)
					sm.run(10 * ms)
				}
				if sm.runToFullView(10*ms, 10*p.Interval) < 0 {
					t.Fatal("no full view")
				}
				sm.run(3 * p.Interval) // the answers are out
				start := sm.clock.Now()
				var stateN, stateB, syncRx int
				sm.filter = func(d *delivery) (bool, time.Duration) {
					switch {
					case strings.HasPrefix(d.msg(), "STATE "):
						stateN++
						stateB += len(d.b)
					case strings.HasPrefix(d.msg(), "SYNC "):
						syncRx++
					}
					return false, sm.delay
				}
				nc := sm.start(n+1, both(edit, withSync))
				for nc.onlinePeers() != n && sm.clock.Now().Sub(start) < p.Interval {
					sm.run(ms / 10)
				}
				d := sm.clock.Now().Sub(start)
				sm.run(DefaultAnswerEvery + DefaultReplyJitter + 100*ms)
				sm.filter = nil
				if d > 10*ms {
					t.Errorf("N=%d %s %s: the newcomer listed all %v after its join, want within 10 ms", n, p.Name, mode.name, d)
				}
				fmt.Fprintf(&b, "| %d | %s | %s | %v | %d | %d | %.1f | %d |\n", n, p.Name, mode.name, d, stateN, stateB,
					float64(n)/float64(stateN), syncRx)
			}
		}
	}
	t.Log("\n" + b.String())
}
