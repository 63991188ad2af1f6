package cluster

import (
	"encoding/hex"
	"net/netip"
	"strings"
	"testing"
)

// FuzzHandle feeds arbitrary datagrams from arbitrary sources to a keyed
// node and a plain one: nothing panics, the counters add up, and the
// keyed node accepts only what is signed with its key.
func FuzzHandle(f *testing.F) {
	m := Message{Kind: Announce, ID: "00000009", Addr: netip.MustParseAddr("10.0.0.9"), Name: "x", CPUs: 1}
	m.Sign(testKey, uint64(t0.UnixMilli()), uint64(t0.UnixMilli())+3000)
	p := Message{Kind: Probe, ID: "00000002", To: "00000001"}
	p.Sign(testKey, uint64(t0.UnixMilli()), uint64(t0.UnixMilli())+4000)
	hb := Message{Kind: Heartbeat, ID: "00000003", Load: 1}
	hb.Sign(testKey, uint64(t0.UnixMilli()), uint64(t0.UnixMilli())+4000)
	relay := Message{Kind: Relay, ID: "00000002", Relayed: &hb}
	relay.Sign(testKey, uint64(t0.UnixMilli()), uint64(t0.UnixMilli())+4500)
	for _, s := range []string{
		string(m.Append(nil)),
		string(p.Append(nil)),
		"PROBE 00000002 00000001\n",
		"PROBE 00000002 00000003\n",
		"ANNOUNCE 00000009 10.0.0.9 x 1 1 1 0\n",
		"LEAVE 00000002\n",
		"HEARTBEAT 00000002 0.25 1 0",
		"ASK 00000002 00000003\n",
		"ASK 00000002 00000001\n",
		"RELAY 00000002 HEARTBEAT 00000003 0.25 1 0\n",
		string(relay.Append(nil)),
	} {
		f.Add(byte(9), []byte(s))
		f.Add(byte(2), []byte(s))
	}
	f.Fuzz(func(t *testing.T, host byte, b []byte) {
		sm := newSim(t)
		k := sm.start(1, keyed)
		sm.start(2, keyed)
		p := sm.start(3, nil)
		sm.run(3 * s)
		src := netip.AddrFrom4([4]byte{10, 0, 0, host})
		acc := k.stat("accepted")
		for _, n := range []*simNode{k, p} {
			n.handle(b, udp(src))
			if n.stat("received") != n.stat("accepted")+n.stat("echo")+n.stat("dropped") {
				t.Fatalf("counters:\n%s", n.read("stats"))
			}
		}
		if k.stat("accepted") > acc {
			m, err := Parse(b)
			if err != nil || !m.Keyed() || !m.Verify(testKey) ||
				m.Kind == Relay && !m.Relayed.Verify(testKey) {
				t.Fatalf("keyed node accepted %q", b)
			}
		}
		if strings.Contains(k.read("ctl"), hex.EncodeToString(testKey)) {
			t.Fatal("key shown")
		}
	})
}
