package main

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"fornax/cluster"
	"fornax/internal/ipv4"
)

// ifaceInfo is what fornaxd needs to know of a network interface.
type ifaceInfo struct {
	name     string
	up       bool
	loopback bool
	mac      net.HardwareAddr
	addrs    []netip.Prefix // every address, IPv4 or not, in the kernel's order
}

// v4 returns the interface's IPv4 addresses.
func (i ifaceInfo) v4() []netip.Prefix {
	var out []netip.Prefix
	for _, p := range i.addrs {
		if p.Addr().Is4() {
			out = append(out, p)
		}
	}
	return out
}

// loadInterfaces lists the host's interfaces.
func loadInterfaces() ([]ifaceInfo, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("list network interfaces: %w", err)
	}
	var out []ifaceInfo
	for _, ifc := range ifs {
		info := ifaceInfo{
			name:     ifc.Name,
			up:       ifc.Flags&net.FlagUp != 0,
			loopback: ifc.Flags&net.FlagLoopback != 0,
			mac:      ifc.HardwareAddr,
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			return nil, fmt.Errorf("addresses of %s: %w", ifc.Name, err)
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ip, ok := netip.AddrFromSlice(ipn.IP)
			if !ok {
				continue
			}
			ones, _ := ipn.Mask.Size()
			info.addrs = append(info.addrs, netip.PrefixFrom(ip.Unmap(), ones))
		}
		out = append(out, info)
	}
	return out, nil
}

// candidate reports whether an interface can carry the cluster: up, not
// loopback, with an IPv4 subnet that has a broadcast address (§1).
func (i ifaceInfo) candidate() bool {
	return i.up && !i.loopback && slices.ContainsFunc(i.v4(), ipv4.HasBroadcast)
}

// pickInterface finds the interface called name, or, for "", the only
// candidate.
func pickInterface(all []ifaceInfo, name string) (ifaceInfo, error) {
	if name != "" {
		i := slices.IndexFunc(all, func(i ifaceInfo) bool { return i.name == name })
		if i < 0 {
			return ifaceInfo{}, fmt.Errorf("-iface %s: no such interface (this host has: %s)", name, ifaceNames(all))
		}
		if !all[i].up {
			return ifaceInfo{}, fmt.Errorf("-iface %s is down: bring it up (ip link set %s up) or choose another", name, name)
		}
		return all[i], nil
	}
	var cands []ifaceInfo
	for _, i := range all {
		if i.candidate() {
			cands = append(cands, i)
		}
	}
	switch len(cands) {
	case 0:
		return ifaceInfo{}, errors.New("no interface is up with an IPv4 subnet of /30 or shorter: give -iface (this host has: " + ifaceNames(all) + ")")
	case 1:
		return cands[0], nil
	}
	return ifaceInfo{}, fmt.Errorf("several interfaces could gossip (%s): choose one with -iface", ifaceNames(cands))
}

func ifaceNames(all []ifaceInfo) string {
	var s []string
	for _, i := range all {
		s = append(s, i.name)
	}
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// pickAddr chooses the address to gossip from: want if given, which must
// be one of the interface's, else its first IPv4 address. The subnet
// must have a broadcast address: /30 or shorter (docs/protocol.md §1).
func pickAddr(ifc ifaceInfo, want netip.Addr) (netip.Prefix, error) {
	v4 := ifc.v4()
	if len(v4) == 0 {
		return netip.Prefix{}, fmt.Errorf("-iface %s has no IPv4 address: give it one (ip addr add 10.0.0.50/24 dev %s) or choose another interface", ifc.name, ifc.name)
	}
	p := v4[0]
	if want.IsValid() {
		i := slices.IndexFunc(v4, func(p netip.Prefix) bool { return p.Addr() == want })
		if i < 0 {
			return netip.Prefix{}, fmt.Errorf("-addr %v is not an address of %s (it has %s)", want, ifc.name, prefixList(v4))
		}
		p = v4[i]
	}
	if !ipv4.HasBroadcast(p) {
		return netip.Prefix{}, fmt.Errorf("%v on %s has no broadcast address: the cluster needs a subnet of /30 or shorter (choose another with -addr or -iface)", p, ifc.name)
	}
	if m := p.Masked(); p.Addr() == m.Addr() || p.Addr() == ipv4.Broadcast(m) {
		return netip.Prefix{}, fmt.Errorf("%v on %s is the network or broadcast address of its subnet: choose another with -addr", p, ifc.name)
	}
	return p, nil
}

func prefixList(ps []netip.Prefix) string {
	var s []string
	for _, p := range ps {
		s = append(s, p.String())
	}
	return strings.Join(s, ", ")
}

// nodeID is -id, or the id derived from the interface's MAC as a Fornax
// VM derives its own (docs/protocol.md §7).
func nodeID(ifc ifaceInfo, id string) (string, error) {
	if id != "" {
		return id, nil
	}
	if len(ifc.mac) != 6 {
		return "", fmt.Errorf("-iface %s has no Ethernet MAC address to derive the node id from: give one with -id (8 lowercase hex digits)", ifc.name)
	}
	return cluster.IDFromMAC(ifc.mac), nil
}
