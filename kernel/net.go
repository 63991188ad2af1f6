//go:build tamago

package main

import (
	"errors"
	"fmt"
	"io"
	"net"

	board "fornax/board/qemu_amd64"
	"fornax/drivers/virtio"
	"fornax/kernel/netstack"
	"fornax/kernel/netsvc"
	"fornax/kernel/ns"
	"fornax/kernel/shell"
)

// netVector is the interrupt vector of the virtio-net device.
const netVector = board.DeviceVectorBase

func init() {
	services = append(services, service{10, "net", startNet})
}

// startNet brings up virtio-net, gVisor's stack over it and Go's net
// package on top (net.SocketFunc), then the echo and discard services.
func startNet(s *system) error {
	if !s.cfg.Addr.IsValid() {
		return errors.New("no ip= on the command line: network off")
	}
	nic := virtio.NewMMIONet(board.VIRTIO_NET0_BASE)
	if err := nic.Init(); err != nil {
		return fmt.Errorf("virtio-net at %#x: %w", board.VIRTIO_NET0_BASE, err)
	}
	s.handle(board.VIRTIO_NET0_GSI, netVector, nic.HandleInterrupt)

	st, err := netstack.New(netstack.Config{
		Link:    virtio.NewLinkEndpoint(nic),
		Addr:    s.cfg.Addr,
		Gateway: s.cfg.Gateway,
	})
	if err != nil {
		return err
	}
	st.Install()
	s.net = st

	var svc netsvc.Stats
	for _, l := range []struct {
		network, addr string
		serve         func(any) error
	}{
		{"udp4", ":7", func(c any) error { return svc.EchoUDP(c.(net.PacketConn)) }},
		{"tcp4", ":7", func(c any) error { return svc.EchoTCP(c.(net.Listener)) }},
		{"tcp4", ":9", func(c any) error { return svc.Discard(c.(net.Listener)) }},
	} {
		var c any
		if l.network == "udp4" {
			c, err = net.ListenPacket(l.network, l.addr)
		} else {
			c, err = net.Listen(l.network, l.addr)
		}
		if err != nil {
			return fmt.Errorf("listen %s %s: %w", l.network, l.addr, err)
		}
		go l.serve(c)
	}

	ifconfig := func() []byte {
		return []byte(st.Info().String() + driverStats(nic.Stats()))
	}
	netDir := ns.NewDir()
	netDir.File("ifconfig", ns.File{Read: func() ([]byte, error) { return ifconfig(), nil }})
	netDir.File("addr", ns.File{Read: func() ([]byte, error) { return []byte(s.cfg.Addr.String() + "\n"), nil }})
	netDir.File("ether", ns.File{Read: func() ([]byte, error) { return []byte(st.Info().MAC.String() + "\n"), nil }})
	netDir.File("virtio", ns.File{Read: func() ([]byte, error) { return []byte(driverStats(nic.Stats())), nil }})
	netDir.File("services", ns.File{Read: func() ([]byte, error) { return []byte(svc.String()), nil }})
	if err := s.space.Mount("/net", netDir); err != nil {
		return err
	}
	s.shell.Register("ifconfig", "", "network address, MAC and counters", func(w io.Writer, args []string) error {
		if len(args) > 0 {
			return shell.ErrUsage
		}
		_, err := w.Write(ifconfig())
		return err
	})
	netsvc.Commands(s.shell, net.ListenPacket)
	fmt.Fprintf(s.con, "net: %v ether %v\n", s.cfg.Addr, st.Info().MAC)
	return nil
}

func driverStats(d virtio.Stats) string {
	return fmt.Sprintf("virtio rx packets %d bytes %d drops %d errors %d\n"+
		"virtio tx packets %d bytes %d drops %d errors %d\n"+
		"virtio interrupts %d spurious %d\n"+
		"virtio rxq size %d free %d inflight %d\n"+
		"virtio txq size %d free %d inflight %d\n",
		d.RxPackets, d.RxBytes, d.RxDrops, d.RxErrors,
		d.TxPackets, d.TxBytes, d.TxDrops, d.TxErrors,
		d.Interrupts, d.Spurious,
		d.RX.Size, d.RX.Free, d.RX.InFlight,
		d.TX.Size, d.TX.Free, d.TX.InFlight)
}
