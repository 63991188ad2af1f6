//go:build tamago

package main

// The /net tree: the interface's address and counters, the driver's, the
// services'.

import (
	"fmt"

	"fornax/drivers/virtio"
	"fornax/kernel/netstack"
	"fornax/kernel/netsvc"
	"fornax/kernel/ns"
)

// netTree returns the /net tree of stack st over nic, with services svc.
func netTree(s *system, st *netstack.Stack, nic *virtio.Net, svc *netsvc.Services) *ns.Dir {
	netDir := ns.NewDir()
	netDir.File("ifconfig", ns.File{Read: func() ([]byte, error) { return ifconfig(st, nic), nil }})
	netDir.File("addr", ns.File{Read: func() ([]byte, error) { return []byte(s.cfg.Addr.String() + "\n"), nil }})
	netDir.File("ether", ns.File{Read: func() ([]byte, error) { return []byte(st.Info().MAC.String() + "\n"), nil }})
	netDir.File("virtio", ns.File{Read: func() ([]byte, error) {
		return []byte(driverStats(nic.Stats()) + offloads(nic.Features())), nil
	}})
	netDir.File("services", ns.File{Read: func() ([]byte, error) { return []byte(svc.Stats.String()), nil }})
	return netDir
}

// ifconfig is /net/ifconfig and the ifconfig command's output: the
// stack's figures, then the driver's.
func ifconfig(st *netstack.Stack, nic *virtio.Net) []byte {
	return []byte(st.Info().String() + driverStats(nic.Stats()))
}

// offloads names the offloads negotiated with the device.
func offloads(f uint64) string {
	l := "virtio offloads"
	for _, o := range []struct {
		bit  uint64
		name string
	}{
		{virtio.FeatureNetCsum, "csum"}, {virtio.FeatureNetHostTSO4, "host-tso4"},
		{virtio.FeatureNetGuestCsum, "guest-csum"}, {virtio.FeatureNetGuestTSO4, "guest-tso4"},
		{virtio.FeatureNetMrgRxbuf, "mrg-rxbuf"},
	} {
		if f&o.bit != 0 {
			l += " " + o.name
		}
	}
	return l + "\n"
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
