package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// listenGossip opens the cluster's UDP socket: port on every address, so
// that it receives the subnet's broadcasts as well as datagrams sent to
// the node (a socket bound to the node's address would miss the
// broadcasts), and bound to the interface with SO_BINDTODEVICE, so that
// it hears and speaks on that interface only. Go sets SO_BROADCAST on
// UDP sockets, which sending to the broadcast address needs.
func listenGossip(ifname string, port int) (net.PacketConn, error) {
	var bindErr error
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		err := c.Control(func(fd uintptr) {
			bindErr = unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, ifname)
		})
		if err != nil {
			return err
		}
		return bindErr
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp4", fmt.Sprintf(":%d", port))
	if err != nil {
		return nil, gossipSocketError(ifname, port, bindErr, err)
	}
	return pc, nil
}

// gossipSocketError says what failed and how to fix it: bindErr is
// SO_BINDTODEVICE's own error, if that is what failed.
func gossipSocketError(ifname string, port int, bindErr, err error) error {
	switch {
	case bindErr != nil && errors.Is(bindErr, unix.EPERM):
		return fmt.Errorf("bind the gossip socket to %s (SO_BINDTODEVICE): %w: before Linux 5.7 that needs root or CAP_NET_RAW (sudo setcap cap_net_raw,cap_net_bind_service=ep fornaxd)", ifname, bindErr)
	case bindErr != nil && errors.Is(bindErr, unix.ENODEV):
		return fmt.Errorf("bind the gossip socket to %s: no such interface (ip link lists them): %w", ifname, bindErr)
	case bindErr != nil:
		return fmt.Errorf("bind the gossip socket to %s (SO_BINDTODEVICE): %w", ifname, bindErr)
	case errors.Is(err, unix.EADDRINUSE):
		return fmt.Errorf("udp port %d on %s is taken: is another fornaxd running on %s? (ss -ulpn 'sport = :%d' shows who): %w", port, ifname, ifname, port, err)
	}
	return fmt.Errorf("open the gossip socket, udp port %d on %s: %w", port, ifname, err)
}
