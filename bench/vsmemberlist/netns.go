package main

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
)

// The benchmark's LAN: one network namespace with one link holding an
// address per node. A broadcast a node sends on it is looped back by the
// kernel to every socket bound to the broadcast address and the port, one
// copy each, as a switch would hand it to every NIC; a unicast reaches
// the one socket bound to its destination. The link is one end of a veth
// pair whose other end is up and has no address (a dummy link would do,
// but not every kernel has the module); the namespace has no other
// interface, so nothing leaves it.
const (
	linkName = "fb0"
	peerName = "fb1"
	// subnet is the LAN. A /16 holds the largest N with room to spare.
	subnetText = "10.213.0.0/16"
)

var subnet = netip.MustParsePrefix(subnetText)

// hostAddr is the address of node k (0-based): the (k+1)th host of the
// subnet, so 10.213.0.1, ..., 10.213.0.255, 10.213.1.0, ...
func hostAddr(k int) netip.Addr {
	b := subnet.Addr().As4()
	h := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	h += uint32(k + 1)
	return netip.AddrFrom4([4]byte{byte(h >> 24), byte(h >> 16), byte(h >> 8), byte(h)})
}

// broadcastAddr is the subnet's broadcast address.
func broadcastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	bits := p.Bits()
	for i := range b {
		for j := 0; j < 8; j++ {
			if i*8+j >= bits {
				b[i] |= 0x80 >> j
			}
		}
	}
	return netip.AddrFrom4(b)
}

// makeNamespace creates namespace ns with lo up and the LAN link
// holding the addresses of nodes 0..count-1. On failure it removes what
// it made.
func makeNamespace(ns string, count int) error {
	if count < 1 || count > 65000 {
		return fmt.Errorf("bad address count %d: want 1-65000", count)
	}
	if err := run(nil, "ip", "netns", "add", ns); err != nil {
		return err
	}
	var batch bytes.Buffer
	fmt.Fprintf(&batch, "link set lo up\nlink add %s type veth peer name %s\nlink set %s up\nlink set %s up\n",
		linkName, peerName, peerName, linkName)
	for k := range count {
		fmt.Fprintf(&batch, "addr add %v/%d dev %s\n", hostAddr(k), subnet.Bits(), linkName)
	}
	if err := run(&batch, "ip", "-n", ns, "-batch", "-"); err != nil {
		removeNamespace(ns)
		return err
	}
	return nil
}

// removeNamespace deletes namespace ns and, with it, its link.
func removeNamespace(ns string) error {
	return run(nil, "ip", "netns", "del", ns)
}

// run runs a command and returns an error holding its output when it fails.
func run(stdin *bytes.Buffer, name string, args ...string) error {
	cmd := exec.Command(name, args...)
	if stdin != nil {
		cmd.Stdin = stdin
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return fmt.Errorf("%s is missing: install iproute2 (make deps)", name)
		}
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// needRoot fails unless the process may create network namespaces.
func needRoot() error {
	if os.Geteuid() != 0 {
		return errors.New("the benchmark makes a network namespace, which needs root: run it as root (sudo make bench-memberlist)")
	}
	return nil
}
