package cluster

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

// The rules of docs/protocol.md §4.6 and §10 for what comes from off
// the subnet and what a STATE may do: forged relays that list made-up
// peers, drop real ones, or replay an answer.

// annOf is an ANNOUNCE of id at addr.
func annOf(id, addr string) Message {
	return Message{Kind: Announce, ID: id, Addr: netip.MustParseAddr(addr), Name: "x" + id[6:], CPUs: 1,
		MemTotal: 1 << 20}
}

// stateOf is a STATE of id: part of parts (0 of 0: an introduction),
// its entries each heard age ago.
func stateOf(id string, part, parts int, age time.Duration, anns ...Message) Message {
	st := &Snapshot{Part: part, Parts: parts}
	for _, a := range anns {
		st.Entries = append(st.Entries, Entry{Age: uint32(age.Milliseconds()), Ann: a})
	}
	return Message{Kind: State, ID: id, State: st}
}

// signAll signs a STATE's entries and then the STATE with key, sent at
// the sim's wall clock now minus ago (entries) and now (the STATE).
func signAll(sm *sim, m Message, key []byte, ago time.Duration) string {
	now := uint64(sm.clock.Now().UnixMilli())
	st := *m.State
	st.Entries = slices.Clone(st.Entries)
	for i := range st.Entries {
		st.Entries[i].Ann.Sign(key, now-1000, now-uint64(ago.Milliseconds())+uint64(i))
	}
	m.State = &st
	return signed(m, key, now-1000, now+100)
}

func TestOffSubnet(t *testing.T) {
	// What a node takes from off its subnet (§6 steps 2 and 2a): nothing
	// without seeds; with seeds, signed datagrams from any unicast host,
	// plain ones from seeds, listed peers and candidates only.
	seeds := func(c *Config) { c.Seeds = []netip.Addr{netip.MustParseAddr("10.0.1.1")} }
	ann5 := "ANNOUNCE 00000005 10.0.1.5 x 1 1 1 0\n"
	for _, tc := range []struct {
		name, from, msg string
		edit            func(*Config)
		want            string // the stat that goes up
	}{
		{"no seeds", "10.0.1.5", ann5, nil, "dropped_foreign_subnet"},
		{"no seeds, from a seed's address", "10.0.1.1", "ANNOUNCE 00000005 10.0.1.1 x 1 1 1 0\n", nil, "dropped_foreign_subnet"},
		{"plain, unknown", "10.0.1.5", ann5, seeds, "dropped_foreign_subnet"},
		{"plain, from the seed", "10.0.1.1", "ANNOUNCE 00000005 10.0.1.1 x 1 1 1 0\n", seeds, "accepted"},
		{"plain, seed, other port", "10.0.1.1:9711", "ANNOUNCE 00000005 10.0.1.1 x 1 1 1 0\n", seeds, "dropped_foreign_port"},
		{"loopback", "127.0.0.1", "ANNOUNCE 00000005 127.0.0.1 x 1 1 1 0\n", both(seeds, keyed), "dropped_foreign_subnet"},
		{"multicast", "224.0.0.5", "LEAVE 00000005\n", both(seeds, keyed), "dropped_foreign_subnet"},
		{"zero", "0.0.0.0", "LEAVE 00000005\n", both(seeds, keyed), "dropped_foreign_subnet"},
		{"limited broadcast", "255.255.255.255", "LEAVE 00000005\n", both(seeds, keyed), "dropped_foreign_subnet"},
		{"keyed, signed, unknown", "10.0.1.5", signed(annOf("00000005", "10.0.1.5"), testKey, uint64(t0.UnixMilli()), uint64(t0.UnixMilli())+900),
			both(seeds, keyed), "accepted"},
		{"keyed, bad tag, unknown", "10.0.1.5", flipTag(signed(annOf("00000005", "10.0.1.5"), testKey, uint64(t0.UnixMilli()), uint64(t0.UnixMilli())+900)),
			both(seeds, keyed), "dropped_bad_tag"},
		{"keyed, plain, unknown: 2a before 4", "10.0.1.5", ann5, both(seeds, keyed), "dropped_foreign_subnet"},
		{"keyed, plain, from the seed", "10.0.1.1", "ANNOUNCE 00000005 10.0.1.1 x 1 1 1 0\n", both(seeds, keyed), "dropped_unkeyed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sm := newSegments(t, 10)
			a := sm.start(1, tc.edit)
			sm.run(time.Second)
			before := a.stat(tc.want)
			from, port, _ := strings.Cut(tc.from, ":")
			src := udp(netip.MustParseAddr(from))
			if port != "" {
				src.Port = 9711
			}
			sm.send(src, []netip.Addr{a.addr}, []byte(tc.msg), true)
			sm.run(10 * ms)
			if got := a.stat(tc.want); got != before+1 {
				t.Errorf("%s: %d -> %d\n%s", tc.want, before, got, a.read("stats"))
			}
			if listed := len(a.Peers()) == 1; listed != (tc.want == "accepted") {
				t.Errorf("peers %v", a.Peers())
			}
			if msg := statsConsistent(a.read("stats")); msg != "" {
				t.Error(msg)
			}
		})
	}
}

// joinCaught starts the newcomer h with edit on sm, whose answers to
// its SYNC are dropped and recorded instead, and runs 10 ms.
func joinCaught(sm *sim, h int, edit func(*Config)) (*simNode, *[]string) {
	var caught []string
	to := sm.host(h)
	sm.filter = func(d *delivery) (bool, time.Duration) {
		if d.to == to && strings.HasPrefix(d.msg(), "STATE ") {
			caught = append(caught, string(d.b))
			return true, 0
		}
		return false, sm.delay
	}
	n := sm.start(h, edit)
	sm.run(10 * ms)
	sm.filter = nil
	return n, &caught
}

// TestForgedState: what a relay can and cannot do with a STATE.
func TestForgedState(t *testing.T) {
	t.Run("unasked", func(t *testing.T) {
		// An answer nobody asked for changes nothing: unasked.
		sm := newSim(t)
		ns := settle(t, sm, 3, withSync)
		peers := ns[0].Peers()
		sm.inject("10.0.0.2", ns[0], string(stateOf("00000002", 1, 1, 0, annOf("00000002", "10.0.0.2"), annOf("00000009", "10.0.0.9")).Append(nil)))
		sm.run(10 * ms)
		if ns[0].stat("dropped_unasked") != 1 || !slices.Equal(ns[0].Peers(), peers) {
			t.Errorf("unasked STATE:\n%v\n%s", ns[0].Peers(), ns[0].read("stats"))
		}
	})
	t.Run("made-up peers, keyless", func(t *testing.T) {
		// The answer lists a made-up peer of our subnet, which is listed
		// (any host of the subnet could announce it, §10) but heard once,
		// so never probed, and dead in DeadAfter; and one off the subnet:
		// only a candidate (the newcomer has seeds), never listed unless
		// heard.
		sm := newSegments(t, 10)
		settle(t, sm, 3, nil)
		nc, caught := joinCaught(sm, 4, seeded(1))
		if len(*caught) != 1 {
			t.Fatalf("caught %q", *caught)
		}
		forged := stateOf("00000001", 1, 1, 0, annOf("00000001", "10.0.0.1"), annOf("00000002", "10.0.0.2"),
			annOf("00000003", "10.0.0.3"), annOf("0000abcd", "10.0.0.77"), annOf("0000abce", "10.0.5.5"))
		sm.inject("10.0.0.1", nc, string(forged.Append(nil)))
		sm.run(10 * ms)
		got := strings.Join(mapSlice(nc.Peers(), func(p Peer) string { return p.ID }), " ")
		if got != "00000001 00000002 00000003 0000abcd" || nc.stat("state_candidates") != 1 {
			t.Errorf("listed %s\n%s", got, nc.read("stats"))
		}
		sm.run(DefaultDeadAfter)
		p, _ := nc.tab.get("0000abcd")
		if p.Status != Dead || nc.stat("probes") != 0 || nc.stat("asks") != 0 {
			t.Errorf("made-up peer %v after %v; probes %d asks %d", p.Status, DefaultDeadAfter, nc.stat("probes"), nc.stat("asks"))
		}
	})
	t.Run("made-up peers, keyed", func(t *testing.T) {
		// Without the key a relay cannot make a STATE at all (bad_tag);
		// with it, entries not signed with a key we hold, not fresh, or
		// heard too long ago by the relay are not taken (state_refused),
		// and the rest are.
		sm := newSim(t)
		settle(t, sm, 3, keyed)
		nc, caught := joinCaught(sm, 4, both(keyed, withSync))
		if len(*caught) == 0 {
			t.Fatalf("caught %q", *caught)
		}
		other := []byte("ffffffffffffffffffffffffffffffff")
		nc.handle([]byte(signAll(sm, stateOf("00000001", 1, 1, 0, annOf("00000001", "10.0.0.1")), other, 0)), udp(sm.host(1)))
		if nc.stat("dropped_unknown_key") != 1 || len(nc.Peers()) != 0 {
			t.Errorf("a STATE signed with another key:\n%s", nc.read("stats"))
		}
		good := signAll(sm, stateOf("00000001", 1, 1, 0, annOf("00000001", "10.0.0.1"), annOf("00000002", "10.0.0.2")), testKey, 0)
		nc.handle([]byte(flipTag(good)), udp(sm.host(1)))
		if nc.stat("dropped_bad_tag") != 1 || len(nc.Peers()) != 0 {
			t.Errorf("a STATE with a bad tag:\n%s", nc.read("stats"))
		}
		// A key holder's answer whose entries are: its own and one more,
		// fine; one signed with another key; one sent 40 s ago; one its
		// sender heard SuspectAfter ago.
		now := uint64(sm.clock.Now().UnixMilli())
		sign := func(a Message, key []byte, seq uint64) Message { a.Sign(key, now-1000, seq); return a }
		parts := [][]Entry{
			{{Ann: sign(annOf("00000001", "10.0.0.1"), testKey, now)}, {Ann: sign(annOf("00000002", "10.0.0.2"), testKey, now)}},
			{{Ann: sign(annOf("0000abcd", "10.0.0.77"), other, now)}, {Ann: sign(annOf("0000abce", "10.0.0.78"), testKey, now-40000)}},
			{{Age: uint32(DefaultSuspectAfter.Milliseconds()), Ann: sign(annOf("0000abcf", "10.0.0.79"), testKey, now)}},
		}
		for i, es := range parts {
			m := Message{Kind: State, ID: "00000001", State: &Snapshot{Part: i + 1, Parts: len(parts), Entries: es}}
			nc.handle([]byte(signed(m, testKey, now-1000, now+uint64(10+i))), udp(sm.host(1)))
		}
		got := peerIDs(nc.Peers())
		if got != "00000001 00000002" || nc.stat("state_refused") != 3 || nc.stat("accepted_state") != 3 {
			t.Errorf("listed %s\n%s", got, nc.read("stats"))
		}
	})
	t.Run("real peers dropped", func(t *testing.T) {
		// A relay that leaves peers out only delays them: the newcomer
		// lists them when it hears them, their answers to its join (§4.1).
		sm := newSim(t)
		settle(t, sm, 5, nil)
		nc, _ := joinCaught(sm, 6, withSync)
		sm.inject("10.0.0.1", nc, string(stateOf("00000001", 1, 1, 0, annOf("00000001", "10.0.0.1"), annOf("00000002", "10.0.0.2")).Append(nil)))
		sm.run(10 * ms)
		if k := len(nc.Peers()); k != 2 {
			t.Fatalf("listed %v", nc.Peers())
		}
		sm.run(DefaultAnswerEvery + DefaultReplyJitter)
		if !sm.fullView() {
			t.Errorf("no full view %v after the join", DefaultAnswerEvery+DefaultReplyJitter)
		}
	})
	for _, mode := range []string{"keyless", "keyed"} {
		t.Run("replayed answer, "+mode, func(t *testing.T) {
			// An answer replayed: at once, signed, it is a replay; later,
			// once its sender has been removed, it lists nobody.
			sm := newSim(t)
			edit := withSync
			if mode == "keyed" {
				edit = both(keyed, withSync)
			}
			settle(t, sm, 5, edit)
			nc, caught := joinCaught(sm, 6, edit)
			if len(*caught) == 0 {
				t.Fatal("no answer")
			}
			for _, b := range *caught {
				nc.handle([]byte(b), udp(sm.host(1)))
			}
			if len(nc.Peers()) != 5 || nc.stat("accepted_state") != len(*caught) {
				t.Fatalf("the answer itself: %v\n%s", nc.Peers(), nc.read("stats"))
			}
			peers := nc.Peers()
			for _, b := range *caught {
				nc.handle([]byte(b), udp(sm.host(1)))
			}
			if mode == "keyed" && nc.stat("dropped_replay") != len(*caught) {
				t.Errorf("replayed at once:\n%s", nc.read("stats"))
			}
			sm.run(DefaultInterval)
			sm.kill(sm.nodes[sm.host(5)])
			sm.run(DefaultRemoveAfter + DefaultDeadAfter)
			// Later: keyed, it is past the window (stale, §6 step 4);
			// keyless, unasked.
			why := "dropped_unasked"
			if mode == "keyed" {
				why = "dropped_stale"
			}
			before := nc.stat(why)
			for _, b := range *caught {
				nc.handle([]byte(b), udp(sm.host(1)))
			}
			if nc.stat(why) != before+len(*caught) || len(nc.Peers()) != 4 {
				t.Errorf("replayed later: %v (was %v)\n%s", peerIDs(nc.Peers()), peerIDs(peers), nc.read("stats"))
			}
			if msg := statsConsistent(nc.read("stats")); msg != "" {
				t.Error(msg)
			}
		})
	}
	t.Run("introductions", func(t *testing.T) {
		// An introduction (part 0) counts only from a listed peer at its
		// recorded address; signed, a replayed one is a replay.
		sm := newSim(t)
		ns := settle(t, sm, 3, keyed)
		a := ns[0]
		intro := signAll(sm, stateOf("00000002", 0, 0, 0, annOf("00000009", "10.0.0.9")), testKey, 0)
		for _, tc := range []struct{ from, msg, want string }{
			{"10.0.0.3", intro, "dropped_source_mismatch"},
			{"10.0.0.8", signAll(sm, stateOf("00000008", 0, 0, 0, annOf("00000009", "10.0.0.9")), testKey, 0), "dropped_unknown_id"},
			{"10.0.0.2", intro, "accepted_state"},
			{"10.0.0.2", intro, "dropped_replay"},
		} {
			before := a.stat(tc.want)
			a.handle([]byte(tc.msg), udp(netip.MustParseAddr(tc.from)))
			if a.stat(tc.want) != before+1 {
				t.Errorf("from %s: %s did not go up\n%s\n%s", tc.from, tc.want, a.read("stats"), strings.Join(sm.log, "\n"))
			}
		}
		if _, ok := a.tab.get("00000009"); !ok {
			t.Error("the introduced peer is not listed")
		}
	})
}

// TestSyncRules: whom a node answers (§4.6, §6 step 7): a SYNC sent to
// another address is wrong_target, one from an unknown id unknown_id;
// one broadcast is answered by one node only; the budgets.
func TestSyncRules(t *testing.T) {
	sm := newSim(t)
	ns := settle(t, sm, 12, nil)
	a := ns[0]
	for _, tc := range []struct{ from, msg, want string }{
		{"10.0.0.2", "SYNC 00000002 10.0.0.3\n", "dropped_wrong_target"},
		{"10.0.0.2", "SYNC 00000002 10.0.1.255\n", "dropped_wrong_target"},
		{"10.0.0.99", "SYNC 00000099 10.0.0.1\n", "dropped_unknown_id"},
		{"10.0.0.3", "SYNC 00000002 10.0.0.1\n", "dropped_source_mismatch"},
		{"10.0.0.3", "SYNC 00000003 10.0.0.255\n", "accepted_sync"}, // not ours to answer: 00000004 is
	} {
		before, sent := a.stat(tc.want), len(a.conn.sent)
		a.handle([]byte(tc.msg), udp(netip.MustParseAddr(tc.from)))
		sm.run(10 * ms)
		if a.stat(tc.want) != before+1 || sentVerbs(a, sent)["STATE"] != 0 {
			t.Errorf("%q from %s: %s did not go up, or it drew a STATE\n%s", tc.msg, tc.from, tc.want, a.read("stats"))
		}
	}
	// A broadcast SYNC: one answer in all, from 00000004.
	sent := map[*simNode]int{}
	for _, n := range ns {
		sent[n] = len(n.conn.sent)
	}
	sm.injectAll("10.0.0.3", "SYNC 00000003 10.0.0.255\n")
	sm.run(10 * ms)
	var who []string
	for _, n := range ns {
		if sentVerbs(n, sent[n])["STATE"] > 0 {
			who = append(who, n.ID())
		}
	}
	if !slices.Equal(who, []string{"00000004"}) {
		t.Errorf("answered by %v, want 00000004", who)
	}
	// One answer per requester per interval: a flood of SYNCs from one
	// peer draws one; from all 11, four at once (MaxSyncAnswers), then
	// four per interval.
	sm.run(DefaultInterval)
	base := a.stat("sync_answers")
	for range 100 {
		a.handle([]byte("SYNC 00000002 10.0.0.1\n"), udp(sm.host(2)))
	}
	sm.run(10 * ms)
	if got := a.stat("sync_answers") - base; got != 1 || a.stat("syncs_held") != 99 {
		t.Errorf("100 SYNCs from one peer: %d answers, %d held", got, a.stat("syncs_held"))
	}
	sm.run(DefaultInterval)
	base, held := a.stat("sync_answers"), a.stat("syncs_held")
	for h := 2; h <= 12; h++ {
		a.handle([]byte(fmt.Sprintf("SYNC %08x 10.0.0.1\n", h)), udp(sm.host(h)))
	}
	sm.run(10 * ms)
	if got := a.stat("sync_answers") - base; got != DefaultMaxSyncAnswers || a.stat("syncs_held")-held != 11-DefaultMaxSyncAnswers {
		t.Errorf("SYNCs from 11 peers at once: %d answers, %d held", got, a.stat("syncs_held")-held)
	}
	if msg := statsConsistent(a.read("stats")); msg != "" {
		t.Error(msg)
	}
}

// TestJoinSyncFallback: the peer that should answer a newcomer's SYNC
// is down but still listed: nobody answers, and ReplyJitter later the
// newcomer asks the peer it heard last, by unicast.
func TestJoinSyncFallback(t *testing.T) {
	sm := newSim(t)
	ns := settle(t, sm, 10, withSync)
	sm.kill(ns[0]) // 00000001, which follows 0000000b
	nc := sm.start(11, withSync)
	sm.run(100 * ms)
	if nc.stat("accepted_state") != 0 {
		t.Fatalf("answered:\n%s", nc.read("stats"))
	}
	sm.run(DefaultReplyJitter)
	if nc.stat("syncs") != 2 || nc.stat("accepted_state") == 0 || !lists(nc, ns[1:]) {
		t.Errorf("after %v: %v\n%s", DefaultReplyJitter, nc.Peers(), nc.read("stats"))
	}
	sm.run(30 * s)
	if nc.stat("syncs") != 2 {
		t.Errorf("asked again:\n%s", nc.read("stats"))
	}
}

func peerIDs(ps []Peer) string {
	return strings.Join(mapSlice(ps, func(p Peer) string { return p.ID }), " ")
}

// TestNewcomerSync: a newcomer sends its SYNC before its ANNOUNCE, so a
// broadcast SYNC of an id not listed, from a host of the subnet, is
// answered, to its source, by the node whose id follows it; the others
// drop it as unknown_id. Signed, a replay of it is a replay (§4.6).
func TestNewcomerSync(t *testing.T) {
	for _, mode := range []string{"keyless", "keyed"} {
		t.Run(mode, func(t *testing.T) {
			sm := newSim(t)
			var edit func(*Config)
			if mode == "keyed" {
				edit = keyed
			}
			ns := settle(t, sm, 12, edit)
			var answers []string
			sm.filter = func(d *delivery) (bool, time.Duration) {
				if d.to == sm.host(13) && strings.HasPrefix(d.msg(), "STATE ") {
					answers = append(answers, d.msg())
				}
				return false, sm.delay
			}
			msg := "SYNC 0000000d 10.0.0.255\n"
			if mode == "keyed" {
				now := uint64(sm.clock.Now().UnixMilli())
				msg = signed(Message{Kind: Sync, ID: "0000000d", Addr: netip.MustParseAddr("10.0.0.255")}, testKey, now, now)
			}
			sm.injectAll("10.0.0.13", msg)
			sm.run(10 * ms)
			if len(answers) == 0 || !strings.HasPrefix(answers[0], "STATE 00000001 1 ") {
				t.Errorf("answers %q, want 00000001's", answers)
			}
			for _, n := range ns[1:] {
				if n.stat("dropped_unknown_id") != 1 || n.stat("sync_answers") != 0 {
					t.Errorf("%s:\n%s", n.ID(), n.read("stats"))
				}
			}
			if a := ns[0]; a.stat("accepted_sync") != 1 || a.stat("sync_answers") != 1 || len(a.Peers()) != 11 {
				t.Errorf("00000001: %v\n%s", a.Peers(), a.read("stats"))
			}
			if mode == "keyed" {
				sm.injectAll("10.0.0.13", msg)
				sm.run(10 * ms)
				if ns[0].stat("dropped_replay") != 1 || ns[0].stat("sync_answers") != 1 {
					t.Errorf("replayed:\n%s", ns[0].read("stats"))
				}
			}
			for _, n := range ns {
				if msg := statsConsistent(n.read("stats")); msg != "" {
					t.Error(msg)
				}
			}
		})
	}
}
