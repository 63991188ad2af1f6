//go:build tamago

package main

import (
	"errors"
	"fmt"

	board "fornax/board/qemu_amd64"
	"fornax/drivers/virtio"
	"fornax/kernel/netstack"
	"fornax/kernel/netstack/virtiolink"
	"fornax/kernel/netsvc"
)

func init() {
	services = append(services, service{10, "net", startNet})
}

// startNet brings up virtio-net, gVisor's stack over it and Go's net
// package on top (net.SocketFunc), then the echo and discard services.
// It mounts /net (net_tree.go) and registers the network's commands
// (net_cmds.go) once all of them are up.
func startNet(s *system) error {
	if !s.cfg.Addr.IsValid() {
		return errors.New("no ip= on the command line: network off")
	}
	nic := virtio.NewMMIONet(board.VIRTIO_NET0_BASE)
	nic.Decline = s.cfg.OffloadsOff
	if err := nic.Init(); err != nil {
		return fmt.Errorf("virtio-net at %#x: %w", board.VIRTIO_NET0_BASE, err)
	}
	// The link's MTU is the device's (VIRTIO_NET_F_MTU, as a VXLAN
	// overlay's 1450), or lower with mtu=; TCP's MSS follows it.
	link := virtiolink.New(nic)
	mtu, warning := s.cfg.LinkMTU(nic.MTU())
	if warning != "" {
		fmt.Fprintf(s.con, "warning: %s\n", warning)
	}
	link.SetMTU(uint32(mtu))
	st, err := netstack.New(netstack.Config{
		Link:    link,
		Addr:    s.cfg.Addr,
		Gateway: s.cfg.Gateway,
	})
	if err != nil {
		nic.Close()
		return err
	}

	// The services listen on the stack directly: nothing is published
	// (interrupt, net.SocketFunc, /net) until all of them are up.
	svc := netsvc.New(netsvc.Config{
		Addr:       s.cfg.Addr.Addr(),
		MTU:        mtu,
		SendBuffer: netstack.TCPSendBuffer,
		RecvBuffer: netstack.TCPReceiveBuffer,
	})
	udp7, err := st.ListenPacket("udp4", ":7")
	if err != nil {
		return fmt.Errorf("listen udp :7: %w", err)
	}
	echo, ok := udp7.(netsvc.PacketConn)
	if !ok {
		udp7.Close()
		return fmt.Errorf("udp :7: %T cannot tell datagrams' destinations", udp7)
	}
	tcp7, err := st.Listen("tcp4", ":7")
	if err != nil {
		udp7.Close()
		return fmt.Errorf("listen tcp :7: %w", err)
	}
	tcp9, err := st.Listen("tcp4", ":9")
	if err != nil {
		udp7.Close()
		tcp7.Close()
		return fmt.Errorf("listen tcp :9: %w", err)
	}
	tcp19, err := st.Listen("tcp4", ":19")
	if err != nil {
		udp7.Close()
		tcp7.Close()
		tcp9.Close()
		return fmt.Errorf("listen tcp :19: %w", err)
	}
	serve := func(name string, run func() error) {
		go func() {
			err := run()
			s.kern.Logf("net: %s stopped: %v", name, err)
		}()
	}
	serve("udp echo", func() error { return svc.EchoUDP(echo) })
	serve("tcp echo", func() error { return svc.EchoTCP(tcp7) })
	serve("tcp discard", func() error { return svc.Discard(tcp9) })
	serve("tcp chargen", func() error { return svc.Chargen(tcp19) })

	if err := s.space.Mount("/net", netTree(s, st, nic, svc)); err != nil {
		return err
	}

	s.handle(board.VIRTIO_NET0_GSI, nic.HandleInterrupt)
	st.Install()
	s.net, s.nic, s.svc = st, nic, svc
	netCommands(s, st, nic)
	fmt.Fprintf(s.con, "net: %v ether %v mtu %d\n", s.cfg.Addr, st.Info().MAC, mtu)
	return nil
}
