package cluster

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

// Indirect probes (docs/protocol.md §4.5): the pure parts, then on the
// simulated LAN.

// TestProberAsks: a quiet peer is probed at once; from its second turn
// on, askHelpers helpers are asked too, each ASK taking a token of the
// probe budget; a RELAY counts only from a helper asked in this spell.
func TestProberAsks(t *testing.T) {
	pr := prober{interval: 5 * s, maxPeers: 100}
	ps := suspects{}
	p := ps.add(2, 2, -10500*ms)
	p.Status = Online
	ps[p.ID] = p
	helpers := []Peer{ps.add(3, 2, 0), ps.add(4, 2, 0), ps.add(5, 2, 0)}
	var picked []string
	pick := func(k int, except string) []Peer {
		picked = append(picked, fmt.Sprintf("%d/%s", k, except[6:]))
		return helpers[:min(k, len(helpers))]
	}
	pr.quiet(p, t0)
	pr.quiet(p, t0) // already probed: no second spell
	for i, c := range []struct {
		at         time.Duration
		peers      int
		due, asked string
		held       uint64
	}{
		{at: 0, due: "02"},
		{at: s, due: "02", asked: "03 04 05"},
		// 10 tokens at once, 2 a second: 4 taken, 2.0 back by 2 s.
		{at: 2 * s, due: "02", asked: "03 04 05"},
		{at: 3 * s, due: "02", asked: "03 04 05"},
		{at: 4 * s, due: "02", asked: "03 04 05"},
		{at: 5 * s, due: "02", asked: "03", held: 1}, // the rest wait
		// More peers listed, a larger budget: 10 + 40/4 = 20 per
		// Interval, 4 a second.
		{at: 6 * s, peers: 40, due: "02", asked: "03 04 05"},
	} {
		due, asks, held := pr.probes(t0.Add(c.at), c.peers, ps.get, pick)
		var asked []string
		for _, a := range asks {
			if a.target != p.ID {
				t.Errorf("step %d: ASK about %s", i, a.target)
			}
			asked = append(asked, a.helper.ID[6:])
		}
		if ids(due) != c.due || strings.Join(asked, " ") != c.asked || held != c.held {
			t.Errorf("step %d at %v: probed %q, asked %q, held %d; want %q, %q, %d",
				i, c.at, ids(due), asked, held, c.due, c.asked, c.held)
		}
	}
	if !slices.Equal(picked, []string{"3/02", "3/02", "3/02", "3/02", "3/02", "3/02"}) {
		t.Errorf("pick called as %q", picked)
	}
	vouches := func(target, helper string) bool { _, ok := pr.vouches(target, helper); return ok }
	if !vouches(p.ID, "00000004") || vouches(p.ID, "00000009") || vouches("00000003", "00000004") {
		t.Error("vouches: want true for a helper asked about a probed peer only")
	}
	// A RELAY of 03 dates the peer by when 03 was last asked: at 6 s.
	if at, _ := pr.vouches(p.ID, "00000003"); !at.Equal(t0.Add(6 * s)) {
		t.Errorf("03 last asked at %v, want 6s", at.Sub(t0))
	}
	// Heard since its spell began: probed no more, and no RELAY counts.
	p.LastHeard = t0.Add(6500 * ms)
	ps[p.ID] = p
	if due, asks, _ := pr.probes(t0.Add(7*s), 0, ps.get, pick); len(due)+len(asks) != 0 || pr.probed(p.ID) {
		t.Errorf("after it was heard: probed %q, %d ASKs", ids(due), len(asks))
	}
	if vouches(p.ID, "00000004") {
		t.Error("a RELAY counts after the spell ended")
	}
	// A dead peer is probed no more either.
	q := ps.add(6, 2, -10500*ms)
	pr.quiet(q, t0.Add(8*s))
	q.Status = Dead
	ps[q.ID] = q
	if due, _, _ := pr.probes(t0.Add(8*s), 0, ps.get, pick); len(due) != 0 || pr.probed(q.ID) {
		t.Errorf("dead: probed %q", ids(due))
	}
}

// TestProberHelps: the helper's side. An ASK has the target probed at
// once, once per period however many ask; the target's next HEARTBEAT
// is relayed to each asker still waiting (Interval), once; ASKs have
// budgets per asker and node-wide.
func TestProberHelps(t *testing.T) {
	pr := prober{interval: 5 * s, maxPeers: 100}
	ps := suspects{}
	target := ps.add(2, 2, 0)
	a, b := ps.add(3, 2, 0), ps.add(4, 2, 0)
	addrs := func(rs []relayOut) string {
		var l []string
		for _, r := range rs {
			l = append(l, fmt.Sprint(r.to.As4()[3]))
		}
		return strings.Join(l, " ")
	}
	hb := Message{Kind: Heartbeat, ID: target.ID, Load: 1}
	for i, c := range []struct {
		at       time.Duration
		from     []Peer
		held     string // per ASK: h held, - taken
		probes   int    // of the target, due at once
		heard    bool   // then a HEARTBEAT of the target
		relayed  string // RELAYs due, by the last byte of the asker's address
		relayedN int
	}{
		{at: 0, from: []Peer{a, b}, held: "--", probes: 1, heard: true, relayed: "3 4", relayedN: 2},
		{at: 0, heard: true}, // no one waits any more
		// a asks twice more at once: its budget (2) is spent; a new
		// wait, a new probe.
		{at: 0, from: []Peer{a, a}, held: "-h", probes: 1},
		// 200 ms later: the same period, no second probe; the asker
		// waits still.
		{at: 200 * ms, from: []Peer{b}, held: "-", probes: 0, heard: true, relayed: "3 4", relayedN: 2},
		// An asker waits Interval at most.
		{at: time.Second, from: []Peer{a}, held: "-", probes: 1},
		{at: 6 * time.Second, heard: true},
	} {
		now := t0.Add(c.at)
		got := ""
		for _, r := range c.from {
			if pr.asked(r, target, 0, now) {
				got += "h"
			} else {
				got += "-"
			}
		}
		probes := pr.helpProbes(now)
		n := 0
		if c.heard {
			n = pr.heard(hb, now)
		}
		rs := pr.relays(now)
		if got != c.held || len(probes) != c.probes || n != c.relayedN || addrs(rs) != c.relayed {
			t.Errorf("step %d at %v: %q, %d probes, %d relays to %q; want %q, %d, %d to %q",
				i, c.at, got, len(probes), n, addrs(rs), c.held, c.probes, c.relayedN, c.relayed)
		}
		for _, r := range rs {
			if r.hb != hb {
				t.Errorf("step %d: relayed %v, want %v", i, r.hb, hb)
			}
		}
		if !pr.next().IsZero() {
			t.Errorf("step %d: work left at %v", i, pr.next().Sub(t0))
		}
	}
	// Node-wide: answerBurst at once from many askers.
	pr = prober{interval: 5 * s, maxPeers: 100}
	held := 0
	for i := range 40 {
		if pr.asked(ps.add(10+i, 2, 0), target, 0, t0) {
			held++
		}
	}
	if held != 40-answerBurst {
		t.Errorf("40 ASKs at once: %d held, want %d", held, 40-answerBurst)
	}
	pr.reset()
	if !pr.next().IsZero() || len(pr.helping.waiting) != 0 {
		t.Error("reset left work")
	}
}

// TestPickHelpers: pickHelpers draws k distinct peers, every one about
// as often.
func TestPickHelpers(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var all []Peer
	for i := range 10 {
		all = append(all, Peer{ID: fmt.Sprintf("%08x", i)})
	}
	seq := func(yield func(Peer) bool) {
		for _, p := range all {
			if !yield(p) {
				return
			}
		}
	}
	count := make(map[string]int)
	for range 10000 {
		got := pickHelpers(rng, 3, seq)
		if len(got) != 3 {
			t.Fatalf("picked %d", len(got))
		}
		seen := map[string]bool{}
		for _, p := range got {
			if seen[p.ID] {
				t.Fatalf("picked %s twice", p.ID)
			}
			seen[p.ID] = true
			count[p.ID]++
		}
	}
	for id, n := range count { // 3000 each expected; sd about 46
		if n < 2700 || n > 3300 {
			t.Errorf("%s picked %d times of 30000, want about 3000", id, n)
		}
	}
	if got := pickHelpers(rng, 3, func(func(Peer) bool) {}); len(got) != 0 {
		t.Errorf("none to pick from: %v", got)
	}
}

// TestTableQuiet: quiet visits the online peers past the age, oldest
// first, and says when the next will be; helpers yields the online
// peers younger than it, heard twice, but the target.
func TestTableQuiet(t *testing.T) {
	tb := newTable("00000001", netip.MustParseAddr("10.0.0.1"), netip.MustParsePrefix("10.0.0.0/24"), DefaultPort,
		15*s, 30*s, 60*s, DefaultWindow, 10)
	for i, at := range []time.Duration{0, 2 * s, 4 * s, 6 * s} {
		src := netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 2)})
		m := Message{Kind: Announce, ID: fmt.Sprintf("%08x", i+2), Addr: src, Name: "n", CPUs: 1}
		for k := range 2 - i%2*1 { // 00000003 and 00000005 heard once
			if _, err := tb.observe(m, src, t0.Add(at+time.Duration(k)*ms)); err != nil {
				t.Fatal(err)
			}
		}
	}
	var got []string
	next := tb.quiet(t0.Add(12*s), 10500*ms, func(p Peer) { got = append(got, p.ID[6:]) })
	if strings.Join(got, " ") != "02" || !next.Equal(t0.Add(12500*ms)) {
		t.Errorf("quiet at 12 s: %q, next %v", got, next.Sub(t0))
	}
	var hs []string
	for p := range tb.helpers(t0.Add(12*s), 10500*ms, "00000004") {
		hs = append(hs, p.ID[6:])
	}
	if strings.Join(hs, " ") != "" { // 03, 05 heard once, 04 excepted, 02 quiet
		t.Errorf("helpers: %q", hs)
	}
	hs = nil
	for p := range tb.helpers(t0.Add(12*s), 10500*ms, "00000002") {
		hs = append(hs, p.ID[6:])
	}
	if strings.Join(hs, " ") != "04" {
		t.Errorf("helpers but 02: %q", hs)
	}
	if next := tb.quiet(t0.Add(20*s), 30*s, func(Peer) { t.Error("none is quiet") }); !next.Equal(t0.Add(30*s + ms)) {
		t.Errorf("next %v", next.Sub(t0))
	}
}

// TestTableVouch: a relayed HEARTBEAT refreshes its peer's age and
// figures, never its address; it does not revive a dead peer; signed,
// it is refused as a replay unless newer than all accepted of the
// peer, and refused as stale from another incarnation.
func TestTableVouch(t *testing.T) {
	tb := newTable("00000001", netip.MustParseAddr("10.0.0.1"), netip.MustParsePrefix("10.0.0.0/24"), DefaultPort,
		15*s, 30*s, 60*s, DefaultWindow, 10)
	src := netip.MustParseAddr("10.0.0.2")
	an := Message{Kind: Announce, ID: "00000002", Addr: src, Name: "n", CPUs: 1, MemTotal: 10}
	an.Sign(testKey, 1000, 2000)
	if _, err := tb.observe(an, src, t0); err != nil {
		t.Fatal(err)
	}
	hb := func(inc, seq uint64) Message {
		m := Message{Kind: Heartbeat, ID: "00000002", Load: 7, MemFree: 3}
		m.Sign(testKey, inc, seq)
		return m
	}
	for _, c := range []struct {
		m    Message
		at   time.Duration
		want string
	}{
		{hb(1000, 2000), 12 * s, "replay"},
		{hb(1000, 1999), 12 * s, "replay"},
		{hb(999, 5000), 12 * s, "replay"},
		{hb(1001, 5000), 12 * s, "stale"}, // another incarnation: its ANNOUNCE first
		{Message{Kind: Heartbeat, ID: "00000009"}, 12 * s, "unknown_id"},
		{hb(1000, 5000), 12 * s, "ok"},
		{hb(1000, 5000), 13 * s, "replay"},  // the same, twice
		{hb(1000, 6000), 42 * s, "unasked"}, // dead by then
	} {
		tb.tick(t0.Add(c.at), false)
		before, _ := tb.get("00000002")
		err := tb.vouchable(c.m, t0.Add(c.at))
		if reason(err) != c.want {
			t.Errorf("%v at %v: %v, want %s", c.m, c.at, err, c.want)
		}
		if err != nil {
			continue
		}
		ev := tb.vouch(c.m, t0.Add(c.at))
		p, _ := tb.get("00000002")
		want := before
		want.LastHeard, want.Load, want.MemFree, want.HasLoad, want.msgs = t0.Add(c.at), 7, 3, true, before.msgs+1
		if p != want || ev.kind != evUpdated {
			t.Errorf("after %v:\n%+v\nwant\n%+v (event %v)", c.m, p, want, ev.kind)
		}
	}
}
