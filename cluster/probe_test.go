package cluster

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// Probes of suspect peers (docs/protocol.md §4.5) on the simulated LAN.

// loseFrom makes sm lose the datagrams of from to to that from sends at
// the given times since t0 (its periodic broadcasts, say).
func loseFrom(sm *sim, from, to *simNode, at ...time.Duration) {
	sm.filter = func(d *delivery) (bool, time.Duration) {
		now := sm.clock.Now().Sub(t0)
		return d.from == from.addr && d.to == to.addr && slices.Contains(at, now), sm.delay
	}
}

// sentSince returns what n sent from index i on, as "VERB..." lines
// marked "(unicast)" when sent to one node.
func sentSince(n *simNode, i int) []string {
	var l []string
	for _, m := range n.conn.sent[i:] {
		s := m.msg
		if m.unicast {
			s += " (unicast)"
		}
		l = append(l, s)
	}
	return l
}

func TestProbeRevives(t *testing.T) {
	// b's broadcasts of 5, 10 and 15 s are lost at a: once b's age
	// reaches two intervals and a half second, a probes it by unicast,
	// and b's HEARTBEAT, by unicast too, refreshes it one round trip later
	// (2 ms here): b is never suspect. Plain and signed alike.
	eachMode(t, func(t *testing.T, mode string, sm *sim, edit func(*Config)) {
		a, b := sm.start(1, edit), sm.start(2, edit)
		loseFrom(sm, b, a, 5*s, 10*s, 15*s)
		sm.run(2 * s)
		heard := a.Peers()[0].LastHeard.Sub(t0) // b's fast-join answer, 1-1.2 s
		quiet := heard + 2*DefaultInterval + DefaultInterval/quietMargin
		na, nb := len(a.conn.sent), len(b.conn.sent)
		onlyProbes := func(l []string) []string {
			return slices.DeleteFunc(l, func(m string) bool { return !strings.HasPrefix(m, "PROBE ") })
		}
		sm.runTo(quiet - ms)
		if l := onlyProbes(sentSince(a, na)); len(l) != 0 {
			t.Fatalf("a sent %q before b was quiet", l)
		}
		sm.runTo(quiet + 2*ms)
		if p := a.Peers()[0]; p.Status != Online || p.LastHeard.Sub(t0) != quiet+2*ms {
			t.Errorf("one round trip later: b is %v, heard at %v; want online at %v", p.Status, p.LastHeard.Sub(t0), quiet+2*ms)
		}
		probe, answer := onlyProbes(sentSince(a, na)), sentSince(b, nb)
		trailer := ""
		if mode == "keyed" {
			trailer = ` \d+ \d+ [0-9a-f]{8} [0-9a-f]{32}`
		}
		if len(probe) != 1 || !matches(probe[0], `^PROBE 00000001 00000002`+trailer+` \(unicast\)$`) {
			t.Errorf("a sent %q, want one PROBE to b", probe)
		}
		// b's HEARTBEATs of 5 and 10 s, then the answer.
		if len(answer) != 3 || !matches(answer[2], `^HEARTBEAT 00000002 0.25 134217728 0`+trailer+` \(unicast\)$`) {
			t.Errorf("b sent %q, want 2 broadcasts and a HEARTBEAT to a", answer)
		}
		if a.stat("probes") != 1 || b.stat("probe_answers") != 1 || a.stat("dropped") != 0 || b.stat("dropped") != 0 {
			t.Errorf("a:\n%s\nb:\n%s", a.read("stats"), b.read("stats"))
		}
		// The probe, a valid message of a, refreshed a at b too.
		if p := b.Peers()[0]; p.LastHeard.Sub(t0) != quiet+ms {
			t.Errorf("b last heard a at %v, want %v", p.LastHeard.Sub(t0), quiet+ms)
		}
		sm.run(20 * s)
		if a.stat("probes") != 1 || len(sm.logged("suspect")) != 0 {
			t.Errorf("probes %d; log:\n%s", a.stat("probes"), strings.Join(sm.log, "\n"))
		}
	})
}

func TestProbeCrash(t *testing.T) {
	// A peer that crashed is probed every Interval/5 from two intervals
	// and Interval/10 of silence until dead, 20 times in all, to its
	// recorded address only; then it is dead and probed no more. With no
	// other peer, no one is asked to help. The default and the fast
	// profile alike.
	for _, prof := range Profiles {
		t.Run(prof.Name, func(t *testing.T) {
			sm := newSim(t)
			a, b := sm.start(1, prof.Apply), sm.start(2, prof.Apply)
			var to []netip.Addr
			sm.filter = func(d *delivery) (bool, time.Duration) {
				if d.from == a.addr && strings.HasPrefix(d.msg(), "PROBE ") {
					to = append(to, d.to)
				}
				return false, sm.delay
			}
			sm.run(2 * s) // b heard more than once (probeAfter)
			sm.kill(b)
			sm.run(10 * ms) // what b sent before it died arrives
			heard := a.Peers()[0].LastHeard.Sub(t0)
			sm.runTo(heard + prof.DeadAfter + prof.RemoveAfter + prof.Interval)
			var times []time.Duration
			for _, m := range a.conn.sent {
				if strings.HasPrefix(m.msg, "PROBE ") {
					times = append(times, m.at-heard)
				}
			}
			step := prof.Interval / probesPerInterval
			var want []time.Duration
			for at := 2*prof.Interval + prof.Interval/quietMargin; at < prof.DeadAfter; at += step {
				want = append(want, at)
			}
			if !slices.Equal(times, want) {
				t.Errorf("probes at %v after b was last heard, want %v", times, want)
			}
			if len(to) != len(want) || slices.ContainsFunc(to, func(x netip.Addr) bool { return x != b.addr }) {
				t.Errorf("probes to %v", to)
			}
			if a.stat("probes") != len(want) || a.stat("probes_held") != 0 || a.stat("asks") != 0 {
				t.Errorf("stats:\n%s", a.read("stats"))
			}
		})
	}
}

// matches reports whether s matches the regular expression re.
func matches(s, re string) bool { return regexp.MustCompile(re).MatchString(s) }

func TestProbeDrops(t *testing.T) {
	// Bad probes are dropped under their reason (docs/protocol.md §6)
	// and change nothing else: no datagram is sent, no peer changes.
	type bad struct {
		from, msg, reason string
	}
	plain := []bad{
		{"10.0.0.2", "PROBE 00000002 00000003\n", "wrong_target"},       // names c
		{"10.0.0.2", "PROBE 00000002 ffffffff\n", "wrong_target"},       // names nobody
		{"10.0.0.9", "PROBE 00000009 00000001\n", "unknown_id"},         // not listed; not prompted either
		{"10.0.0.50", "PROBE 00000002 00000001\n", "source_mismatch"},   // listed id, another address: no reflection
		{"10.0.0.3", "PROBE 00000002 00000001\n", "source_mismatch"},    // c's address, b's id
		{"10.0.0.1", "PROBE 00000002 00000001\n", "own_addr"},           // from our own address
		{"10.0.0.255", "PROBE 00000002 00000001\n", "foreign_subnet"},   // the broadcast address
		{"10.0.0.2", "PROBE 00000002\n", "malformed"},                   // no target
		{"10.0.0.2", "PROBE 00000002 00000001 00000003\n", "malformed"}, // two
		{"10.0.0.2", "PROBE 00000002 0000001\n", "malformed"},           // 7 digits
		{"10.0.0.2", "PROBE 00000002 0000000A\n", "malformed"},          // upper case
		{"10.0.0.2", "PROBE  00000002 00000001\n", "malformed"},         // double space
		{"10.0.0.2", "PROBE 00000002 00000001 1 2 3\n", "malformed"},    // half a trailer
		{"10.0.0.2", "probe 00000002 00000001\n", "unknown_verb"},       // one spelling
		{"10.0.0.2", "PROBE 00000002 00000001" + strings.Repeat(" ", 500), "oversize"},
	}
	for _, mode := range []string{"keyless", "keyed"} {
		t.Run(mode, func(t *testing.T) {
			sm := newSim(t)
			var edit func(*Config)
			cases := plain
			if mode == "keyed" {
				edit = keyed
				// Signed copies of the plain cases are dropped for the same
				// reasons; a plain probe, however right, is unkeyed.
				cases = nil
				for _, c := range plain {
					if c.reason == "malformed" || c.reason == "unknown_verb" || c.reason == "oversize" {
						cases = append(cases, c)
						continue
					}
					m, err := Parse([]byte(c.msg))
					if err != nil {
						t.Fatal(err)
					}
					m.Sign(testKey, uint64(t0.UnixMilli()), uint64(t0.Add(4*s).UnixMilli())) // newer than all b sent
					cases = append(cases, bad{c.from, string(m.Append(nil)), c.reason})
				}
				good := Message{Kind: Probe, ID: "00000002", To: "00000001"}
				other := good
				other.Sign(otherKey, 1, uint64(t0.Add(2*s).UnixMilli()))
				stale := good
				stale.Sign(testKey, 1, uint64(t0.Add(-time.Minute).UnixMilli()))
				cases = append(cases,
					bad{"10.0.0.2", "PROBE 00000002 00000001\n", "unkeyed"},
					bad{"10.0.0.2", string(other.Append(nil)), "unknown_key"},
					bad{"10.0.0.2", flipTag(signed(good, testKey, 1, uint64(t0.Add(2*s).UnixMilli()))), "bad_tag"},
					bad{"10.0.0.2", string(stale.Append(nil)), "stale"},
				)
			}
			a, b, c := sm.start(1, edit), sm.start(2, edit), sm.start(3, edit)
			_, _ = b, c
			sm.runTo(3 * s) // joined, answers done; no message due until 5 s
			for _, tc := range cases {
				before, peers, sent := a.stat("dropped_"+tc.reason), a.Peers(), len(a.conn.sent)
				sm.inject(tc.from, a, tc.msg)
				sm.run(10 * ms)
				if got := a.stat("dropped_" + tc.reason); got != before+1 {
					t.Errorf("%q from %s: dropped_%s %d -> %d\n%s", tc.msg, tc.from, tc.reason, before, got, a.read("stats"))
				}
				if got := a.Peers(); !slices.Equal(got, peers) {
					t.Errorf("%q from %s changed the table:\n%v\n%v", tc.msg, tc.from, peers, got)
				}
				if got := sentSince(a, sent); len(got) != 0 {
					t.Errorf("%q from %s made a send %q", tc.msg, tc.from, got)
				}
			}
			if msg := statsConsistent(a.read("stats")); msg != "" {
				t.Error(msg)
			}
			if a.stat("accepted") != 4 || a.stat("probe_answers") != 0 {
				t.Errorf("stats:\n%s", a.read("stats"))
			}
		})
	}
}

func TestProbeReplay(t *testing.T) {
	// Keyed: a's probe to b, captured and played to b again, from a's
	// address, within the window: dropped as replay, not answered.
	sm := newSim(t)
	a, b := sm.start(1, keyed), sm.start(2, keyed)
	loseFrom(sm, b, a, 5*s, 10*s, 15*s)
	sm.run(2 * s)
	sm.runTo(a.Peers()[0].LastHeard.Sub(t0) + 15*s + 10*ms)
	probe := lastSent(t, a, "PROBE ")
	sent := len(b.conn.sent)
	for range 3 {
		sm.inject("10.0.0.1", b, probe)
		sm.run(100 * ms)
	}
	if b.stat("dropped_replay") != 3 || b.stat("probe_answers") != 1 || len(sentSince(b, sent)) != 0 {
		t.Errorf("b sent %q; stats:\n%s", sentSince(b, sent), b.read("stats"))
	}
}

func TestProbeOwnID(t *testing.T) {
	// A probe in our name from elsewhere is a claim of our id like any
	// other message (docs/protocol.md §5): dropped as own_id, refuted by
	// one ANNOUNCE; it is not answered.
	sm := newSim(t)
	a := sm.start(1, nil)
	sm.start(2, nil)
	sm.runTo(2 * s)
	sent := len(a.conn.sent)
	sm.inject("10.0.0.2", a, "PROBE 00000001 00000001\n")
	sm.run(10 * ms)
	got := sentSince(a, sent)
	if a.stat("dropped_own_id") != 1 || len(got) != 1 || !strings.HasPrefix(got[0], "ANNOUNCE ") || strings.HasSuffix(got[0], "(unicast)") {
		t.Errorf("a sent %q\n%s", got, a.read("stats"))
	}
}

func TestProbeFlood(t *testing.T) {
	// Valid probes, forged from the addresses of a's 20 peers (keyless:
	// anyone can), 100 a second from each for 10 s: a answers each peer
	// at most peerAnswerBurst at once and then one per Interval/5, and
	// all of them at most answerBurst at once and then answerBurst per
	// Interval; every answer goes to a listed peer at its listed address.
	sm := newSim(t)
	a := sm.start(1, nil)
	var peers []*simNode
	for h := 2; h <= 21; h++ {
		peers = append(peers, sm.start(h, nil))
	}
	sm.filter = func(d *delivery) (bool, time.Duration) {
		if d.from == a.addr && sm.nodes[d.to] == nil {
			t.Errorf("a sent %q to %v, which is no node", d.msg(), d.to)
		}
		return false, sm.delay
	}
	sm.runTo(2 * s)
	one := peers[0]
	// One peer alone first: 1000 probes in 1 s.
	base := a.stat("probe_answers")
	for range 1000 {
		sm.inject(one.addr.String(), a, fmt.Sprintf("PROBE %s 00000001\n", one.ID()))
		sm.run(ms)
	}
	perPeer := a.stat("probe_answers") - base
	want := peerAnswerBurst + int(time.Second/(DefaultInterval/probesPerInterval))
	t.Logf("1000 probes from one peer in 1 s: %d answers (bound %d), %d held", perPeer, want, a.stat("probe_answers_held"))
	if perPeer > want {
		t.Errorf("%d answers to one peer in 1 s, want at most %d", perPeer, want)
	}
	// Then all 20 peers, 100 a second each, for 10 s.
	sm.runTo(10 * s)
	base, sent := a.stat("probe_answers"), len(a.conn.sent)
	for range 1000 {
		for _, p := range peers {
			sm.inject(p.addr.String(), a, fmt.Sprintf("PROBE %s 00000001\n", p.ID()))
		}
		sm.run(10 * ms)
	}
	unicasts := 0 // their destinations are checked by the filter
	for _, m := range a.conn.sent[sent:] {
		if m.unicast {
			unicasts++
		}
	}
	all := a.stat("probe_answers") - base
	burst := answerBurst + len(peers)/perPeers
	bound := burst + int(10*time.Second/(DefaultInterval/time.Duration(burst)))
	t.Logf("20000 probes from 20 peers in 10 s: %d answers (bound %d), %d unicasts in all, %d held",
		all, bound, unicasts, a.stat("probe_answers_held"))
	if all > bound || unicasts != all {
		t.Errorf("%d answers (%d unicasts) in 10 s, want at most %d", all, unicasts, bound)
	}
	if msg := statsConsistent(a.read("stats")); msg != "" {
		t.Error(msg)
	}
}

func TestProbeForgedPeers(t *testing.T) {
	// Keyless, an attacker makes up peers: an ANNOUNCE and a HEARTBEAT
	// each from a spoofed free address, 2 peers a second for 60 s, to
	// 20 nodes. Each made-up peer goes quiet 10.5 s later and draws
	// probes and ASKs, but a node sends at most probeBurst + peers/4 at
	// once and then as many per Interval, all peers together, and acts on
	// at most answerBurst + peers/4 ASKs likewise. One ANNOUNCE alone
	// draws none (probeAfter). Keyed, nothing is accepted and nothing
	// probed.
	for _, mode := range []string{"keyless", "one ANNOUNCE each", "keyed"} {
		t.Run(mode, func(t *testing.T) {
			sm := newSim(t)
			var edit func(*Config)
			if mode == "keyed" {
				edit = keyed
			}
			var ns []*simNode
			for h := 1; h <= 20; h++ {
				ns = append(ns, sm.start(h, edit))
			}
			sm.runTo(10 * s)
			probes := func() (n int) {
				for _, x := range ns {
					n += x.stat("probes") + x.stat("asks") + x.stat("ask_probes")
				}
				return n
			}
			const secs, rate = 60, 2
			datagrams := 0
			for i := range secs * rate {
				src := fmt.Sprintf("10.0.0.%d", 100+i%150)
				sm.injectAll(src, fmt.Sprintf("ANNOUNCE %08x %s x 1 1 1 0\n", 0x1000+i, src))
				datagrams++
				if mode != "one ANNOUNCE each" {
					sm.run(10 * ms)
					sm.injectAll(src, fmt.Sprintf("HEARTBEAT %08x 0.00 1 0\n", 0x1000+i))
					datagrams++
				}
				sm.run(time.Second / rate)
			}
			sm.run(30 * s) // the last ones suspect, then dead
			got := probes()
			d := time.Duration(secs+30) * time.Second
			peers := 19 + secs*rate // listed, at most
			pb, ab := probeBurst+peers/perPeers, answerBurst+peers/perPeers
			bound := 20 * (pb + int(d/(DefaultInterval/time.Duration(pb))) + ab + int(d/(DefaultInterval/time.Duration(ab))))
			t.Logf("%s: %d forged datagrams to 20 nodes: %d probes and ASKs (%.2f per forged datagram, %.2f per node per second; bound %d)",
				mode, datagrams, got, float64(got)/float64(datagrams), float64(got)/20/d.Seconds(), bound)
			switch {
			case got > bound:
				t.Errorf("%d probes, want at most %d", got, bound)
			case mode != "keyless" && got != 0:
				t.Errorf("%d probes, want none", got)
			case mode == "keyless" && got == 0:
				t.Error("no probes: the forged peers were not listed, so the test measures nothing")
			}
		})
	}
}

func TestProbeOldPeer(t *testing.T) {
	// A peer that predates §4.5 drops a PROBE (unknown_verb) and never
	// answers: its prober falls back to the thresholds alone, and nothing
	// else changes. Here b drops probes as such a peer would.
	sm := newSim(t)
	a, b := sm.start(1, nil), sm.start(2, nil)
	sm.filter = func(d *delivery) (bool, time.Duration) {
		now := sm.clock.Now().Sub(t0)
		if d.to == b.addr && strings.HasPrefix(d.msg(), "PROBE ") {
			d.b = []byte("HELLO " + d.msg()) // still an unknown verb at b
		}
		return d.from == b.addr && d.to == a.addr && (now == 5*s || now == 10*s || now == 15*s), sm.delay
	}
	sm.run(2 * s)
	heard := a.Peers()[0].LastHeard.Sub(t0)
	sm.runTo(heard + 15*s + 500*ms)
	if got := a.status(b); got != "suspect" {
		t.Errorf("b is %s, want suspect", got)
	}
	sm.runTo(20*s + ms) // b's next broadcast
	if got := a.status(b); got != "online" {
		t.Errorf("b is %s, want online", got)
	}
	want := 0 // one each Interval/5 from heard+10.5 s until 20 s
	for at := heard + 2*DefaultInterval + DefaultInterval/quietMargin; at <= 20*s; at += s {
		want++
	}
	if a.stat("probes") != want || b.stat("dropped_unknown_verb") != want || b.stat("probe_answers") != 0 || a.stat("dropped") != 0 {
		t.Errorf("a:\n%s\nb:\n%s", a.read("stats"), b.read("stats"))
	}
}

func TestTableProbe(t *testing.T) {
	// A PROBE from a listed peer, from its recorded address, naming us:
	// it revives the peer and changes none of its figures. Any other is
	// dropped and changes nothing (docs/protocol.md §5, §6).
	tb := testTable(10)
	src := netip.MustParseAddr("10.0.0.2")
	hb := Message{Kind: Heartbeat, ID: "00000002", Load: 150, MemFree: 7, Containers: 3}
	for _, m := range []Message{announce("00000002", "10.0.0.2"), hb} {
		if _, err := tb.observe(m, src, t0); err != nil {
			t.Fatal(err)
		}
	}
	tb.tick(t0.Add(20*s), false)
	before, _ := tb.get("00000002")
	if before.Status != Suspect || before.msgs != 2 {
		t.Fatalf("%+v", before)
	}
	probe := Message{Kind: Probe, ID: "00000002", To: "00000001"}
	for _, c := range []struct {
		m    Message
		src  string
		want string
	}{
		{Message{Kind: Probe, ID: "00000002", To: "00000003"}, "10.0.0.2", "wrong_target"},
		{Message{Kind: Probe, ID: "00000009", To: "00000001"}, "10.0.0.9", "unknown_id"},
		{probe, "10.0.0.3", "source_mismatch"},
		{probe, "10.0.0.1", "own_addr"},
	} {
		if _, err := tb.observe(c.m, netip.MustParseAddr(c.src), t0.Add(20*s)); reason(err) != c.want {
			t.Errorf("%v from %s: %v, want %s", c.m, c.src, err, c.want)
		}
		if p, _ := tb.get("00000002"); p != before {
			t.Errorf("%v from %s changed the peer: %+v", c.m, c.src, p)
		}
	}
	ev, err := tb.observe(probe, src, t0.Add(20*s))
	if err != nil || ev.kind != evRevived {
		t.Fatalf("probe: %v %v", ev.kind, err)
	}
	after, _ := tb.get("00000002")
	want := before
	want.Status, want.LastHeard, want.msgs = Online, t0.Add(20*s), 3
	if after != want {
		t.Errorf("after the probe:\n%+v\nwant\n%+v", after, want)
	}
}
