package cluster

import (
	"bytes"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

// Fuzz tests of the parsers of docs/protocol.md §4.6: STATE and SYNC
// (FuzzParse covers every verb; this one starts from STATEs and checks
// what a STATE promises), seed lists, and a node with seeds taking
// arbitrary datagrams from anywhere.

func stateSeeds() []string {
	a := Message{Kind: Announce, ID: "5e6f7a8b", Addr: netip.MustParseAddr("10.0.2.16"), Name: "db-1", CPUs: 2, MemTotal: 1024}
	b := Message{Kind: Announce, ID: "0a1b2c3d", Addr: netip.MustParseAddr("10.1.0.7"), Name: "n", CPUs: 1}
	plain := Message{Kind: State, ID: "5e6f7a8b", State: &Snapshot{Part: 1, Parts: 2, Entries: []Entry{{Ann: a}, {Age: 1520, Ann: b}}}}
	intro := Message{Kind: State, ID: "5e6f7a8b", State: &Snapshot{Entries: []Entry{{Age: 4294967295, Ann: b}}}}
	a.Sign(testKey, 1764493690123, 1764493695123)
	keyed := Message{Kind: State, ID: "5e6f7a8b", State: &Snapshot{Part: 1, Parts: 1, Entries: []Entry{{Ann: a}}}}
	keyed.Sign(testKey, 1764493690123, 1764493695200)
	return []string{
		string(plain.Append(nil)), string(intro.Append(nil)), string(keyed.Append(nil)),
		"STATE 5e6f7a8b 1 1 1 0 ANNOUNCE 5e6f7a8b 10.0.2.16 db-1 2 1024 0 0\n",
		"STATE 5e6f7a8b 0 0 1 0 ANNOUNCE 5e6f7a8b 10.0.2.16 db-1 2 1024 0 0",
		"STATE 5e6f7a8b 2 1 1 0 ANNOUNCE 5e6f7a8b 10.0.2.16 db-1 2 1024 0 0",
		"STATE 5e6f7a8b 1 1 2 0 ANNOUNCE 5e6f7a8b 10.0.2.16 db-1 2 1024 0 0",
		"STATE 5e6f7a8b 1 1 1 0 HEARTBEAT 5e6f7a8b 0.25 512 2 1 2 3 4",
		"STATE 5e6f7a8b 1 1 0",
		"STATE 5e6f7a8b",
		"SYNC 0a1b2c3d 10.0.2.255\n",
		"SYNC 0a1b2c3d 10.0.2.255 1 2 630dcd29 1e229d7b6c8d4536a5798611c5bfcbee",
		"SYNC 0a1b2c3d 10.0.2",
	}
}

func FuzzParseState(f *testing.F) {
	for _, s := range stateSeeds() {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		if err != nil {
			if _, ok := err.(*DropError); !ok {
				t.Fatalf("Parse(%q): error %T", b, err)
			}
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("Parse(%q) = %+v, which does not validate: %v", b, m, err)
		}
		canon := m.Append(nil)
		if !bytes.Equal(bytes.TrimSuffix(b, []byte("\n")), canon[:len(canon)-1]) {
			t.Fatalf("Parse(%q) re-formats as %q", b, canon)
		}
		if m2, err := Parse(canon); err != nil || !reflect.DeepEqual(m2, m) {
			t.Fatalf("Parse(%q) = %+v, %v; want %+v", canon, m2, err, m)
		}
		if m.Kind != State {
			return
		}
		st := m.State
		if len(st.Entries) == 0 || st.Parts == 0 && st.Part != 0 || st.Parts > 0 && (st.Part < 1 || st.Part > st.Parts) {
			t.Fatalf("Parse(%q): part %d of %d, %d entries", b, st.Part, st.Parts, len(st.Entries))
		}
		for _, e := range st.Entries {
			if e.Ann.Kind != Announce || e.Ann.Keyed() != m.Keyed() {
				t.Fatalf("Parse(%q): entry %+v in a STATE signed %v", b, e, m.Keyed())
			}
		}
	})
}

func FuzzParseSeeds(f *testing.F) {
	for _, s := range []string{"", "10.1.0.2", "10.1.0.2,10.2.0.7", "10.1.0.2,", "::1", "10.1.0.2 10.2.0.7", "224.0.0.1", "010.1.0.2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := ParseSeeds(s)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("ParseSeeds(%q): %q has a newline", s, err)
			}
			return
		}
		var parts []string
		for _, a := range l {
			if !remoteHost(a) {
				t.Fatalf("ParseSeeds(%q) took %v", s, a)
			}
			parts = append(parts, a.String())
		}
		if strings.Join(parts, ",") != s {
			t.Fatalf("ParseSeeds(%q) = %v: not the same text", s, l)
		}
	})
}

// FuzzHandleSpan feeds arbitrary datagrams from arbitrary sources, on
// and off the subnet, to a keyed and a plain node with seeds, just after
// their join's SYNC: nothing panics, the counters add up, and the keyed
// node accepts only what is signed with its key.
func FuzzHandleSpan(f *testing.F) {
	for _, s := range stateSeeds() {
		f.Add(byte(0), byte(9), []byte(s))
		f.Add(byte(1), byte(1), []byte(s))
	}
	f.Add(byte(0), byte(2), []byte("SYNC 00000002 10.0.0.1\n"))
	f.Add(byte(1), byte(1), []byte("ANNOUNCE 00000004 10.0.1.1 x 1 1 1 0\n"))
	f.Fuzz(func(t *testing.T, seg, host byte, b []byte) {
		sm := newSegments(t, 10)
		sm.anywhere = true
		k := sm.start(1, both(keyed, seeded(2)))
		sm.start(2, both(keyed, seeded(2)))
		p := sm.start(3, seeded(2))
		sm.run(10 * ms)
		src := netip.AddrFrom4([4]byte{10, 0, seg, host})
		acc := k.stat("accepted")
		for _, n := range []*simNode{k, p} {
			n.handle(b, udp(src))
			if msg := statsConsistent(n.read("stats")); msg != "" {
				t.Fatal(msg)
			}
		}
		if k.stat("accepted") > acc {
			m, err := Parse(b)
			if err != nil || !m.Keyed() || !m.Verify(testKey) {
				t.Fatalf("keyed node accepted %q", b)
			}
		}
		sm.run(DefaultInterval) // whatever it queued goes out
	})
}
