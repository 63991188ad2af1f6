package main

import (
	"errors"
	"net"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestGossipSocketError(t *testing.T) {
	for _, c := range []struct {
		bindErr, err error
		want         string
	}{
		{unix.EPERM, unix.EPERM, "bind the gossip socket to eth1 (SO_BINDTODEVICE): operation not permitted: before Linux 5.7 that needs root or CAP_NET_RAW (sudo setcap cap_net_raw,cap_net_bind_service=ep fornaxd)"},
		{unix.ENODEV, unix.ENODEV, "bind the gossip socket to eth1: no such interface (ip link lists them)"},
		{unix.EINVAL, unix.EINVAL, "bind the gossip socket to eth1 (SO_BINDTODEVICE): invalid argument"},
		{nil, unix.EADDRINUSE, "udp port 9710 on eth1 is taken: is another fornaxd running on eth1? (ss -ulpn 'sport = :9710' shows who)"},
		{nil, errors.New("boom"), "open the gossip socket, udp port 9710 on eth1: boom"},
	} {
		got := gossipSocketError("eth1", 9710, c.bindErr, c.err)
		if !strings.HasPrefix(got.Error(), c.want) {
			t.Errorf("gossipSocketError(%v, %v) = %q, want %q", c.bindErr, c.err, got, c.want)
		}
		if !errors.Is(got, c.err) {
			t.Errorf("%q does not wrap %v", got, c.err)
		}
	}
}

// Binding to an interface that does not exist fails in SO_BINDTODEVICE,
// before any datagram could be sent.
func TestListenGossipNoInterface(t *testing.T) {
	_, err := listenGossip("fxnosuch0", 0)
	if err == nil || !strings.Contains(err.Error(), "bind the gossip socket to fxnosuch0: no such interface") {
		t.Errorf("listenGossip on a missing interface: %v", err)
	}
}

// On the loopback interface the socket opens, bound to it, and may send
// to a broadcast address. (Nothing is sent.)
func TestListenGossipLoopback(t *testing.T) {
	pc, err := listenGossip("lo", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	rc, err := pc.(*net.UDPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var dev string
	var bcast int
	var gerr, berr error
	rc.Control(func(fd uintptr) {
		dev, gerr = unix.GetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE)
		bcast, berr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_BROADCAST)
	})
	if gerr != nil || dev != "lo" {
		t.Errorf("SO_BINDTODEVICE = %q, %v; want lo", dev, gerr)
	}
	if berr != nil || bcast != 1 {
		t.Errorf("SO_BROADCAST = %d, %v; want 1", bcast, berr)
	}
	if a := pc.LocalAddr().(*net.UDPAddr); !a.IP.IsUnspecified() {
		t.Errorf("bound to %v: a socket bound to one address misses the broadcasts", a)
	}
}
