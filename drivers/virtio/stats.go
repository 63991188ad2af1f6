package virtio

import (
	"fmt"
	"sync/atomic"
)

type counters struct {
	rxPackets, rxBytes, rxErrors          atomic.Uint64
	txPackets, txBytes, txDrops, txErrors atomic.Uint64
	interrupts, spurious, configChanges   atomic.Uint64
	resets                                atomic.Uint64
}

// QueueStats describes one virtqueue.
type QueueStats struct {
	Size     int // descriptors
	Free     int // descriptors owned by the driver
	InFlight int // descriptors owned by the device

	// The device broke the used ring's contract (each made the driver
	// reset the device, see Stats.Resets):
	BadIDs   uint64 // a used id that was no chain in flight
	Overruns uint64 // used.idx ahead by more than the chains in flight
}

// Stats is a snapshot of the device counters.
type Stats struct {
	RxPackets, RxBytes uint64
	RxErrors           uint64 // malformed used entries, RX.BadIDs, RX.Overruns
	TxPackets, TxBytes uint64
	TxDrops            uint64 // frames dropped: no free descriptor
	TxErrors           uint64 // frames refused (too large, device closed), TX.BadIDs, TX.Overruns

	Interrupts    uint64 // interrupts with a cause
	Spurious      uint64 // interrupts with InterruptStatus 0
	ConfigChanges uint64
	// Resets counts device resets after a queue broke; in-flight frames
	// are lost with each.
	Resets uint64

	RX, TX QueueStats
}

// String formats the counters as /net/virtio and ifconfig show them;
// bad-id, overrun and resets count a device that broke its queues'
// contract (see Queue.Used). The rx line has no drops: the driver drops
// no received frame (a malformed one is an error).
func (s Stats) String() string {
	return fmt.Sprintf("virtio rx packets %d bytes %d errors %d\n"+
		"virtio tx packets %d bytes %d drops %d errors %d\n"+
		"virtio interrupts %d spurious %d resets %d\n"+
		"virtio rxq size %d free %d inflight %d bad-id %d overrun %d\n"+
		"virtio txq size %d free %d inflight %d bad-id %d overrun %d\n",
		s.RxPackets, s.RxBytes, s.RxErrors,
		s.TxPackets, s.TxBytes, s.TxDrops, s.TxErrors,
		s.Interrupts, s.Spurious, s.Resets,
		s.RX.Size, s.RX.Free, s.RX.InFlight, s.RX.BadIDs, s.RX.Overruns,
		s.TX.Size, s.TX.Free, s.TX.InFlight, s.TX.BadIDs, s.TX.Overruns)
}

// Stats returns a snapshot of the counters and queue occupancy.
func (n *Net) Stats() (s Stats) {
	c := &n.stats
	s = Stats{
		RxPackets: c.rxPackets.Load(), RxBytes: c.rxBytes.Load(), RxErrors: c.rxErrors.Load(),
		TxPackets: c.txPackets.Load(), TxBytes: c.txBytes.Load(),
		TxDrops: c.txDrops.Load(), TxErrors: c.txErrors.Load(),
		Interrupts: c.interrupts.Load(), Spurious: c.spurious.Load(),
		ConfigChanges: c.configChanges.Load(), Resets: c.resets.Load(),
	}

	if n.rx.q != nil {
		n.rx.Lock()
		s.RX = queueStats(n.rx.q)
		s.RxErrors += s.RX.BadIDs + s.RX.Overruns
		n.rx.Unlock()
	}

	if n.tx.q != nil {
		n.tx.Lock()
		n.reclaimTx()
		s.TX = queueStats(n.tx.q)
		s.TxErrors += s.TX.BadIDs + s.TX.Overruns
		n.tx.Unlock()
	}

	return
}

func queueStats(q *Queue) QueueStats {
	return QueueStats{Size: q.Size(), Free: q.Free(), InFlight: q.InFlight(), BadIDs: q.BadIDs(), Overruns: q.Overruns()}
}
