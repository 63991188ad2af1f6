package cluster

import (
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
)

// Tests of seeds and the state exchange (docs/protocol.md §4.6).

// withSync turns the join's SYNC on (the sim's config has it off).
func withSync(c *Config) { c.NoJoinSync = false }

// both applies edits in turn.
func both(edits ...func(*Config)) func(*Config) {
	return func(c *Config) {
		for _, e := range edits {
			if e != nil {
				e(c)
			}
		}
	}
}

// sentVerbs counts what n sent since sent index i, by verb.
func sentVerbs(n *simNode, i int) map[string]int {
	c := map[string]int{}
	for _, m := range n.conn.sent[i:] {
		c[strings.Fields(m.msg)[0]]++
	}
	return c
}

// lists reports whether n lists every node of ns but itself online.
func lists(n *simNode, ns []*simNode) bool {
	for _, p := range ns {
		if p != n && n.status(p) != "online" {
			return false
		}
	}
	return true
}

// settle starts k nodes (hosts 1 to k) with edit and runs the sim until
// they all list each other.
func settle(t *testing.T, sm *sim, k int, edit func(*Config)) []*simNode {
	t.Helper()
	var ns []*simNode
	for h := 1; h <= k; h++ {
		ns = append(ns, sm.start(h, edit))
		sm.run(10 * ms)
	}
	if d := sm.runToFullView(10*ms, 20*s); d < 0 {
		t.Fatalf("%d nodes: no full view", k)
	}
	sm.run(2 * s)
	return ns
}

// TestJoinSync: a newcomer lists the whole cluster one round trip after
// its join, from the state of the one peer whose id follows its own,
// plain and keyed (§4.6).
func TestJoinSync(t *testing.T) {
	for _, mode := range []struct {
		name string
		edit func(*Config)
	}{{"keyless", nil}, {"keyed", keyed}} {
		t.Run(mode.name, func(t *testing.T) {
			sm := newSim(t)
			ns := settle(t, sm, 40, mode.edit)
			sent := map[*simNode]int{}
			for _, n := range ns {
				sent[n] = len(n.conn.sent)
			}
			nc := sm.start(41, both(mode.edit, withSync))
			all := append(slices.Clone(ns), nc)
			start := sm.clock.Now()
			for !lists(nc, all) && sm.clock.Now().Sub(start) < s {
				sm.run(ms)
			}
			if d := sm.clock.Now().Sub(start); d > 3*ms {
				t.Errorf("the newcomer listed all %v after its join, want 3 ms (two network delays)", d)
			}
			var answerers []string
			for _, n := range ns {
				if c := sentVerbs(n, sent[n]); c["STATE"] > 0 {
					answerers = append(answerers, fmt.Sprintf("%s (%d STATEs)", n.ID(), c["STATE"]))
				}
			}
			// The peer whose id follows 00000029: none (wraps to 00000001).
			if len(answerers) != 1 || !strings.HasPrefix(answerers[0], "00000001 ") {
				t.Errorf("answered by %v, want 00000001 alone", answerers)
			}
			if got := nc.stat("state_listed"); got != 39 {
				t.Errorf("state_listed %d, want 39 (and the answerer itself, heard directly)", got)
			}
			if c := sentVerbs(nc, 0); c["SYNC"] != 1 {
				t.Errorf("newcomer sent %v", c)
			}
			sm.run(3 * s)
			if msg := statsConsistent(nc.read("stats")); msg != "" {
				t.Error(msg)
			}
			if !sm.fullView() {
				t.Error("no full view after the join")
			}
		})
	}
}

// newSegments is a sim of segments of per hosts each (10.0.k.0/24),
// joined by a router that forwards unicast only.
func newSegments(t testing.TB, per int) *sim {
	sm := newSimOn(t, netip.MustParsePrefix("10.0.0.0/16"))
	sm.per = per
	return sm
}

// seeded gives a node the seeds 10.0.k.1 of segments 0 to k-1.
func seeded(k int) func(*Config) {
	return func(c *Config) {
		c.Seeds = nil
		for i := range k {
			c.Seeds = append(c.Seeds, netip.AddrFrom4([4]byte{10, 0, byte(i), 1}))
		}
	}
}

// TestSeeds: two segments of three nodes, every node given the same
// seeds (one per segment): every node lists the five others, plain and
// keyed, and then sends each interval one broadcast and one unicast per
// peer off its segment (§4.6).
func TestSeeds(t *testing.T) {
	for _, mode := range []struct {
		name string
		edit func(*Config)
	}{{"keyless", nil}, {"keyed", keyed}} {
		{
			t.Run(mode.name, func(t *testing.T) {
				sm := newSegments(t, 3)
				// NoJoinSync is ignored with seeds: it would leave a
				// keyless node unable to learn addresses off its subnet.
				edit := both(mode.edit, seeded(2))
				var ns []*simNode
				for h := 1; h <= 6; h++ {
					sm.run(300 * ms)
					ns = append(ns, sm.start(h, edit))
				}
				d := sm.runToFullView(ms, 60*s)
				if d < 0 {
					for _, n := range ns {
						t.Logf("%v: %s", n.addr, n.read("view"))
					}
					t.Fatal("no full view")
				}
				t.Logf("full view %v after the last start", d)
				sm.run(20 * s)
				i := len(ns[0].conn.sent)
				sm.run(5 * s)
				var uni, bc int
				for _, m := range ns[0].conn.sent[i:] {
					if m.unicast {
						uni++
					} else {
						bc++
					}
				}
				if bc != 1 || uni != 3 {
					t.Errorf("in an interval: %d broadcasts, %d unicasts, want 1 and 3: %v", bc, uni, ns[0].conn.sent[i:])
				}
				for _, n := range ns {
					if msg := statsConsistent(n.read("stats")); msg != "" {
						t.Error(msg)
					}
				}
			})
		}
	}
}

func TestParseSeeds(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // the seeds joined by commas, or the error's start
	}{
		{"", ""},
		{"10.1.0.2", "10.1.0.2"},
		{"10.1.0.2,10.2.0.7", "10.1.0.2,10.2.0.7"},
		{"10.1.0.2,10.1.0.2", "10.1.0.2,10.1.0.2"}, // New ignores the repeat
		{"10.1.0.2,", `bad seed ""`},
		{",10.1.0.2", `bad seed ""`},
		{"10.1.0.2 10.2.0.7", `bad seed "10.1.0.2 10.2.0.7"`},
		{"10.1.0", `bad seed "10.1.0"`},
		{"::1", `bad seed "::1"`},
		{"::ffff:10.1.0.2", `bad seed "::ffff:10.1.0.2"`},
		{"0.0.0.0", `bad seed "0.0.0.0"`},
		{"0.1.2.3", `bad seed "0.1.2.3"`},
		{"127.0.0.1", `bad seed "127.0.0.1"`},
		{"169.254.1.1", `bad seed "169.254.1.1"`},
		{"224.0.0.1", `bad seed "224.0.0.1"`},
		{"255.255.255.255", `bad seed "255.255.255.255"`},
		{strings.Repeat("10.0.0.1,", 64) + "10.0.0.1", "more than 64 seeds"},
	} {
		got, err := ParseSeeds(tc.in)
		var s string
		if err != nil {
			s = err.Error()
		} else {
			var l []string
			for _, a := range got {
				l = append(l, a.String())
			}
			s = strings.Join(l, ",")
		}
		if !strings.HasPrefix(s, tc.want) || err == nil && s != tc.want {
			t.Errorf("ParseSeeds(%q) = %q, want %q", tc.in, s, tc.want)
		}
	}
	// New takes them; its own address and its subnet's are ignored.
	sm := newSim(t)
	n := sm.start(1, func(c *Config) {
		c.Seeds = []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.9"),
			netip.MustParseAddr("10.1.0.2"), netip.MustParseAddr("10.1.0.2")}
	})
	if len(n.span.seeds) != 1 || n.span.seeds[0].addr != netip.MustParseAddr("10.1.0.2") {
		t.Errorf("seeds %v", n.span.seeds)
	}
	if _, err := New(Config{ID: "00000001", Addr: netip.MustParseAddr("10.0.0.1"), Prefix: netip.MustParsePrefix("10.0.0.0/24"),
		Seeds: []netip.Addr{netip.MustParseAddr("224.0.0.1")}}, &simConn{}); err == nil {
		t.Error("New took a multicast seed")
	}
}

// TestDocExamples: the examples of docs/protocol.md §2 parse, and say
// what their text does.
func TestDocExamples(t *testing.T) {
	doc, err := os.ReadFile("../docs/protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	sec := string(doc)
	sec = sec[strings.Index(sec, "\n## 2. "):]
	sec = sec[:strings.Index(sec, "\n## 3. ")]
	_, ex, ok := strings.Cut(sec, "Examples:\n\n```\n")
	if !ok {
		t.Fatal("no examples in §2")
	}
	ex, _, _ = strings.Cut(ex, "```")
	kinds := map[Kind]bool{}
	for _, l := range strings.Split(strings.TrimSpace(ex), "\n") {
		m, err := Parse([]byte(l))
		if err != nil {
			t.Errorf("%q: %v", l, err)
			continue
		}
		kinds[m.Kind] = true
		if m.String() != l {
			t.Errorf("%q is not canonical: %q", l, m.String())
		}
	}
	for k := Announce; int(k) < len(verbs); k++ {
		if !kinds[k] {
			t.Errorf("§2 has no example of %v", k)
		}
	}
}

// TestRunJoinSync: Run sends the join's SYNC after its ANNOUNCE, and
// answers a SYNC at once, without the clock moving: its timer is due
// now (§4.6).
func TestRunJoinSync(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clock := newFakeClock()
		n, conn, stop := runNode(t, clock, withSync)
		defer stop()
		synctest.Wait()
		if got := outbox(conn); !slices.Equal(got, []string{"SYNC 00000001 10.0.0.255", "ANNOUNCE 00000001 10.0.0.1 n1 1 1048576 0 0"}) {
			t.Fatalf("at start: %q", got)
		}
		src := udp(netip.MustParseAddr("10.0.0.2"))
		conn.in <- pipePacket{[]byte("STATE 00000002 1 1 2 0 ANNOUNCE 00000002 10.0.0.2 n2 1 1 1 0 40 ANNOUNCE 00000003 10.0.0.3 n3 1 1 1 0\n"), src}
		conn.in <- pipePacket{[]byte("SYNC 00000002 10.0.0.1\n"), src}
		synctest.Wait()
		if ps := n.Peers(); len(ps) != 2 {
			t.Errorf("peers %v", ps)
		}
		want := "STATE 00000001 1 1 2 0 ANNOUNCE 00000001 10.0.0.1 n1 1 1048576 0 0 40 ANNOUNCE 00000003 10.0.0.3 n3 1 1 1 0"
		if got := outbox(conn); !slices.Equal(got, []string{want}) {
			t.Errorf("answer: %q, want %q", got, want)
		}
	})
}
