package cluster

import (
	"net/netip"
	"testing"
	"time"
)

// The cost of signing per datagram (docs/protocol.md §9.4).

func BenchmarkSign(b *testing.B) {
	m := Message{Kind: Heartbeat, ID: "0a1b2c3d", Load: 25, MemFree: 134217728, Containers: 2}
	b.ReportAllocs()
	for i := range b.N {
		m.Sign(testKey, 1764493690123, 1764493690123+uint64(i))
	}
}

func BenchmarkVerify(b *testing.B) {
	m := Message{Kind: Announce, ID: "0a1b2c3d", Addr: netip.MustParseAddr("10.0.2.15"), Name: "fornax-01", CPUs: 4,
		MemTotal: 268435456, MemFree: 134217728, Containers: 2}
	m.Sign(testKey, 1764493690123, 1764493695123)
	b.ReportAllocs()
	for range b.N {
		if !m.Verify(testKey) {
			b.Fatal("no")
		}
	}
}

// BenchmarkHandle is the whole receive path of one HEARTBEAT from a
// listed peer, plain and signed; and of a forged signed one (bad tag),
// which is what a flood costs.
func BenchmarkHandle(b *testing.B) {
	for _, tc := range []struct {
		name  string
		keyed bool
		bad   bool
	}{{"plain", false, false}, {"keyed", true, false}, {"keyed_bad_tag", true, true}} {
		b.Run(tc.name, func(b *testing.B) {
			sm := newSim(&testing.T{})
			var edit func(*Config)
			if tc.keyed {
				edit = keyed
			}
			a := sm.start(1, func(c *Config) {
				if edit != nil {
					edit(c)
				}
				c.Window = 1e6 * time.Hour // seq runs ahead of the still clock
			})
			sm.start(2, edit)
			sm.run(6 * s)
			src := udp(netip.MustParseAddr("10.0.0.2"))
			m := Message{Kind: Heartbeat, ID: "00000002", Load: 25}
			var seq uint64 = uint64(sm.clock.Now().UnixMilli())
			b.ReportAllocs()
			for range b.N {
				seq++
				if tc.keyed {
					m.Sign(testKey, uint64(t0.UnixMilli()), seq)
				}
				if tc.bad {
					m.Tag = "00000000000000000000000000000000"
				}
				buf := m.Append(nil)
				b.StartTimer()
				a.handle(buf, src)
				b.StopTimer()
			}
			b.StartTimer()
			want := "accepted"
			if tc.bad {
				want = "dropped_bad_tag"
			}
			if a.stat(want) < b.N {
				b.Fatalf("%s %d of %d", want, a.stat(want), b.N)
			}
		})
	}
}

func BenchmarkMessageSize(b *testing.B) {
	// Not a timing: the largest messages, plain and signed, in bytes.
	m := Message{Kind: Announce, ID: "ffffffff", Addr: netip.MustParseAddr("255.255.255.255"),
		Name: "n23456789012345678901234567890123456789012345678901234567890123", CPUs: 65535,
		MemTotal: ^uint64(0), MemFree: ^uint64(0), Containers: 65535}
	plain := len(m.Append(nil))
	m.Sign(testKey, ^uint64(0), ^uint64(0))
	signed := len(m.Append(nil))
	for range b.N {
	}
	b.ReportMetric(float64(plain), "plain-bytes")
	b.ReportMetric(float64(signed), "signed-bytes")
}
