package virtio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
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

	// MTU is the IP MTU the device carries.
	MTU = 1500

	// DefaultQueueSize caps the queue size when Net.QueueSize is 0.
	DefaultQueueSize = 256

	bufStride = 1600 // NetHdrSize+MaxFrameSize rounded up to cache lines

	resetSpins = 1 << 20
)

var (
	// ErrClosed is returned by Receive and Transmit after Close.
	ErrClosed = errors.New("virtio: device closed")
	// ErrTxFull means no transmit descriptor was free: the frame was
	// dropped (and counted in Stats.TxDrops).
	ErrTxFull = errors.New("virtio: transmit queue full")
	// ErrFrameSize means the frame is larger than MaxFrameSize (or, with
	// segmentation, MaxTxFrameSize).
	ErrFrameSize = errors.New("virtio: frame too large")
	// ErrOffload means TransmitOffload asked for what the device does
	// not do, or gave offsets outside the frame.
	ErrOffload = errors.New("virtio: bad transmit offload")
)

// Net is a virtio network device (virtio-v1.2 §5.1) on a modern
// virtio-mmio transport. Set Regs and Mem, then call Init.
//
// Receive is meant for one goroutine (the link endpoint's RX loop),
// Transmit may be called concurrently, HandleInterrupt runs from the
// interrupt service goroutine.
type Net struct {
	// Regs is the device's register window.
	Regs Regs
	// Mem provides DMA memory for rings and buffers.
	Mem Memory
	// QueueSize caps the size of each queue (0: DefaultQueueSize); the
	// device's QueueNumMax caps it too.
	QueueSize int
	// NoOffload declines every offload (CSUM, HOST_TSO4, GUEST_CSUM,
	// GUEST_TSO4, MRG_RXBUF) even when the device offers them: every
	// frame then fits one 1526-byte buffer and carries no checksum
	// promise.
	NoOffload bool
	// Decline are offload feature bits (FeatureNetCsum...) not to take
	// though the device offers them, to measure one offload at a time;
	// one that needs a declined one goes too (see wantFeatures).
	Decline uint64

	mac      [6]byte
	features uint64

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

func (r *ring) bufAddr(i int) uint64 { return r.addr + uint64(i*r.stride) }
func (r *ring) bytes(i int) []byte   { return r.buf[i*r.stride:][:r.size] }

type counters struct {
	rxPackets, rxBytes, rxDrops, rxErrors atomic.Uint64
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
	RxDrops            uint64 // frames discarded by the driver (short buffer)
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

// Init resets and initializes the device (virtio-v1.2 §3.1.1, §4.2.3,
// §5.1.5): it negotiates VIRTIO_F_VERSION_1, VIRTIO_NET_F_MAC and, unless
// NoOffload, the receive offloads (see wantFeatures), sets up receiveq1
// and transmitq1, fills the receive queue and sets DRIVER_OK.
func (n *Net) Init() (err error) {
	r := n.Regs

	if r == nil || n.Mem == nil {
		return errors.New("virtio: Net needs Regs and Mem")
	}
	if v := r.Read32(RegMagic); v != MagicValue {
		return fmt.Errorf("virtio: bad magic %#x", v)
	}
	if v := r.Read32(RegVersion); v != VersionValue {
		return fmt.Errorf("virtio: mmio version %d, want 2 (use virtio-mmio.force-legacy=false)", v)
	}
	if v := r.Read32(RegDeviceID); v != DeviceIDNet {
		return fmt.Errorf("virtio: device id %d is not a network card", v)
	}

	status, err := n.negotiate()
	defer n.failOn(&err, &status)
	if err != nil {
		return err
	}

	// (7) device-specific setup
	if n.rx.q, err = n.setupQueue(rxQueue); err != nil {
		return
	}
	if n.tx.q, err = n.setupQueue(txQueue); err != nil {
		return
	}
	// Sent buffers are reaped by the next Transmit: their completions
	// need no interrupt (the status bit is shared with receive).
	n.tx.q.SuppressInterrupts()
	rxStride, rxSize := bufStride, NetHdrSize+MaxFrameSize
	if n.features&FeatureNetMrgRxbuf != 0 {
		rxStride, rxSize = mrgBufSize, mrgBufSize
	}
	if err = n.rx.ring.init(n.Mem, n.rx.q.Size(), rxStride, rxSize); err != nil {
		return
	}
	if err = n.tx.ring.init(n.Mem, n.tx.q.Size(), bufStride, NetHdrSize+MaxFrameSize); err != nil {
		return
	}
	n.tx.free = make([]int, 0, n.tx.q.Size())
	if n.features&FeatureNetHostTSO4 != 0 {
		if err = n.tx.big.init(n.Mem, bigTxSlots, bigTxStride, NetHdrSize+MaxTxFrameSize); err != nil {
			return
		}
		n.tx.bigFree = make([]int, 0, bigTxSlots)
	}

	n.readMAC()

	n.rxReady = make(chan struct{}, 1)
	n.done = make(chan struct{})

	n.start(status)

	return nil
}

// negotiate performs steps 1 to 6 of device initialization (virtio-v1.2
// §3.1.1): reset, ACKNOWLEDGE, DRIVER, features, FEATURES_OK. It returns
// the status written so far; the negotiated features go to n.features on
// the first call and must come out the same on later ones.
func (n *Net) negotiate() (status uint32, err error) {
	r := n.Regs

	// (1): reset, and wait for it to complete (§4.2.3.1.1)
	r.Write32(RegStatus, 0)
	for i := 0; r.Read32(RegStatus) != 0; i++ {
		if i == resetSpins {
			return 0, errors.New("virtio: device reset timed out")
		}
	}

	// (2), (3)
	status = StatusAcknowledge
	r.Write32(RegStatus, status)
	status |= StatusDriver
	r.Write32(RegStatus, status)

	// (4) read features, write the subset we understand (§4.2.2)
	var offered uint64
	for sel := uint32(0); sel < 2; sel++ {
		r.Write32(RegDeviceFeaturesSel, sel)
		offered |= uint64(r.Read32(RegDeviceFeatures)) << (32 * sel)
	}
	if offered&FeatureVersion1 == 0 {
		return status, errors.New("virtio: device does not offer VIRTIO_F_VERSION_1")
	}
	// The receive queue's size decides GUEST_TSO4, so the device's limit
	// on it is read before the features are fixed (step 7 reads it
	// again). A restart keeps its rings: program checks that they fit.
	var rxBufs int
	if n.rx.q != nil {
		rxBufs = n.rx.q.Size()
	} else {
		r.Write32(RegQueueSel, rxQueue)
		rxBufs = n.queueSize(r.Read32(RegQueueNumMax))
	}
	decline := n.Decline
	if n.NoOffload {
		decline = ^uint64(0)
	}
	features := wantFeatures(offered, decline, rxBufs)
	if n.features != 0 && features != n.features {
		return status, fmt.Errorf("virtio: device now offers features %#x, had %#x", features, n.features)
	}
	n.features = features
	for sel := uint32(0); sel < 2; sel++ {
		r.Write32(RegDriverFeaturesSel, sel)
		r.Write32(RegDriverFeatures, uint32(n.features>>(32*sel)))
	}

	// (5), (6)
	status |= StatusFeaturesOK
	r.Write32(RegStatus, status)
	if r.Read32(RegStatus)&StatusFeaturesOK == 0 {
		return status, errors.New("virtio: device rejected features")
	}

	return status, nil
}

// wantFeatures is the subset of offered the driver takes. The receive
// offloads go together: GUEST_TSO4 needs GUEST_CSUM (§5.1.3.1) and, with
// page-sized buffers, MRG_RXBUF to hold 64 KiB segments; MRG_RXBUF alone
// is taken too (it costs nothing). So do the transmit ones: HOST_TSO4
// needs CSUM.
//
// A receive queue of rxBufs pages that cannot hold a 64 KiB segment
// takes no GUEST_TSO4: the device would wait for room that never comes
// (QEMU holds a frame until the buffers for all of it are posted).
// Offloads in decline are not taken, nor those that need them.
func wantFeatures(offered, decline uint64, rxBufs int) uint64 {
	want := uint64(FeatureVersion1|FeatureNetMAC) |
		(FeatureNetGuestCsum|FeatureNetMrgRxbuf|FeatureNetCsum)&^decline
	got := offered & want
	if got&(FeatureNetGuestCsum|FeatureNetMrgRxbuf) == FeatureNetGuestCsum|FeatureNetMrgRxbuf &&
		rxBufs*mrgBufSize >= NetHdrSize+MaxRxFrameSize {
		want |= FeatureNetGuestTSO4 &^ decline
	}
	if got&FeatureNetCsum != 0 {
		want |= FeatureNetHostTSO4 &^ decline // needs CSUM (§5.1.3.1)
	}
	return offered & want
}

// maxRxFrame is the largest frame the device may deliver.
func (n *Net) maxRxFrame() int {
	if n.features&FeatureNetGuestTSO4 != 0 {
		return MaxRxFrameSize
	}
	return MaxFrameSize
}

// failOn tells the device that the driver gave up (FAILED, §2.1) if
// *err is set.
func (n *Net) failOn(err *error, status *uint32) {
	if *err != nil && *status != 0 {
		n.Regs.Write32(RegStatus, *status|StatusFailed)
	}
}

// start hands every receive buffer to the device, frees every transmit
// buffer and sets DRIVER_OK (§3.1.1 step 8); the queues are empty.
func (n *Net) start(status uint32) {
	n.tx.free = n.tx.free[:0]
	for i := 0; i < n.tx.q.Size(); i++ {
		n.tx.free = append(n.tx.free, i)
	}
	n.tx.bigFree = n.tx.bigFree[:0]
	for i := range len(n.tx.big.slot) {
		n.tx.bigFree = append(n.tx.bigFree, i)
	}

	// no notifications before DRIVER_OK (§3.1.1)
	for i := 0; i < n.rx.q.Size(); i++ {
		n.postRx(i)
	}

	n.Regs.Write32(RegStatus, status|StatusDriverOK)
	n.Regs.Write32(RegQueueNotify, rxQueue)
}

// restart resets a device that broke a queue's contract and brings it up
// again on the same rings and buffers: a reset takes back every buffer
// the device held (§2.4), so none is lost to a bogus used entry. rx and
// tx must be locked.
func (n *Net) restart() (err error) {
	status, err := n.negotiate()
	defer n.failOn(&err, &status)
	if err != nil {
		return err
	}

	for _, q := range []struct {
		index uint32
		q     *Queue
	}{{rxQueue, n.rx.q}, {txQueue, n.tx.q}} {
		q.q.Reset()
		if err = n.program(q.index, q.q); err != nil {
			return err
		}
	}

	n.start(status)

	return nil
}

// setupQueue performs virtqueue configuration (virtio-v1.2 §4.2.3.2).
func (n *Net) setupQueue(index uint32) (*Queue, error) {
	r := n.Regs
	r.Write32(RegQueueSel, index)

	size := n.queueSize(r.Read32(RegQueueNumMax))
	if size == 0 {
		return nil, fmt.Errorf("virtio: queue %d not available", index)
	}

	q, err := NewQueue(n.Mem, size)
	if err != nil {
		return nil, err
	}

	return q, n.program(index, q)
}

// queueSize is the size of a queue whose QueueNumMax is numMax: the
// largest power of 2 (§2.7) within numMax, QueueSize and MaxQueueSize;
// 0 if the queue is not available.
func (n *Net) queueSize(numMax uint32) int {
	limit := n.QueueSize
	if limit <= 0 {
		limit = DefaultQueueSize
	}
	size := min(int(numMax), limit, MaxQueueSize)
	for size&(size-1) != 0 {
		size &= size - 1
	}
	return size
}

// program tells the device where queue index's rings are and enables
// it (§4.2.3.2).
func (n *Net) program(index uint32, q *Queue) error {
	r := n.Regs
	r.Write32(RegQueueSel, index)

	if r.Read32(RegQueueReady) != 0 {
		return fmt.Errorf("virtio: queue %d already in use", index)
	}
	if max := r.Read32(RegQueueNumMax); uint32(q.Size()) > max {
		return fmt.Errorf("virtio: queue %d holds %d descriptors, device now takes %d", index, q.Size(), max)
	}

	desc, driver, device := q.Addrs()
	r.Write32(RegQueueNum, uint32(q.Size()))
	r.Write32(RegQueueDescLow, uint32(desc))
	r.Write32(RegQueueDescHigh, uint32(desc>>32))
	r.Write32(RegQueueDriverLow, uint32(driver))
	r.Write32(RegQueueDriverHigh, uint32(driver>>32))
	r.Write32(RegQueueDeviceLow, uint32(device))
	r.Write32(RegQueueDeviceHigh, uint32(device>>32))
	r.Write32(RegQueueReady, 1)

	return nil
}

func (b *ring) init(mem Memory, n, stride, size int) (err error) {
	b.stride, b.size = stride, size
	b.addr, b.buf, err = alloc(mem, n*stride, 64)
	b.slot = make([]int, n)
	return
}

// readMAC reads struct virtio_net_config.mac (virtio-v1.2 §5.1.4), retrying
// on a configuration generation change (§4.2.2.2, §2.5.1).
func (n *Net) readMAC() {
	if n.features&FeatureNetMAC == 0 {
		// §5.1.5: no MAC offered, make up a locally administered one
		v := rand.Uint64()
		for i := range n.mac {
			n.mac[i] = byte(v >> (8 * i))
		}
		n.mac[0] = n.mac[0]&^1 | 2
		return
	}

	r := n.Regs

	for {
		gen := r.Read32(RegConfigGeneration)

		if br, ok := r.(ByteReader); ok {
			for i := range n.mac {
				n.mac[i] = br.Read8(RegConfig + uint32(i))
			}
		} else {
			lo, hi := r.Read32(RegConfig), r.Read32(RegConfig+4)
			n.mac = [6]byte{byte(lo), byte(lo >> 8), byte(lo >> 16), byte(lo >> 24), byte(hi), byte(hi >> 8)}
		}

		if r.Read32(RegConfigGeneration) == gen {
			return
		}
	}
}

// MAC returns the device's MAC address.
func (n *Net) MAC() [6]byte { return n.mac }

// MTU returns the IP MTU.
func (n *Net) MTU() int { return MTU }

// Features returns the negotiated feature bits.
func (n *Net) Features() uint64 { return n.features }

// postRx makes receive buffer slot i available to the device; rx must be
// locked (or not yet shared).
func (n *Net) postRx(i int) {
	head, ok := n.rx.q.Add(Buffer{Addr: n.rx.ring.bufAddr(i), Len: uint32(n.rx.ring.size), Writable: true})
	if !ok {
		panic("virtio: no free rx descriptor") // one descriptor per slot
	}
	n.rx.ring.slot[head] = i
}

// Receive copies the next received frame (without virtio_net_hdr) into
// buf and returns its length. It blocks until a frame arrives or Close
// is called (ErrClosed). A frame longer than buf is truncated, counted
// as dropped and reported with io.ErrShortBuffer.
func (n *Net) Receive(buf []byte) (size int, err error) {
	short := false
	err = n.wait(nil, func(parts [][]byte, _ bool) bool {
		size = 0
		for _, p := range parts {
			k := copy(buf[size:], p)
			size += k
			short = short || k < len(p)
		}
		return !short
	})
	if err == nil && short {
		err = io.ErrShortBuffer
	}
	return
}

// ReceiveFunc waits for the next received frame, like Receive, and hands
// it to use in place: frame is the device's buffers (one, or with
// MRG_RXBUF as many as the frame took), valid only until use returns,
// after which they go back to the device. It saves a copy on the
// receive path (the link endpoint copies straight into the stack's
// buffers).
func (n *Net) ReceiveFunc(use func(frame [][]byte, checksumOK bool)) error {
	return n.wait(use, nil)
}

// wait blocks until receive has handed a frame to use, or, if use is
// nil, to take.
func (n *Net) wait(use func([][]byte, bool), take func([][]byte, bool) bool) error {
	for {
		if n.closed.Load() {
			return ErrClosed
		}

		if n.needReset.Load() {
			if err := n.recover(); err != nil {
				return err
			}
		}

		if n.receive(use, take) {
			return nil
		}
		if n.needReset.Load() {
			continue
		}

		// HandleInterrupt signals after acknowledging, so a frame used
		// after receive looked leaves a token here: no lost wakeups.
		select {
		case <-n.rxReady:
		case <-n.done:
		}
	}
}

// receive hands the next received frame to use (or take) and reposts
// its buffers, reporting whether there was one. A frame take refuses (it
// did not fit) counts as dropped; a malformed one (bad length, a
// num_buffers the used ring does not hold, an offload not negotiated) is
// counted as an error and never handed on.
func (n *Net) receive(use func([][]byte, bool), take func([][]byte, bool) bool) bool {
	n.rx.Lock()
	defer n.rx.Unlock()

	for {
		head, length, ok := n.rx.q.Used()
		if !ok {
			if n.rx.q.Broken() {
				n.needReset.Store(true)
			}
			return false
		}

		parts, csumOK, ok := n.rxFrame(n.rx.ring.slot[head], int(length))
		if !ok {
			n.stats.rxErrors.Add(1)
			n.repostRx()
			if n.needReset.Load() {
				return false // the reset takes back what is left
			}
			continue
		}
		if use != nil {
			use(parts, csumOK)
		}
		if use != nil || take(parts, csumOK) {
			size := 0
			for _, p := range parts {
				size += len(p)
			}
			n.stats.rxPackets.Add(1)
			n.stats.rxBytes.Add(uint64(size))
		} else {
			n.stats.rxDrops.Add(1)
		}
		n.repostRx()

		return true
	}
}

// rxFrame reads the frame whose first buffer is slot i, length bytes of
// it used; with MRG_RXBUF the rest of it is in the next num_buffers-1
// used buffers, which it takes too. The frame comes back in parts, views
// of the buffers (no copy), whose slots are in n.rx.held for repostRx
// once the frame is used. ok is false for a malformed frame.
func (n *Net) rxFrame(i, length int) (parts [][]byte, csumOK, ok bool) {
	n.rx.held = append(n.rx.held[:0], i)
	b := n.rx.ring.bytes(i)
	if length < NetHdrSize || length > len(b) {
		return nil, false, false
	}
	hdr := b[:NetHdrSize]
	parts = append(n.rx.parts[:0], b[NetHdrSize:length])
	n.rx.parts = parts
	if n.features&FeatureNetGuestCsum != 0 {
		csumOK = hdr[netHdrFlagsOff]&(NetHdrFNeedsCsum|NetHdrFDataValid) != 0
	}
	gso := hdr[netHdrGSOTypeOff] &^ NetHdrGSOECN
	bad := gso != NetHdrGSONone && (gso != NetHdrGSOTCPv4 || n.features&FeatureNetGuestTSO4 == 0)
	if n.features&FeatureNetMrgRxbuf == 0 {
		return parts, csumOK, !bad
	}
	more := int(binary.LittleEndian.Uint16(hdr[netHdrNumBuffersOff:])) - 1
	if more < 0 || more >= n.rx.q.Size() {
		// Where the next frame starts is lost: a broken queue.
		n.needReset.Store(true)
		return nil, false, false
	}
	size := length - NetHdrSize
	for range more {
		head, l, ok := n.rx.q.Used()
		if !ok {
			// The device published a frame's first buffer without the
			// rest (§5.1.6.4.2 has them used together): a broken queue.
			n.needReset.Store(true)
			return nil, false, false
		}
		j := n.rx.ring.slot[head]
		n.rx.held = append(n.rx.held, j)
		c := n.rx.ring.bytes(j)
		size += int(l)
		if int(l) > len(c) || size > n.maxRxFrame() {
			bad = true
		} else {
			parts = append(parts, c[:l])
		}
	}
	n.rx.parts = parts
	return parts, csumOK, !bad
}

// repostRx gives the buffers of the last frame (n.rx.held) back to the
// device and notifies it if it wants to know.
func (n *Net) repostRx() {
	for _, i := range n.rx.held {
		n.postRx(i)
	}
	n.rx.held = n.rx.held[:0]
	if n.rx.q.NeedNotify() {
		n.Regs.Write32(RegQueueNotify, rxQueue)
	}
}

// refillRx reposts receive slot i and notifies the device if it wants
// to know of it (and of any buffer posted before it).
func (n *Net) refillRx(i int) {
	n.postRx(i)

	if n.rx.q.NeedNotify() {
		n.Regs.Write32(RegQueueNotify, rxQueue)
	}
}

// Transmit copies frame, a complete Ethernet frame without FCS, into a
// transmit buffer and hands it to the device. Completed buffers are
// reclaimed first; if none is free the frame is dropped with ErrTxFull.
func (n *Net) Transmit(frame []byte) error {
	return n.TransmitParts([][]byte{frame})
}

// TransmitParts is Transmit for a frame given in pieces (headers and
// payload, as a network stack holds them): they are copied straight into
// the device's buffer, with no gathering copy before.
func (n *Net) TransmitParts(parts [][]byte) error {
	return n.transmit(parts, txHdr{})
}

// txHdr is what the driver asks of the device for one frame: the
// virtio_net_hdr fields of §5.1.6.2.
type txHdr struct {
	flags, gsoType                         uint8
	hdrLen, gsoSize, csumStart, csumOffset uint16
}

func (h txHdr) put(b []byte) {
	clear(b[:NetHdrSize])
	b[netHdrFlagsOff], b[netHdrGSOTypeOff] = h.flags, h.gsoType
	binary.LittleEndian.PutUint16(b[netHdrHdrLenOff:], h.hdrLen)
	binary.LittleEndian.PutUint16(b[netHdrGSOSizeOff:], h.gsoSize)
	binary.LittleEndian.PutUint16(b[netHdrCsumStartOff:], h.csumStart)
	binary.LittleEndian.PutUint16(b[netHdrCsumOffsetOff:], h.csumOffset)
}

// TxOffloads implements TxOffloader.
func (n *Net) TxOffloads() (csum, tso4 bool) {
	return n.features&FeatureNetCsum != 0, n.features&FeatureNetHostTSO4 != 0
}

// TransmitOffload implements TxOffloader.
func (n *Net) TransmitOffload(parts [][]byte, csumStart, csumOffset, hdrLen, mss int) error {
	size := 0
	for _, p := range parts {
		size += len(p)
	}
	csum, tso := n.TxOffloads()
	switch {
	case !csum || csumStart < 14 || csumOffset < 0 || csumStart+csumOffset+2 > size:
	case mss > 0 && (!tso || mss > 65535 || hdrLen <= csumStart || hdrLen > size):
	default:
		h := txHdr{flags: NetHdrFNeedsCsum, csumStart: uint16(csumStart), csumOffset: uint16(csumOffset)}
		if mss > 0 && size-hdrLen > mss {
			h.gsoType, h.gsoSize, h.hdrLen = NetHdrGSOTCPv4, uint16(mss), uint16(hdrLen)
		}
		return n.transmit(parts, h)
	}
	n.stats.txErrors.Add(1)
	return ErrOffload
}

func (n *Net) transmit(parts [][]byte, h txHdr) error {
	size := 0
	for _, p := range parts {
		size += len(p)
	}
	big := size > MaxFrameSize
	if big && (h.gsoType == NetHdrGSONone || size > MaxTxFrameSize) {
		n.stats.txErrors.Add(1)
		return ErrFrameSize
	}

	n.tx.Lock()
	defer n.tx.Unlock()

	if n.closed.Load() {
		n.stats.txErrors.Add(1)
		return ErrClosed
	}
	if n.failed != nil {
		n.stats.txErrors.Add(1)
		return n.failed
	}

	n.reclaimTx()

	r, free := &n.tx.ring, &n.tx.free
	if big {
		r, free = &n.tx.big, &n.tx.bigFree
	}
	if len(*free) == 0 {
		n.stats.txDrops.Add(1)
		return ErrTxFull
	}

	i := (*free)[len(*free)-1]
	b := r.bytes(i)
	h.put(b)
	off := NetHdrSize
	for _, p := range parts {
		off += copy(b[off:], p)
	}

	head, ok := n.tx.q.Add(Buffer{Addr: r.bufAddr(i), Len: uint32(NetHdrSize + size)})
	if !ok {
		n.stats.txDrops.Add(1)
		return ErrTxFull
	}

	*free = (*free)[:len(*free)-1]
	n.tx.ring.slot[head] = i
	if big {
		n.tx.ring.slot[head] = ^i
	}

	if n.tx.q.NeedNotify() {
		n.Regs.Write32(RegQueueNotify, txQueue)
	}

	n.stats.txPackets.Add(1)
	n.stats.txBytes.Add(uint64(size))

	return nil
}

// reclaimTx returns transmitted buffers to the free list; tx must be
// locked. A broken transmit queue is left to the receiving goroutine to
// reset (it takes rx before tx).
func (n *Net) reclaimTx() {
	for {
		head, _, ok := n.tx.q.Used()
		if !ok {
			break
		}
		if i := n.tx.ring.slot[head]; i >= 0 {
			n.tx.free = append(n.tx.free, i)
		} else {
			n.tx.bigFree = append(n.tx.bigFree, ^i)
		}
	}

	if n.tx.q.Broken() && !n.needReset.Swap(true) {
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

// recover resets the device after a queue broke (see restart). The
// device may misbehave again: each reset is counted; only a device that
// does not come back ends the driver, with an error from Receive and
// Transmit.
func (n *Net) recover() error {
	n.rx.Lock()
	defer n.rx.Unlock()
	n.tx.Lock()
	defer n.tx.Unlock()

	if n.closed.Load() {
		return ErrClosed
	}
	if n.failed != nil {
		return n.failed
	}
	if !n.needReset.Swap(false) {
		return nil
	}

	err := n.restart()
	n.stats.resets.Add(1) // after: a reader that sees it sees the device up

	if err != nil {
		n.failed = fmt.Errorf("virtio: the device broke its queues and failed to come back after a reset: %w", err)
		return n.failed
	}

	return nil
}

// HandleInterrupt acknowledges the device interrupt (virtio-v1.2 §4.2.2,
// InterruptStatus / InterruptACK) and wakes Receive. It never blocks and
// takes no locks; an interrupt without a cause is counted as spurious.
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

// Close resets the device, so that it stops using the rings, and makes
// Receive and Transmit return ErrClosed.
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

// Stats returns a snapshot of the counters and queue occupancy.
func (n *Net) Stats() (s Stats) {
	c := &n.stats
	s = Stats{
		RxPackets: c.rxPackets.Load(), RxBytes: c.rxBytes.Load(),
		RxDrops: c.rxDrops.Load(), RxErrors: c.rxErrors.Load(),
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
