package mdns

import (
	"net/netip"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// FuzzReceive: no datagram crashes the responder, and whatever it
// answers is a DNS message that fits a packet.
func FuzzReceive(f *testing.F) {
	f.Add(query(0, "fornax-01.local.", dnsmessage.TypeA, false))
	f.Add(query(9, "_fornax._udp.local.", dnsmessage.TypePTR, true))
	f.Add([]byte{0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, now := claimed(t, "fornax-01")
		for _, src := range []netip.AddrPort{peer, netip.MustParseAddrPort("10.0.0.9:1234")} {
			for _, p := range r.Receive(now, src, b) {
				if len(p.Data) > MaxPacket {
					t.Fatalf("answer of %d bytes", len(p.Data))
				}
				var m dnsmessage.Message
				if err := m.Unpack(p.Data); err != nil {
					t.Fatalf("answer does not parse: %v", err)
				}
			}
		}
	})
}
