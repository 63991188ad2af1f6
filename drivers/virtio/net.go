package virtio

import (
	"errors"
	"sync"
	"sync/atomic"
)

// virtio-net parameters (virtio-v1.2 §5.1).
const (
	rxQueue = 0 // receiveq1 (§5.1.2)
	txQueue = 1 // transmitq1

	// NetHdrSize is the size of struct virtio_net_hdr when
	// VIRTIO_F_VERSION_1 is negotiated (§5.1.6); it precedes every frame.
	NetHdrSize = 12

	// MaxFrameSize is the largest Ethernet frame (no FCS) a buffer holds:
	// 1514 plus room for a VLAN tag and slack, as §5.1.6.3.1 asks of
	// drivers without mergeable buffers or offloads.
	MaxFrameSize = 1526

	// MaxRxFrameSize is the largest frame received with GUEST_TSO4: a
	// 64 KiB IPv4 packet behind an Ethernet header and a VLAN tag.
	MaxRxFrameSize = 14 + 4 + 65535

	// MaxTxFrameSize is the largest frame sent with HOST_TSO4: a 64 KiB
	// IPv4 packet behind an Ethernet header.
	MaxTxFrameSize = 14 + 65535

	// bigTxSlots large transmit buffers serve TSO frames: 1 MiB, and as
	// many 64 KiB segments in flight as a 1 MiB window holds.
	bigTxSlots  = 16
	bigTxStride = 65600 // NetHdrSize+MaxTxFrameSize rounded up to cache lines

	// mrgBufSize is the size of a receive buffer with MRG_RXBUF: a page,
	// so that a 64 KiB segment takes 17 of them.
	mrgBufSize = 4096

	// MTU is the largest IP MTU the driver's buffers carry (MaxFrameSize
	// less the Ethernet header and slack), and the MTU of a device that
	// does not offer VIRTIO_NET_F_MTU.
	MTU = 1500

	// MinMTU is the smallest mtu a device may offer (virtio-v1.2
	// §5.1.4.1; IPv4's minimum, RFC 791).
	MinMTU = 68

	// etherHdrSize is the Ethernet header that the device's mtu does not
	// count (§5.1.4.2: "mtu (plus low level ethernet header length)").
	etherHdrSize = 14

	// DefaultQueueSize caps the queue size when Net.QueueSize is 0.
	DefaultQueueSize = 256

	bufStride = 1600 // NetHdrSize+MaxFrameSize rounded up to cache lines

	resetSpins = 1 << 20
)

var (
	// ErrClosed is returned by ReceiveFunc and the transmit methods
	// after Close.
	ErrClosed = errors.New("virtio: device closed")
	// ErrTxFull means no transmit descriptor was free: the frame was
	// dropped (and counted in Stats.TxDrops).
	ErrTxFull = errors.New("virtio: transmit queue full")
	// ErrFrameSize means the frame is larger than MaxFrameSize, or the
	// device's mtu and an Ethernet header (or, with segmentation,
	// MaxTxFrameSize).
	ErrFrameSize = errors.New("virtio: frame too large")
	// ErrOffload means TransmitOffload asked for what the device does
	// not do, or gave offsets outside the frame.
	ErrOffload = errors.New("virtio: bad transmit offload")
)

// Net is a virtio network device (virtio-v1.2 §5.1) on a modern
// virtio-mmio transport. Set Regs and Mem, then call Init (init.go).
// Frames come in through ReceiveFunc (rx.go) and go out through
// TransmitParts and TransmitOffload (tx.go).
//
// ReceiveFunc is meant for one goroutine (the link endpoint's RX loop),
// the transmit methods may be called concurrently, HandleInterrupt runs
// from the interrupt service goroutine.
type Net struct {
	// Regs is the device's register window.
	Regs Regs
	// Mem provides DMA memory for rings and buffers.
	Mem Memory
	// QueueSize caps the size of each queue (0: DefaultQueueSize); the
	// device's QueueNumMax caps it too.
	QueueSize int
	// Decline are offloads not to take though the device offers them,
	// to measure one at a time or to work around a device; one that
	// needs a declined one goes too (see wantFeatures). With
	// AllOffloads every frame fits one 1526-byte buffer and carries no
	// checksum promise.
	Decline Offloads

	mac      [6]byte
	features uint64
	// mtu is the device's mtu with VIRTIO_NET_F_MTU, 0 without; maxTx
	// is the largest frame sent without segmentation: mtu plus the
	// Ethernet header, or MaxFrameSize.
	mtu, maxTx int

	rx struct {
		sync.Mutex
		q    *Queue
		ring ring
		// the frame being handed on: its parts, and the slots they are in
		parts [][]byte
		held  []int
	}

	tx struct {
		sync.Mutex
		q       *Queue
		ring    ring
		free    []int // free buffer slots
		big     ring  // with HOST_TSO4: bigTxSlots 64 KiB buffers
		bigFree []int // free big slots; their descriptors' slot is ^i
	}

	rxReady chan struct{} // signalled by HandleInterrupt
	done    chan struct{} // closed by Close
	closed  atomic.Bool
	once    sync.Once

	// needReset is set when a queue broke (see Queue.Used); the
	// receiving goroutine then resets the device. failed holds why the
	// device did not come back (rx and tx locked to write, either to
	// read).
	needReset atomic.Bool
	failed    error

	stats counters
}

// ring holds one queue's packet buffers: slot i at addr+i*stride, size
// bytes long.
type ring struct {
	addr         uint64
	buf          []byte
	stride, size int
	slot         []int // buffer slot by descriptor head
}

func (r *ring) init(mem Memory, n, stride, size int) (err error) {
	r.stride, r.size = stride, size
	r.addr, r.buf, err = allocDirty(mem, n*stride, 64)
	r.slot = make([]int, n)
	return
}

func (r *ring) bufAddr(i int) uint64 { return r.addr + uint64(i*r.stride) }
func (r *ring) bytes(i int) []byte   { return r.buf[i*r.stride:][:r.size] }

// MAC returns the device's MAC address.
func (n *Net) MAC() [6]byte { return n.mac }

// MTU returns the IP MTU: the device's, when it offered
// VIRTIO_NET_F_MTU with a value the buffers carry (68 to 1500; see
// negotiate), else 1500.
func (n *Net) MTU() int {
	if n.mtu != 0 {
		return n.mtu
	}
	return MTU
}

// Offloads returns the offloads negotiated with the device, as
// /net/virtio lists them.
func (n *Net) Offloads() Offloads { return offloadsOf(n.features) }

// HandleInterrupt acknowledges the device interrupt (virtio-v1.2 §4.2.2,
// InterruptStatus / InterruptACK) and wakes ReceiveFunc. It never blocks
// and takes no locks; an interrupt without a cause is counted as
// spurious.
func (n *Net) HandleInterrupt() {
	s := n.Regs.Read32(RegInterruptStatus)

	if s == 0 {
		n.stats.spurious.Add(1)
		return
	}

	n.Regs.Write32(RegInterruptACK, s)
	n.stats.interrupts.Add(1)

	if s&IntConfigChange != 0 {
		n.stats.configChanges.Add(1)
	}

	if s&IntUsedBuffer != 0 {
		n.wake()
	}
}

// wake makes the receiving goroutine look at the device again.
func (n *Net) wake() {
	select {
	case n.rxReady <- struct{}{}:
	default:
	}
}

// Close resets the device, so that it stops using the rings, and makes
// ReceiveFunc and the transmit methods return ErrClosed.
func (n *Net) Close() error {
	n.once.Do(func() {
		n.closed.Store(true)
		if n.done != nil {
			close(n.done)
		}
		// under both locks: a reset in progress (recover) does not
		// bring the device back to life after this
		n.rx.Lock()
		n.tx.Lock()
		n.Regs.Write32(RegStatus, 0)
		n.tx.Unlock()
		n.rx.Unlock()
	})
	return nil
}
