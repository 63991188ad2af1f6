package cluster

import (
	"fmt"
	"math"
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"
)

// The attacks of the Truth issue (items 1–6), over the simulated LAN:
// around restarts, loss and key holders (docs/protocol.md §5, §9.2, §10).

// forge returns msg, signed with the cluster key under (inc, seq) if
// the mode is keyed: what a key holder can send.
func forge(mode, msg string, inc, seq uint64) string {
	if mode != "keyed" {
		return msg
	}
	m, err := Parse([]byte(msg))
	if err != nil {
		panic(err)
	}
	m.Sign(testKey, inc, seq)
	return string(m.Append(nil))
}

// wallMS is the simulation's wall clock in ms.
func wallMS(sm *sim) uint64 { return uint64(sm.clock.Now().UnixMilli()) }

// rememberedSigners is how many signers n's replay memory holds.
func rememberedSigners(n *simNode) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.tab.seen.m)
}

func TestAttackSquatReturn(t *testing.T) {
	// Item 1: b is silent for 35 s (a reboot), so it is dead; a host at
	// 10.0.0.50 then announces b's id from its own address every 5 s (in
	// keyed mode a key holder, under its own earlier incarnation). When b
	// comes back, its refutations win the id back at its own address, and
	// the squatter's later claims are refused (keyed: every other one
	// under a fresh, higher incarnation).
	eachMode(t, func(t *testing.T, mode string, sm *sim, edit func(*Config)) {
		a, b, c := sm.start(1, edit), sm.start(2, edit), sm.start(3, edit)
		sm.run(3 * s)
		sm.kill(b)
		sm.run(35 * s)
		if a.status(b) != "dead" {
			t.Fatalf("b after 35 s of silence: %s", a.status(b))
		}
		inc := wallMS(sm) // the squatter's incarnation: its own start
		claims := 0
		claim := func() {
			if claims++; claims%2 == 0 {
				inc = wallMS(sm)
			}
			sm.injectAll("10.0.0.50", forge(mode, "ANNOUNCE 00000002 10.0.0.50 squat 1 1 1 0\n", inc, wallMS(sm)))
		}
		for range 6 {
			claim()
			sm.run(5 * s)
		}
		if got := a.read("nodes/00000002/addr"); got != "10.0.0.50\n" {
			t.Fatalf("the squatter did not take the dead id: %q", got)
		}
		refused := func() int { return a.stat("dropped_addr_conflict") + a.stat("dropped_replay") }
		conflicts := refused()
		b = sm.start(2, edit) // b reboots
		right, total := 0, 0
		for i := range 120 {
			if i%5 == 0 {
				claim()
			}
			sm.run(s)
			for _, x := range []*simNode{a, c} {
				total++
				if x.read("nodes/00000002/addr") == "10.0.0.2\n" && x.status(b) == "online" {
					right++
				}
			}
		}
		t.Logf("%s: b listed at its own address %d of %d times in the 120 s after its return; refutes %d; a refused %d claims (addr_conflict %d, replay %d)",
			mode, right, total, b.stat("refutes"), refused()-conflicts, a.stat("dropped_addr_conflict"), a.stat("dropped_replay"))
		if right != total {
			t.Errorf("b squatted: listed at its address %d of %d times\n%s", right, total, a.read("stats"))
		}
		if b.stat("refutes") == 0 || refused()-conflicts != 24 {
			t.Errorf("b refutes %d; a:\n%s", b.stat("refutes"), a.read("stats"))
		}
		if len(sm.logged("00000002 (n2) is back at 10.0.0.2; 10.0.0.50 had taken its id")) != 2 {
			t.Errorf("log: %q", sm.logged("is back at"))
		}
	})
}

func TestAttackHomeOnce(t *testing.T) {
	// The way home is used once and expires: an id that moved while dead
	// goes back once to the address it left, within the time a dead entry
	// is kept (90 s), and not after.
	for _, c := range []struct {
		wait time.Duration // from the move to the claim from home
		want string        // the address it is listed at after the claim
	}{{10 * s, "10.0.0.2"}, {89 * s, "10.0.0.2"}, {90 * s, "10.0.0.50"}} {
		tab := testTable(8)
		now := t0
		tab.observe(announce("00000002", "10.0.0.2"), netip.MustParseAddr("10.0.0.2"), now)
		now = now.Add(30 * s)
		tab.tick(now, false)
		if ev, err := tab.observe(announce("00000002", "10.0.0.50"), netip.MustParseAddr("10.0.0.50"), now); err != nil || ev.kind != evRevived {
			t.Fatalf("move while dead: %v %v", ev.kind, err)
		}
		for at := time.Duration(0); at < c.wait; at += 5 * s { // the squatter stays online
			now = t0.Add(30*s + at)
			tab.tick(now, false)
			tab.observe(announce("00000002", "10.0.0.50"), netip.MustParseAddr("10.0.0.50"), now)
		}
		now = t0.Add(30*s + c.wait)
		tab.tick(now, false)
		ev, err := tab.observe(announce("00000002", "10.0.0.2"), netip.MustParseAddr("10.0.0.2"), now)
		if p, _ := tab.get("00000002"); p.Addr.String() != c.want {
			t.Errorf("claim from home %v after the move: %v %v, listed at %v", c.wait, ev.kind, err, p.Addr)
		}
		if c.want != "10.0.0.2" {
			continue
		}
		if ev.kind != evMoved {
			t.Errorf("back home: event %v", ev.kind)
		}
		// The squatter's address is no home: it cannot take it back.
		if _, err := tab.observe(announce("00000002", "10.0.0.50"), netip.MustParseAddr("10.0.0.50"), now.Add(s)); reason(err) != "addr_conflict" {
			t.Errorf("squatter after the return: %v", err)
		}
	}
}

func TestAttackPinnedIncarnation(t *testing.T) {
	// Item 2: a key holder sends, from the victim's address, a signed
	// HEARTBEAT of the victim's id under a huge incarnation, then every
	// 20 s one under the highest the receivers accept (their clock plus
	// the window). The first is stale; the victim hears each of the
	// others as a claim and refutes it above it, so its peers never stop
	// listing it.
	sm := newSim(t)
	a, b, c := sm.start(1, keyed), sm.start(2, keyed), sm.start(3, keyed)
	sm.run(3 * s)
	pin := func(inc uint64) string {
		return forge("keyed", "HEARTBEAT 00000002 0.00 1 0\n", inc, wallMS(sm))
	}
	sm.injectAll("10.0.0.2", pin(math.MaxUint64))
	sm.run(ms)
	if a.stat("accepted_heartbeat") != 0 || a.stat("dropped_stale") != 1 {
		t.Errorf("inc 2^64-1:\n%s", a.read("stats"))
	}
	right, total := 0, 0
	for i := range 300 {
		if i%20 == 0 {
			sm.injectAll("10.0.0.2", pin(wallMS(sm)+uint64(DefaultWindow.Milliseconds())))
		}
		sm.run(s)
		for _, x := range []*simNode{a, c} {
			total++
			if x.status(b) == "online" {
				right++
			}
		}
	}
	t.Logf("b online at its peers %d of %d times in 300 s of pins; b refutes %d, a's replay drops %d",
		right, total, b.stat("refutes"), a.stat("dropped_replay"))
	if right != total || b.stat("refutes") != 15 {
		t.Errorf("b pinned out: online %d of %d, refutes %d\n%s", right, total, b.stat("refutes"), a.read("stats"))
	}
	// Each pin costs b's peers at most the messages b sends before its
	// refutation: none, since b refutes at once.
	if a.stat("dropped_replay") != 0 {
		t.Errorf("a dropped %d of b's messages as replays", a.stat("dropped_replay"))
	}
}

func TestAttackSeenFlood(t *testing.T) {
	// Item 3: signed ANNOUNCEs of fresh ids, 20,000 from one address, then
	// 10 from each of 200 others (a key holder that forges sources): the
	// replay memory stays within its bounds, idsPerAddr per address and
	// seenPerPeer × MaxPeers in all, and a real node still joins.
	sm := newSim(t)
	edit := func(c *Config) { keyed(c); c.MaxPeers = 64 }
	a := sm.start(1, edit)
	sm.run(ms)
	w := wallMS(sm)
	for i := range 20_000 {
		sm.inject("10.0.0.60", a, forge("keyed", fmt.Sprintf("ANNOUNCE %08x 10.0.0.60 x 1 1 1 0\n", 0x100000+i), w, w+uint64(i)))
	}
	sm.run(s)
	if got := rememberedSigners(a); got != idsPerAddr || a.stat("peers") != 1 {
		t.Errorf("20,000 ids from one address: %d remembered, %d peers", got, a.stat("peers"))
	}
	for h := range 200 {
		addr := fmt.Sprintf("10.0.0.%d", 2+h)
		for i := range 10 {
			sm.inject(addr, a, forge("keyed", fmt.Sprintf("ANNOUNCE %08x %s y 1 1 1 0\n", 0x200000+h*10+i, addr), w, wallMS(sm)+uint64(i)))
		}
	}
	sm.run(s)
	max := seenPerPeer * 64
	got := rememberedSigners(a)
	t.Logf("2,000 ids from 200 addresses: %d remembered (cap %d); dropped ids_per_addr %d, seen_full %d, table_full %d; peers %d",
		got, max, a.stat("dropped_ids_per_addr"), a.stat("dropped_seen_full"), a.stat("dropped_table_full"), a.stat("peers"))
	if got > max || a.stat("dropped_seen_full") == 0 || a.stat("dropped_ids_per_addr") < 20_000-idsPerAddr {
		t.Errorf("%d remembered\n%s", got, a.read("stats"))
	}
	// Forgotten twice the window after they were last heard, save the
	// listed: a real node then joins.
	sm.run(2*DefaultWindow + s)
	b := sm.start(250, edit)
	sm.run(2 * s)
	if a.status(b) != "online" || b.status(a) != "online" {
		t.Errorf("a new node after the flood: %s\n%s", a.status(b), a.read("stats"))
	}
}

func TestSeenMemory(t *testing.T) {
	// The replay memory's bound in bytes: seenPerPeer × DefaultMaxPeers
	// signers, each brought by its own address.
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	r := newReplayMemory(DefaultWindow, DefaultMaxPeers)
	for i := range seenPerPeer * DefaultMaxPeers {
		src := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		if err := r.admit(fmt.Sprintf("%08x", i), src, t0, func(string) bool { return true }); err != nil {
			t.Fatal(err)
		}
		r.put(fmt.Sprintf("%08x", i), 1, 1, src, t0)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if err := r.admit("ffffffff", netip.MustParseAddr("10.1.1.1"), t0.Add(time.Hour), func(string) bool { return true }); reason(err) != "seen_full" {
		t.Errorf("one more: %v", err)
	}
	bytes := after.HeapAlloc - before.HeapAlloc
	t.Logf("replay memory at its cap: %d signers, %d KiB (%d bytes each)", len(r.m), bytes>>10, bytes/uint64(len(r.m)))
	runtime.KeepAlive(&r)
}

func TestAttackSourcePort(t *testing.T) {
	// Item 4: a LEAVE (signed by a key holder in keyed mode) from b's
	// address but port 7 (UDP echo reflecting a forged frame) is dropped:
	// cluster datagrams come from port 9710 (docs/protocol.md §1).
	eachMode(t, func(t *testing.T, mode string, sm *sim, edit func(*Config)) {
		a, b := sm.start(1, edit), sm.start(2, edit)
		sm.run(3 * s)
		leave := forge(mode, "LEAVE 00000002\n", wallMS(sm)+1, wallMS(sm))
		a.handle([]byte(leave), net.UDPAddrFromAddrPort(netip.MustParseAddrPort("10.0.0.2:7")))
		sm.run(ms)
		if a.status(b) != "online" {
			t.Errorf("a LEAVE from port 7 removed b: %s", a.status(b))
		}
		if a.stat("dropped_foreign_port") != 1 {
			t.Errorf("stats:\n%s", a.read("stats"))
		}
	})
}

func TestAttackMixedSticky(t *testing.T) {
	// Item 5: in mixed mode, an id heard signed is not changed by a plain
	// message while it is listed or remembered; an id heard only plain
	// still is (the migration of §9.3).
	sm := newSim(t)
	mixed := func(c *Config) { keyed(c); c.Auth = AuthMixed }
	plainWithKey := func(c *Config) { keyed(c); c.Auth = AuthPlain }
	a, b, c := sm.start(1, mixed), sm.start(2, mixed), sm.start(3, plainWithKey)
	sm.run(20 * s)
	sm.injectAll("10.0.0.2", "LEAVE 00000002\n")
	sm.injectAll("10.0.0.2", "ANNOUNCE 00000002 10.0.0.2 forged 1 1 1 0\n")
	sm.run(ms)
	if a.status(b) != "online" || a.read("nodes/00000002/name") != "n2\n" {
		t.Errorf("a forged plain LEAVE and ANNOUNCE changed b: %s %q", a.status(b), a.read("nodes/00000002/name"))
	}
	if a.stat("dropped_unkeyed") != 2 {
		t.Errorf("stats:\n%s", a.read("stats"))
	}
	// c sends plain: a still hears it, and it leaves.
	if a.status(c) != "online" {
		t.Errorf("a plain node in mixed mode: %s", a.status(c))
	}
	c.Leave()
	sm.run(ms)
	if a.status(c) != "gone" {
		t.Errorf("plain LEAVE of a plain node: %s", a.status(c))
	}
}

func TestAttackRestartedReceiver(t *testing.T) {
	// Item 6: b crashes; 1.5 s later a restarts, its replay memory empty.
	// b's last ANNOUNCE and HEARTBEAT, captured and replayed to a at once,
	// were sent more than startSlack before a started: a does not list b
	// from them.
	sm := newSim(t)
	a, b, c := sm.start(1, keyed), sm.start(2, keyed), sm.start(3, keyed)
	sm.run(21 * s)
	ann, hb := lastSent(t, b, "ANNOUNCE"), lastSent(t, b, "HEARTBEAT") // sent at 15 s and 20 s
	sm.kill(b)
	sm.run(1500 * ms)
	sm.kill(a)
	a = sm.start(1, keyed)
	sm.run(ms)
	sm.inject("10.0.0.2", a, ann)
	sm.inject("10.0.0.2", a, hb)
	sm.run(10 * ms)
	if a.status(b) != "gone" {
		t.Errorf("restarted a lists b from its captured messages: %s", a.status(b))
	}
	if a.stat("dropped_stale") != 2 {
		t.Errorf("stats:\n%s", a.read("stats"))
	}
	// c, alive, is listed as usual.
	sm.run(2 * s)
	if a.status(c) != "online" {
		t.Errorf("a lists c: %s", a.status(c))
	}
}

func TestJoinClockBehind(t *testing.T) {
	// Nodes whose clocks are 1.5 s behind a newcomer's (VMs read a 1 s
	// RTC) still answer its join in time: it takes what was sent up to
	// startSlack before it started.
	sm := newSim(t)
	behind := func(c *Config) {
		keyed(c)
		c.WallClock = func() time.Time { return sm.clock.Now().Add(-1500 * ms) }
	}
	a, b := sm.start(1, behind), sm.start(2, behind)
	sm.run(10 * s)
	c := sm.start(3, keyed)
	sm.run(1300 * ms)
	if c.status(a) != "online" || c.status(b) != "online" || c.stat("dropped_stale") != 0 {
		t.Errorf("newcomer: %s %s\n%s", c.status(a), c.status(b), c.read("stats"))
	}
}
