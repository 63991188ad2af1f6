package cluster

import (
	"math/rand/v2"
	"net"
	"net/netip"
)

// The table's side of a cluster that spans subnets (docs/protocol.md
// §4.6): where a datagram may come from, and the peers off our subnet,
// whom our messages reach by unicast.

// source checks a datagram's source (docs/protocol.md §6, step 2): a
// *net.UDPAddr holding a host address of our subnet, neither its network
// nor its broadcast address, and the cluster's port (§1): a datagram
// from another port is no node's, and may be a service such as UDP
// echo reflecting a forged one. A node with seeds also takes unicast
// hosts off the subnet (onSeg false), which step 2a checks further
// (§4.6).
func (t *table) source(src net.Addr) (a netip.Addr, onSeg bool, err error) {
	u, ok := src.(*net.UDPAddr)
	if !ok {
		return netip.Addr{}, false, dropf(ReasonForeignSubnet, "source %v is not UDP", src)
	}
	a, ok = netip.AddrFromSlice(u.IP)
	a = a.Unmap()
	onSeg = ok && a.Is4() && t.prefix.Contains(a) && a != t.prefix.Addr() && a != t.bcast
	if !onSeg && !(ok && t.spans && !t.prefix.Contains(a) && remoteHost(a)) {
		return netip.Addr{}, false, dropf(ReasonForeignSubnet, "source %v is not a host of %v", u.IP, t.prefix)
	}
	if u.Port != t.port {
		return netip.Addr{}, false, dropf(ReasonForeignPort, "source %v is not port %d", u, t.port)
	}
	return a, onSeg, nil
}

// local reports whether a is on our subnet.
func (t *table) local(a netip.Addr) bool { return t.prefix.Contains(a) }

// unremote takes p out of the remote list, if it is in it.
func (t *table) unremote(p *Peer) {
	if !p.Addr.IsValid() || t.local(p.Addr) {
		return
	}
	last := t.remote[len(t.remote)-1]
	t.remote[p.ri], last.ri = last, p.ri
	t.remote[len(t.remote)-1] = nil
	t.remote = t.remote[:len(t.remote)-1]
}

// randomLocal returns an online peer of our subnet drawn at random
// with rng, or nil: whom a newcomer asks when its broadcast SYNC drew no
// answer (many may ask at once after a cold start: not all the same).
func (t *table) randomLocal(rng *rand.Rand) *Peer {
	var got *Peer
	k := 0
	for p := t.ages.oldest(Online); p != nil; p = p.next {
		if t.local(p.Addr) {
			if k++; rng.IntN(k) == 0 {
				got = p
			}
		}
	}
	return got
}
