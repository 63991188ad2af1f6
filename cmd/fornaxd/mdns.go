package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"fornax/cluster"
	"fornax/mdns"
)

// mdnsPoll is how often fornaxd looks at the node's name, membership and
// auth mode, so that a rename, leave or join through ctl reaches mDNS
// within it.
const mdnsPoll = 250 * time.Millisecond

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

// mdnsInfo is what the node publishes: its A record and its services,
// _fornax._udp (gossip), _9p._tcp and the face as _http._tcp (path=/)
// and _prometheus-http._tcp (path=/metrics), each with TXT id, profile
// and auth (never a key). ninePPort or httpPort 0: not served.
func mdnsInfo(node *cluster.Node, addr netip.Addr, profile string, ninePPort, httpPort uint16) (mdns.Info, bool) {
	ctl, _ := node.Tree().ReadFile("ctl")
	joined := strings.HasPrefix(string(ctl), "joined\n")
	auth := "plain"
	for _, l := range strings.Split(string(ctl), "\n") {
		if a, ok := strings.CutPrefix(l, "auth "); ok {
			auth = a
		}
	}
	txt := []string{"id=" + node.ID(), "profile=" + profile, "auth=" + auth}
	info := mdns.Info{Name: node.Name(), Addr: addr, Services: []mdns.Service{{Type: "_fornax._udp", Port: cluster.DefaultPort, TXT: txt}}}
	if ninePPort != 0 {
		info.Services = append(info.Services, mdns.Service{Type: "_9p._tcp", Port: ninePPort, TXT: txt})
	}
	if httpPort != 0 {
		info.Services = append(info.Services,
			mdns.Service{Type: "_http._tcp", Port: httpPort, TXT: append([]string{"path=/"}, txt...)},
			mdns.Service{Type: "_prometheus-http._tcp", Port: httpPort, TXT: append([]string{"path=/metrics"}, txt...)})
	}
	return info, joined
}

// followNode hands the node's state to the responder every mdnsPoll
// until ctx is done.
func followNode(ctx context.Context, s *mdns.Server, info func() (mdns.Info, bool), logf func(string, ...any)) {
	t := time.NewTicker(mdnsPoll)
	defer t.Stop()
	var failed bool
	for {
		i, on := info()
		err := s.Set(i, on)
		if err != nil && !failed {
			logf("fornaxd: mdns: %v", err)
		}
		failed = err != nil
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
