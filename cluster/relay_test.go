package cluster

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// Indirect probes on the simulated LAN (docs/protocol.md §4.5).

// cutOff makes sm lose every datagram between x and y, both ways, from
// from on, and those for which also says so.
func cutOff(sm *sim, x, y *simNode, from time.Duration, also func(d *delivery) bool) {
	sm.filter = func(d *delivery) (bool, time.Duration) {
		if sm.clock.Now().Sub(t0) < from {
			return false, sm.delay
		}
		between := d.from == x.addr && d.to == y.addr || d.from == y.addr && d.to == x.addr
		return between || also != nil && also(d), sm.delay
	}
}

func TestIndirectProbe(t *testing.T) {
	// Everything between a and b is lost from 6 s on, so neither hears
	// the other directly; c hears both. Each finds the other quiet,
	// probes it in vain, asks c a period later, and c's RELAY of the
	// answer keeps it online: in a minute, neither is ever suspect. Then
	// b crashes: a finds it dead exactly DeadAfter after the last RELAY,
	// as without probes. Plain and signed alike.
	eachMode(t, func(t *testing.T, mode string, sm *sim, edit func(*Config)) {
		a, b, c := sm.start(1, edit), sm.start(2, edit), sm.start(3, edit)
		cutOff(sm, a, b, 6*s, nil) // each heard twice (probeAfter)
		sm.runTo(62 * s)
		if l := sm.logged("suspect"); len(l) != 0 {
			t.Errorf("suspects:\n%s", strings.Join(l, "\n"))
		}
		if a.status(b) != "online" || b.status(a) != "online" {
			t.Errorf("b is %s at a, a %s at b", a.status(b), b.status(a))
		}
		for _, n := range []*simNode{a, b} {
			if n.stat("asks") == 0 || n.stat("relays_refused") != 0 || n.stat("accepted_relay") == 0 || n.stat("dropped") != 0 {
				t.Errorf("%s:\n%s", n.ID(), n.read("stats"))
			}
			if msg := statsConsistent(n.read("stats")); msg != "" {
				t.Error(msg)
			}
		}
		if c.stat("ask_probes") == 0 || c.stat("relays") == 0 || c.stat("relays") != a.stat("accepted_relay")+b.stat("accepted_relay") {
			t.Errorf("c:\n%s", c.read("stats"))
		}
		// A RELAY is signed iff what it carries is.
		want := `^RELAY 00000003 HEARTBEAT 0000000[12] 0.25 134217728 0 \(unicast\)$`
		if mode == "keyed" {
			tr := ` \d+ \d+ [0-9a-f]{8} [0-9a-f]{32}`
			want = `^RELAY 00000003 HEARTBEAT 0000000[12] 0.25 134217728 0` + tr + tr + ` \(unicast\)$`
		}
		if r := lastSentMsg(c, "RELAY "); !matches(r, want) {
			t.Errorf("c relayed %q, want %s", r, want)
		}
		sm.kill(b)
		sm.run(10 * ms)
		heard := a.Peers()[0].LastHeard.Sub(t0)
		sm.runTo(heard + DefaultDeadAfter - ms)
		if got := a.status(b); got != "suspect" {
			t.Errorf("%v after b was last heard: %s, want suspect", DefaultDeadAfter-ms, got)
		}
		sm.run(ms)
		if got := a.status(b); got != "dead" {
			t.Errorf("%v after b was last heard: %s, want dead", DefaultDeadAfter, got)
		}
	})
}

// lastSentMsg is the last message n sent starting with prefix, marked
// "(unicast)" if it was, or "".
func lastSentMsg(n *simNode, prefix string) string {
	l := sentSince(n, 0)
	for i := len(l) - 1; i >= 0; i-- {
		if strings.HasPrefix(l[i], prefix) {
			return l[i]
		}
	}
	return ""
}

func TestRelayForged(t *testing.T) {
	// Keyed: a probes b, cut off from it, and has asked c, whose probes
	// of b are lost. Forged RELAYs from c's address, each signed by c's key
	// (the cluster's), are refused under their reason and counted in
	// relays_refused; they change nothing and make no send.
	sm := newSim(t)
	a, b, c := sm.start(1, keyed), sm.start(2, keyed), sm.start(3, keyed)
	cutOff(sm, a, b, 6*s, func(d *delivery) bool {
		return d.from == c.addr && d.to == b.addr && strings.HasPrefix(d.msg(), "PROBE ")
	})
	sm.runTo(6 * s)
	bInc, cInc := a.Peers()[0].Inc, a.Peers()[1].Inc
	captured := lastSent(t, b, "HEARTBEAT ") // of 5 s
	sm.runTo(17 * s)                         // b quiet at a at 15.5 s, c asked a period later
	if a.stat("asks") == 0 || a.status(b) != "online" {
		t.Fatalf("b is %s; a:\n%s", a.status(b), a.read("stats"))
	}
	wall := uint64(sm.clock.Now().UnixMilli())
	hb := func(id string, inc, seq uint64) Message {
		m := Message{Kind: Heartbeat, ID: id, Load: 1, MemFree: 2}
		m.Sign(testKey, inc, seq)
		return m
	}
	seq := wall
	relay := func(from string, in Message) string {
		r := Message{Kind: Relay, ID: from, Relayed: &in}
		seq++ // c's own (inc, seq), newer than all c sent
		r.Sign(testKey, cInc, seq)
		return string(r.Append(nil))
	}
	old, err := Parse([]byte(captured))
	if err != nil {
		t.Fatal(err)
	}
	badTag := hb("00000002", bInc, wall-100)
	badTag.Tag = strings.Repeat("0", 32)
	plainRelay := Message{Kind: Relay, ID: "00000003", Relayed: &Message{Kind: Heartbeat, ID: "00000002"}}
	for _, tc := range []struct {
		what, msg, reason string
	}{
		{"a bad tag on b's HEARTBEAT", relay("00000003", badTag), "bad_tag"},
		{"b's HEARTBEAT signed under another key", func() string {
			m := Message{Kind: Heartbeat, ID: "00000002"}
			m.Sign(otherKey, bInc, wall-100)
			return relay("00000003", m)
		}(), "unknown_key"},
		// A replay of one a accepted is refused so too: a spell begins
		// 10.5 s after b was last heard.
		{"b's HEARTBEAT of 5 s, captured and relayed", relay("00000003", old), "stale"},
		{"an answer held back 6 s", relay("00000003", hb("00000002", bInc, wall-6000)), "stale"},
		{"another incarnation of b", relay("00000003", hb("00000002", bInc+1, wall-100)), "stale"},
		{"a peer a does not list", relay("00000003", hb("00000009", 5, wall-100)), "unasked"},
		{"a peer a does not probe", relay("00000003", hb("00000003", 5, wall-100)), "unasked"},
		{"a RELAY in plain", string(plainRelay.Append(nil)), "unkeyed"},
		{"from an address that is not c's", relay("00000003", hb("00000002", bInc, wall-100)), "source_mismatch"},
	} {
		from := "10.0.0.3"
		if tc.reason == "source_mismatch" {
			from = "10.0.0.9"
		}
		before, refused, peers, sent := a.stat("dropped_"+tc.reason), a.stat("relays_refused"), a.Peers(), len(a.conn.sent)
		sm.inject(from, a, tc.msg)
		sm.run(ms)
		if got := a.stat("dropped_" + tc.reason); got != before+1 {
			t.Errorf("%s: dropped_%s %d -> %d\n%s", tc.what, tc.reason, before, got, a.read("stats"))
		}
		wantRefused := refused + 1
		if tc.reason == "source_mismatch" || tc.reason == "unkeyed" {
			wantRefused = refused // refused before what it carries is looked at
		}
		if got := a.stat("relays_refused"); got != wantRefused {
			t.Errorf("%s: relays_refused %d -> %d", tc.what, refused, got)
		}
		if got := a.Peers(); !slices.Equal(got, peers) {
			t.Errorf("%s changed the table:\n%v\n%v", tc.what, peers, got)
		}
		if got := sentSince(a, sent); len(got) != 0 {
			t.Errorf("%s made a send %q", tc.what, got)
		}
	}
	// The same RELAY, well formed: b is heard, its address unchanged, as
	// of when a last asked c about it, not when the RELAY came.
	var asked time.Duration
	for _, m := range a.conn.sent {
		if strings.HasPrefix(m.msg, "ASK 00000001 00000002") {
			asked = m.at
		}
	}
	good := relay("00000003", hb("00000002", bInc, wall-100))
	sm.inject("10.0.0.3", a, good)
	sm.run(ms)
	if p := a.Peers()[0]; p.LastHeard.Sub(t0) != asked || asked == 0 || p.Addr != b.addr || a.stat("accepted_relay") != 1 {
		t.Errorf("b heard at %v (asked at %v) at %v; a:\n%s", p.LastHeard.Sub(t0), asked, p.Addr, a.read("stats"))
	}
	// Played again: b's spell is over, so it is unasked (and a replay).
	sm.inject("10.0.0.3", a, good)
	sm.run(ms)
	if a.stat("dropped_unasked") != 3 {
		t.Errorf("the same RELAY twice:\n%s", a.read("stats"))
	}
	if msg := statsConsistent(a.read("stats")); msg != "" {
		t.Error(msg)
	}
}

func TestAskBounds(t *testing.T) {
	// An ASK names a third node (wrong_target if not) that the helper
	// lists live (asks_refused if not, though the ASK is valid). A flood
	// of ASKs forged from b's address (keyless: anyone can) about c, 1000
	// in 1 s, has a act on at most peerAnswerBurst at once and then one
	// per Interval/5, probe c at most once per Interval/5, and send to no
	// one but c; a RELAY goes only to b's address.
	sm := newSim(t)
	a, b, c := sm.start(1, nil), sm.start(2, nil), sm.start(3, nil)
	sm.runTo(2 * s)
	for _, tc := range []struct{ msg, stat string }{
		{"ASK 00000002 00000001\n", "dropped_wrong_target"},
		{"ASK 00000002 00000002\n", "dropped_wrong_target"},
		{"ASK 00000009 00000003\n", "dropped_unknown_id"},
		{"ASK 00000002 00000009\n", "asks_refused"},
	} {
		before := a.stat(tc.stat)
		sm.inject("10.0.0.2", a, tc.msg)
		sm.run(ms)
		if a.stat(tc.stat) != before+1 || a.stat("ask_probes") != 0 {
			t.Errorf("%q: %s %d -> %d\n%s", tc.msg, tc.stat, before, a.stat(tc.stat), a.read("stats"))
		}
	}
	var to []string
	sm.filter = func(d *delivery) (bool, time.Duration) {
		if d.from == a.addr && (strings.HasPrefix(d.msg(), "PROBE ") || strings.HasPrefix(d.msg(), "RELAY ")) {
			to = append(to, fmt.Sprintf("%s>%v", d.msg()[:5], d.to))
		}
		return false, sm.delay
	}
	sm.runTo(3 * s)
	for range 1000 {
		sm.inject("10.0.0.2", a, "ASK 00000002 00000003\n")
		sm.run(ms)
	}
	acted := a.stat("accepted_ask") - a.stat("asks_held") - a.stat("asks_refused")
	want := peerAnswerBurst + int(time.Second/(DefaultInterval/probesPerInterval))
	t.Logf("1000 ASKs in 1 s: %d acted on (bound %d), %d probes of c, %d RELAYs to b", acted, want,
		a.stat("ask_probes"), a.stat("relays"))
	if acted > want || a.stat("ask_probes") > 1+int(time.Second/(DefaultInterval/probesPerInterval)) {
		t.Errorf("a:\n%s", a.read("stats"))
	}
	for _, x := range to {
		if x != "PROBE>10.0.0.3" && x != "RELAY>10.0.0.2" {
			t.Errorf("a sent %s", x)
		}
	}
	if a.stat("relays") == 0 || b.stat("dropped_unasked") != a.stat("relays") || c.stat("probe_answers") == 0 {
		t.Errorf("relays %d, unasked at b %d, answers of c %d", a.stat("relays"), b.stat("dropped_unasked"), c.stat("probe_answers"))
	}
}
