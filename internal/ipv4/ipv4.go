// Package ipv4 holds the facts about IPv4 subnets that more than one part
// of Fornax needs (the boot configuration, the network stack, the
// cluster), so that each is written once. It is plain Go with no
// dependencies beyond the standard library.
package ipv4

import (
	"net"
	"net/netip"
)

// Broadcast returns the subnet broadcast address of p: the last address
// of the prefix, every host bit set (10.0.2.255 for 10.0.2.15/24). For a
// /31 or /32, which have no broadcast address (see HasBroadcast), that is
// still the last address. It returns the zero Addr for a prefix that is
// not a valid IPv4 one.
func Broadcast(p netip.Prefix) netip.Addr {
	if !p.IsValid() || !p.Addr().Is4() {
		return netip.Addr{}
	}
	a := p.Masked().Addr().As4()
	for b := p.Bits(); b < 32; b++ {
		a[b/8] |= 0x80 >> (b % 8)
	}
	return netip.AddrFrom4(a)
}

// HasBroadcast reports whether the subnet p has a network and a broadcast
// address that no host may use: true for a /30 and larger, false for a
// /31 (RFC 3021: both addresses are hosts) and a /32.
func HasBroadcast(p netip.Prefix) bool {
	return p.IsValid() && p.Addr().Is4() && p.Bits() <= 30
}

// Source is the address a connection comes from, unmapped (::ffff:a.b.c.d
// is a.b.c.d), so that per-source limits count one host once; an
// address that cannot be told is the zero Addr, which all such share.
// The 9P server, the small TCP services and the HTTP face count by it.
func Source(a net.Addr) netip.Addr {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.AddrPort().Addr().Unmap()
	}
	if a == nil {
		return netip.Addr{}
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}
