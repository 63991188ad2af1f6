package main

import (
	"net"
	"net/netip"
	"strings"
	"testing"
)

func pfx(s ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range s {
		out = append(out, netip.MustParsePrefix(p))
	}
	return out
}

var (
	lo    = ifaceInfo{name: "lo", up: true, loopback: true, addrs: pfx("127.0.0.1/8", "::1/128")}
	eth0  = ifaceInfo{name: "eth0", up: true, mac: net.HardwareAddr{0x52, 0x54, 0, 0x12, 0x34, 0x56}, addrs: pfx("fe80::1/64", "10.0.2.15/24", "10.0.3.7/16")}
	eth1  = ifaceInfo{name: "eth1", up: true, mac: net.HardwareAddr{0x52, 0x54, 0, 0, 0, 1}, addrs: pfx("192.168.1.5/24")}
	down  = ifaceInfo{name: "eth2", mac: net.HardwareAddr{0x52, 0x54, 0, 0, 0, 2}, addrs: pfx("192.168.2.5/24")}
	wg0   = ifaceInfo{name: "wg0", up: true, addrs: pfx("10.8.0.2/32")}
	v6    = ifaceInfo{name: "eth3", up: true, mac: net.HardwareAddr{0x52, 0x54, 0, 0, 0, 3}, addrs: pfx("2001:db8::5/64")}
	ptp   = ifaceInfo{name: "ptp0", up: true, addrs: pfx("10.9.0.0/31")}
	edges = ifaceInfo{name: "eth4", up: true, addrs: pfx("10.7.0.0/24", "10.7.0.255/24", "10.7.0.9/24")}
)

func TestPickInterface(t *testing.T) {
	for _, c := range []struct {
		all     []ifaceInfo
		name    string
		want    string // interface, or a part of the error
		wantErr bool
	}{
		{[]ifaceInfo{lo, eth0}, "", "eth0", false},
		{[]ifaceInfo{lo, eth0, down, wg0, v6, ptp}, "", "eth0", false}, // the others cannot gossip
		{[]ifaceInfo{lo, eth0, eth1}, "", "several interfaces could gossip (eth0, eth1): choose one with -iface", true},
		{[]ifaceInfo{lo, eth0, eth1}, "eth1", "eth1", false},
		{[]ifaceInfo{lo}, "", "no interface is up with an IPv4 subnet of /30 or shorter: give -iface (this host has: lo)", true},
		{nil, "", "this host has: none", true},
		{[]ifaceInfo{lo, eth0}, "eth9", "-iface eth9: no such interface (this host has: lo, eth0)", true},
		{[]ifaceInfo{lo, down}, "eth2", "-iface eth2 is down: bring it up (ip link set eth2 up)", true},
		{[]ifaceInfo{lo, eth0}, "lo", "lo", false}, // named: the operator's choice
	} {
		got, err := pickInterface(c.all, c.name)
		switch {
		case c.wantErr && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("pickInterface(%q): %v, want error with %q", c.name, err, c.want)
		case !c.wantErr && (err != nil || got.name != c.want):
			t.Errorf("pickInterface(%q) = %q, %v, want %q", c.name, got.name, err, c.want)
		}
	}
}

func TestPickAddr(t *testing.T) {
	for _, c := range []struct {
		ifc  ifaceInfo
		want string // the prefix, or a part of the error
		addr string
	}{
		{eth0, "10.0.2.15/24", ""}, // the first IPv4 one, not the link-local IPv6
		{eth0, "10.0.3.7/16", "10.0.3.7"},
		{eth0, "-addr 10.0.9.9 is not an address of eth0 (it has 10.0.2.15/24, 10.0.3.7/16)", "10.0.9.9"},
		{v6, "-iface eth3 has no IPv4 address: give it one (ip addr add 10.0.0.50/24 dev eth3)", ""},
		{wg0, "10.8.0.2/32 on wg0 has no broadcast address: the cluster needs a subnet of /30 or shorter", ""},
		{ptp, "has no broadcast address", ""},
		{edges, "10.7.0.0/24 on eth4 is the network or broadcast address of its subnet", ""},
		{edges, "10.7.0.255/24 on eth4 is the network or broadcast address", "10.7.0.255"},
		{edges, "10.7.0.9/24", "10.7.0.9"},
	} {
		var want netip.Addr
		if c.addr != "" {
			want = netip.MustParseAddr(c.addr)
		}
		got, err := pickAddr(c.ifc, want)
		if err != nil {
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("pickAddr(%s, %q): %v, want %q", c.ifc.name, c.addr, err, c.want)
			}
			continue
		}
		if got.String() != c.want {
			t.Errorf("pickAddr(%s, %q) = %v, want %q", c.ifc.name, c.addr, got, c.want)
		}
	}
}

func TestNodeID(t *testing.T) {
	// docs/protocol.md §7: 52:54:00:12:34:56 gives bb7f3b7b.
	if id, err := nodeID(eth0, ""); id != "bb7f3b7b" || err != nil {
		t.Errorf("id from eth0's MAC: %q, %v", id, err)
	}
	if id, err := nodeID(eth0, "0a1b2c3d"); id != "0a1b2c3d" || err != nil {
		t.Errorf("-id: %q, %v", id, err)
	}
	if _, err := nodeID(wg0, ""); err == nil || !strings.Contains(err.Error(), "-iface wg0 has no Ethernet MAC address to derive the node id from: give one with -id") {
		t.Errorf("no MAC: %v", err)
	}
	if id, err := nodeID(wg0, "0a1b2c3d"); id != "0a1b2c3d" || err != nil {
		t.Errorf("no MAC, -id: %q, %v", id, err)
	}
}

// loadInterfaces sees the loopback interface every Linux has.
func TestLoadInterfaces(t *testing.T) {
	all, err := loadInterfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range all {
		if i.loopback && i.up {
			for _, p := range i.v4() {
				if p.Addr() == netip.MustParseAddr("127.0.0.1") && p.Bits() == 8 {
					return
				}
			}
		}
	}
	t.Errorf("no loopback with 127.0.0.1/8 among %+v", all)
}
