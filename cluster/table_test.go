package cluster

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
)

func testTable(max int) *table {
	return newTable("00000001", netip.MustParseAddr("10.0.0.1"), netip.MustParsePrefix("10.0.0.0/24"),
		DefaultPort, 15*s, 30*s, 60*s, 30*s, max)
}

func announce(id, addr string) Message {
	return Message{Kind: Announce, ID: id, Addr: netip.MustParseAddr(addr), Name: "n" + id[7:], CPUs: 1}
}

func reason(err error) string {
	var de *DropError
	if errors.As(err, &de) {
		return de.Reason.String()
	}
	return "ok"
}

func TestTableThresholds(t *testing.T) {
	tb := testTable(10)
	src := netip.MustParseAddr("10.0.0.2")
	if _, err := tb.observe(announce("00000002", "10.0.0.2"), src, t0); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		at   time.Duration
		want string
	}{
		{0, "online"},
		{14999 * ms, "online"},
		{15 * s, "suspect"},
		{29999 * ms, "suspect"},
		{30 * s, "dead"},
		{89999 * ms, "dead"},
		{90 * s, "gone"},
	} {
		tb.tick(t0.Add(c.at), false)
		got := "gone"
		if p, ok := tb.get("00000002"); ok {
			got = p.Status.String()
		}
		if got != c.want {
			t.Errorf("at %v: %s, want %s", c.at, got, c.want)
		}
	}
	if len(tb.peers) != 0 || !tb.next().IsZero() {
		t.Errorf("table not empty: %v", tb.list())
	}
}

func TestTableSameInstant(t *testing.T) {
	// A message at exactly a threshold counts first: the strict tick leaves
	// the threshold alone, the message resets the age.
	for at, before := range map[time.Duration]Status{15 * s: Online, 30 * s: Suspect, 90 * s: Dead} {
		tb := testTable(10)
		src := netip.MustParseAddr("10.0.0.2")
		tb.observe(announce("00000002", "10.0.0.2"), src, t0)
		now := t0.Add(at)
		tb.tick(now, true)
		if p, ok := tb.get("00000002"); !ok || p.Status != before {
			t.Errorf("%v: strict tick: %v, %v; want %v", at, p.Status, ok, before)
		}
		want := evRevived
		if before == Online {
			want = evUpdated
		}
		ev, err := tb.observe(Message{Kind: Heartbeat, ID: "00000002"}, src, now)
		if err != nil || ev.kind != want {
			t.Errorf("%v: heartbeat: %v, %v", at, ev.kind, err)
		}
		// Just after the threshold, the same message finds the peer moved on.
		tb = testTable(10)
		tb.observe(announce("00000002", "10.0.0.2"), src, t0)
		now = now.Add(time.Nanosecond)
		tb.tick(now, true)
		_, err = tb.observe(Message{Kind: Heartbeat, ID: "00000002"}, src, now)
		switch at {
		case 90 * s:
			if reason(err) != "unknown_id" {
				t.Errorf("%v: %v", at, err)
			}
		default:
			if err != nil {
				t.Errorf("%v: %v", at, err)
			}
		}
	}
}

func TestTableObserve(t *testing.T) {
	tb := testTable(2)
	a2 := netip.MustParseAddr("10.0.0.2")
	a3 := netip.MustParseAddr("10.0.0.3")
	a4 := netip.MustParseAddr("10.0.0.4")
	hb := func(id string) Message { return Message{Kind: Heartbeat, ID: id, Load: 150, MemFree: 7, Containers: 3} }
	leave := func(id string) Message { return Message{Kind: Leave, ID: id} }
	now := t0
	steps := []struct {
		m    Message
		src  netip.Addr
		want string // event kind or drop reason
	}{
		{announce("00000001", "10.0.0.1"), netip.MustParseAddr("10.0.0.1"), "echo"},
		{announce("00000001", "10.0.0.5"), netip.MustParseAddr("10.0.0.5"), "own_id"},
		{hb("00000001"), netip.MustParseAddr("10.0.0.5"), "own_id"},
		{announce("00000009", "10.0.0.1"), netip.MustParseAddr("10.0.0.1"), "own_addr"},
		{hb("00000002"), a2, "unknown_id"},
		{leave("00000002"), a2, "unknown_id"},
		{announce("00000002", "10.0.0.2"), a3, "addr_mismatch"},
		{announce("00000002", "10.0.0.2"), a2, "added"},
		{announce("00000002", "10.0.0.2"), a2, "updated"},
		{hb("00000002"), a2, "updated"},
		{hb("00000002"), a3, "source_mismatch"},
		{leave("00000002"), a3, "source_mismatch"},
		{announce("00000003", "10.0.0.3"), a3, "added"},
		{announce("00000004", "10.0.0.4"), a4, "table_full"},
		{announce("00000002", "10.0.0.4"), a4, "addr_conflict"},
		{hb("00000002"), a4, "source_mismatch"},
		{announce("00000005", "10.0.0.3"), a3, "added"}, // replaces 3: one id per address
		{hb("00000003"), a3, "unknown_id"},
		{leave("00000002"), a2, "left"},
		{announce("00000004", "10.0.0.4"), a4, "added"},
	}
	names := map[eventKind]string{evEcho: "echo", evAdded: "added", evUpdated: "updated",
		evRevived: "revived", evLeft: "left"}
	for i, st := range steps {
		now = now.Add(ms)
		ev, err := tb.observe(st.m, st.src, now)
		got := reason(err)
		if err == nil {
			got = names[ev.kind]
		}
		if got != st.want {
			t.Errorf("step %d: %v from %v: %s, want %s", i, st.m, st.src, got, st.want)
		}
	}
	p, _ := tb.get("00000005")
	if p.Addr != a3 || p.Name != "n5" || p.HasLoad {
		t.Errorf("peer 5: %+v", p)
	}
	// HEARTBEAT fields, and revival from dead.
	tb.tick(now.Add(31*s), false)
	if p, _ := tb.get("00000005"); p.Status != Dead {
		t.Fatalf("peer 5: %v", p.Status)
	}
	ev, err := tb.observe(hb("00000005"), a3, now.Add(31*s))
	p, _ = tb.get("00000005")
	if err != nil || ev.kind != evRevived || p.Status != Online || p.Load != 150 || !p.HasLoad ||
		p.MemFree != 7 || p.Containers != 3 {
		t.Errorf("revived: %v %v %+v", ev.kind, err, p)
	}
}

func TestBroadcastAddr(t *testing.T) {
	for p, want := range map[string]string{
		"10.0.2.15/24": "10.0.2.255", "10.0.0.0/8": "10.255.255.255", "192.168.1.5/30": "192.168.1.7",
		"172.16.0.1/12": "172.31.255.255", "10.1.2.3/21": "10.1.7.255",
	} {
		if got := broadcastAddr(netip.MustParsePrefix(p)).String(); got != want {
			t.Errorf("broadcastAddr(%s) = %s, want %s", p, got, want)
		}
	}
}

// TestTableTickRandom drives a table with random messages, moves and
// renames at random times and checks after every tick what §5 says must
// hold of every peer given its age alone, that next is no later than
// the earliest deadline, and that the name counts match the peers: tick visits only
// the peers whose deadline came, so a peer it missed would show here.
func TestTableTickRandom(t *testing.T) {
	tb := testTable(64)
	rng := rand.New(rand.NewPCG(3, 4))
	now := t0
	for step := range 5000 {
		now = now.Add(time.Duration(rng.IntN(4000)) * ms)
		strict := rng.IntN(4) == 0
		tb.tick(now, strict)
		id := fmt.Sprintf("%08x", 2+rng.IntN(40))
		addr := netip.AddrFrom4([4]byte{10, 0, 0, byte(2 + rng.IntN(60))})
		m := announce(id, addr.String())
		m.Name = fmt.Sprintf("n%d", rng.IntN(8))
		if rng.IntN(3) == 0 {
			m = Message{Kind: Heartbeat, ID: id}
			if p, ok := tb.get(id); ok {
				addr = p.Addr
			}
		}
		if rng.IntN(50) == 0 {
			m = Message{Kind: Leave, ID: id}
		}
		tb.observe(m, addr, now)
		now = now.Add(time.Duration(rng.IntN(3)) * ms)
		tb.tick(now, false)
		var next time.Time
		names := map[string]int{}
		for _, p := range tb.list() {
			age := now.Sub(p.LastHeard)
			want := Online
			switch {
			case age >= 90*s:
				t.Fatalf("step %d: %s is %v old and still listed", step, p.ID, age)
			case age >= 30*s:
				want = Dead
			case age >= 15*s:
				want = Suspect
			}
			if p.Status != want {
				t.Fatalf("step %d: %s is %v old and %v, want %v", step, p.ID, age, p.Status, want)
			}
			if d := tb.deadline(tb.peers[p.ID]); next.IsZero() || d.Before(next) {
				next = d
			}
			names[p.Name]++
		}
		if tb.next().After(next) || tb.next().IsZero() != next.IsZero() {
			t.Fatalf("step %d: next %v, want no later than %v", step, tb.next(), next)
		}
		if !maps.Equal(names, tb.names) {
			t.Fatalf("step %d: name counts %v, want %v", step, tb.names, names)
		}
	}
}
