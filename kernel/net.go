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
	"fornax/kernel/netstack/virtiolink"
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
	st, err := netstack.New(netstack.Config{
		Link:    virtiolink.New(nic),
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
	serve := func(name string, run func() error) {
		go func() {
			err := run()
			s.kern.Logf("net: %s stopped: %v", name, err)
		}()
	}
	serve("udp echo", func() error { return svc.EchoUDP(echo) })
	serve("tcp echo", func() error { return svc.EchoTCP(tcp7) })
	serve("tcp discard", func() error { return svc.Discard(tcp9) })

	ifconfig := func() []byte {
		return []byte(st.Info().String() + driverStats(nic.Stats()))
	}
	netDir := ns.NewDir()
	netDir.File("ifconfig", ns.File{Read: func() ([]byte, error) { return ifconfig(), nil }})
	netDir.File("addr", ns.File{Read: func() ([]byte, error) { return []byte(s.cfg.Addr.String() + "\n"), nil }})
	netDir.File("ether", ns.File{Read: func() ([]byte, error) { return []byte(st.Info().MAC.String() + "\n"), nil }})
	netDir.File("virtio", ns.File{Read: func() ([]byte, error) { return []byte(driverStats(nic.Stats())), nil }})
	netDir.File("services", ns.File{Read: func() ([]byte, error) { return []byte(svc.Stats.String()), nil }})
	if err := s.space.Mount("/net", netDir); err != nil {
		return err
	}

	s.handle(board.VIRTIO_NET0_GSI, netVector, nic.HandleInterrupt)
	st.Install()
	s.net = st
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

// driverStats formats the driver's counters; bad-id, overrun and resets
// count a device that broke its queues' contract (see virtio.Queue.Used).
func driverStats(d virtio.Stats) string {
	return fmt.Sprintf("virtio rx packets %d bytes %d drops %d errors %d\n"+
		"virtio tx packets %d bytes %d drops %d errors %d\n"+
		"virtio interrupts %d spurious %d resets %d\n"+
		"virtio rxq size %d free %d inflight %d bad-id %d overrun %d\n"+
		"virtio txq size %d free %d inflight %d bad-id %d overrun %d\n",
		d.RxPackets, d.RxBytes, d.RxDrops, d.RxErrors,
		d.TxPackets, d.TxBytes, d.TxDrops, d.TxErrors,
		d.Interrupts, d.Spurious, d.Resets,
		d.RX.Size, d.RX.Free, d.RX.InFlight, d.RX.BadIDs, d.RX.Overruns,
		d.TX.Size, d.TX.Free, d.TX.InFlight, d.TX.BadIDs, d.TX.Overruns)
}
