package main

import (
	"context"
	"fmt"
	"net"
	"syscall"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"fornax/mdns"
)

// listenMDNS opens udp/5353 on every address, shared with a host's own
// avahi-daemon (SO_REUSEADDR, SO_REUSEPORT), bound to ifname, in the
// group 224.0.0.251 there, multicasting there with TTL 255 (RFC 6762
// §11) and loop on, so that an avahi on this host hears us too.
func listenMDNS(ifname string) (net.PacketConn, error) {
	var ctlErr error
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		err := c.Control(func(fd uintptr) {
			for _, o := range []int{unix.SO_REUSEADDR, unix.SO_REUSEPORT} {
				if ctlErr == nil {
					ctlErr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, o, 1)
				}
			}
			if ctlErr == nil {
				ctlErr = unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, ifname)
			}
		})
		if err != nil {
			return err
		}
		return ctlErr
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp4", fmt.Sprintf(":%d", mdns.Port))
	if err != nil {
		return nil, fmt.Errorf("-mdns: open udp/%d on %s: %w (or turn mDNS off: -mdns=false)", mdns.Port, ifname, err)
	}
	ifi, err := net.InterfaceByName(ifname)
	if err == nil {
		p := ipv4.NewPacketConn(pc)
		group := &net.UDPAddr{IP: mdns.Group.Addr().AsSlice()}
		for _, step := range []func() error{
			func() error { return p.JoinGroup(ifi, group) },
			func() error { return p.SetMulticastInterface(ifi) },
			func() error { return p.SetMulticastTTL(255) },
			func() error { return p.SetMulticastLoopback(true) },
		} {
			if err = step(); err != nil {
				break
			}
		}
	}
	if err != nil {
		pc.Close()
		return nil, fmt.Errorf("-mdns: join %v on %s: %w (or turn mDNS off: -mdns=false)", mdns.Group.Addr(), ifname, err)
	}
	return pc, nil
}
