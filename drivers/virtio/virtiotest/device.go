package virtiotest

import (
	"fmt"
	"sync"
)

// Status bits (virtio-v1.2 §2.1), feature bits (§5.1.3) and the header size,
// repeated here from package virtio, which this one does not import.
const (
	statusDriver     = 2
	statusDriverOK   = 4
	statusFeaturesOK = 8

	// FeatureMAC is VIRTIO_NET_F_MAC (virtio-v1.2 §5.1.3).
	FeatureMAC = 1 << 5
	// FeatureMTU is VIRTIO_NET_F_MTU: the configuration holds MTU
	// (§5.1.4). Not offered by default; SetMTU offers it.
	FeatureMTU = 1 << 3
	// FeatureVersion1 is VIRTIO_F_VERSION_1.
	FeatureVersion1 = 1 << 32
	// The transmit offloads (§5.1.6.2), offered by default: the device
	// completes checksums (CSUM) and cuts TCP/IPv4 frames into segments
	// (HOST_TSO4) before it hands frames on (see finish).
	FeatureCsum     = 1 << 0
	FeatureHostTSO4 = 1 << 11
	// The receive offloads (§5.1.3, §5.1.6.3, §5.1.6.4), offered by
	// default: with MRG_RXBUF negotiated, Inject spreads a frame over as
	// many receive buffers as it takes and says how many in num_buffers;
	// InjectHdr writes the flags and gso_type the test asks for.
	FeatureGuestCsum = 1 << 1
	FeatureGuestTSO4 = 1 << 7
	FeatureMrgRxbuf  = 1 << 15

	netHdrSize   = 12 // struct virtio_net_hdr (§5.1.6)
	etherHdrSize = 14 // what the mtu does not count (§5.1.4.2)
)

// Device simulates a modern virtio-mmio network device (virtio-v1.2
// §4.2, §5.1). It implements the driver's Regs interface; a notify on the
// transmit queue consumes the avail ring at once (unless HoldTX), and
// Inject delivers a frame into a posted receive buffer.
//
// Configure the exported fields before the driver starts.
type Device struct {
	Mem *Memory

	MAC         [6]byte
	Features    uint64 // offered feature bits
	QueueNumMax uint32
	// MTU is virtio_net_config.mtu (§5.1.4), read whether or not
	// FeatureMTU is offered. With FeatureMTU negotiated, a frame the
	// driver sends larger than MTU and an Ethernet header, unsegmented
	// or as segments, is a protocol error (§5.1.4.2).
	MTU uint16

	// IRQ gets a token (non-blocking send, buffered 1) whenever the device
	// raises its interrupt; see ServeIRQ.
	IRQ chan struct{}

	// OnTransmit, if set, receives each transmitted frame (a copy, called
	// without locks held); otherwise frames are kept for Transmitted.
	OnTransmit func(frame []byte)

	// HoldTX makes the device leave transmit buffers pending until
	// CompleteTX.
	HoldTX bool
	// ReverseTX makes the device return the transmit chains it takes in
	// one go in reverse order: used entries need not follow the avail
	// ring (§2.7.8), and a driver must free each by its id.
	ReverseTX bool
	// NoNotify sets VIRTQ_USED_F_NO_NOTIFY in the used rings (§2.7.10).
	NoNotify bool
	// Backlog is how many frames that found no receive buffers the
	// device holds, in order, until the driver posts buffers, as QEMU's
	// backend queue does (Wire sets 1024); 0 drops them.
	Backlog int
	backlog [][]byte

	mu          sync.Mutex
	status      uint32
	statusLog   []uint32
	devFeatSel  uint32
	drvFeatSel  uint32
	drvFeatures uint64
	queueSel    uint32
	q           [2]queue
	isr         uint32
	frames      [][]byte
	notifies    [2]int
	rxDropped   uint64
	errs        []string
	usedID      func(q int, head uint32) uint32
	tsoFrames   uint64 // frames cut into segments (HOST_TSO4)
	csumFrames  uint64 // frames whose checksum it completed (CSUM)
}

type queue struct {
	num                  uint32
	ready                bool
	desc, driver, device uint64
	lastAvail            uint16
	usedIdx              uint16
}

// NewDevice returns a device with MAC mac offering VERSION_1, MAC, the
// transmit offloads CSUM and HOST_TSO4 and the receive offloads
// GUEST_CSUM, GUEST_TSO4 and MRG_RXBUF, QueueNumMax 256, on mem.
func NewDevice(mem *Memory, mac [6]byte) *Device {
	return &Device{
		Mem:         mem,
		MAC:         mac,
		Features:    FeatureVersion1 | FeatureMAC | FeatureCsum | FeatureHostTSO4 | FeatureGuestCsum | FeatureGuestTSO4 | FeatureMrgRxbuf,
		QueueNumMax: 256,
		IRQ:         make(chan struct{}, 1),
	}
}

func (d *Device) errorf(format string, args ...any) {
	d.errs = append(d.errs, fmt.Sprintf(format, args...))
}

// Errors returns the protocol violations the device has seen.
func (d *Device) Errors() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.errs...)
}

// StatusLog returns every value written to the Status register.
func (d *Device) StatusLog() []uint32 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]uint32(nil), d.statusLog...)
}

// DriverFeatures returns the features the driver accepted.
func (d *Device) DriverFeatures() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.drvFeatures
}

// Notifies returns how many notifications queue q got.
func (d *Device) Notifies(q int) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.notifies[q]
}

// RxDropped returns how many injected frames found no receive buffer.
func (d *Device) RxDropped() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.rxDropped
}

// QueueNum returns the size the driver chose for queue q.
func (d *Device) QueueNum(q int) uint32 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.q[q].num
}

// Transmitted returns and forgets the frames transmitted so far (when
// OnTransmit is nil).
func (d *Device) Transmitted() [][]byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	f := d.frames
	d.frames = nil
	return f
}

// Offloaded returns how many transmitted frames the device cut into
// segments and how many it completed the checksum of.
func (d *Device) Offloaded() (tso, csum uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.tsoFrames, d.csumFrames
}

// SetInterrupt raises interrupt status bits, as the device would.
func (d *Device) SetInterrupt(bits uint32) {
	d.mu.Lock()
	d.isr |= bits
	d.mu.Unlock()
	d.raise()
}

// raise signals IRQ (non-blocking: one token is enough to wake ServeIRQ).
func (d *Device) raise() {
	select {
	case d.IRQ <- struct{}{}:
	default:
	}
}

// RaiseSpurious signals IRQ without any InterruptStatus bit set.
func (d *Device) RaiseSpurious() { d.raise() }

// SetUsedID makes the device misbehave on purpose (nil: stop): f maps
// the head of each chain it consumes on queue q to the id it writes in
// the used entry (virtio-v1.2 §2.7.8). A driver given an id it did not
// post must neither free the wrong buffer nor lose the real one.
func (d *Device) SetUsedID(f func(q int, head uint32) uint32) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.usedID = f
}

// JumpUsed makes the device misbehave on purpose: it advances queue q's
// used.idx by n without writing used entries, and interrupts, so that a
// driver that believes it reads the previous lap's stale entries again.
func (d *Device) JumpUsed(q int, n uint16) {
	d.mu.Lock()
	d.q[q].usedIdx += n
	d.publishUsed(&d.q[q])
	d.isr |= 1
	d.mu.Unlock()
	d.raise()
}

// ServeIRQ calls handle for every interrupt d raises, from one goroutine,
// like a kernel's interrupt service goroutine, until stop is called.
func ServeIRQ(d *Device, handle func()) (stop func()) {
	done := make(chan struct{})
	exited := make(chan struct{})

	go func() {
		defer close(exited)
		for {
			select {
			case <-d.IRQ:
				handle()
			case <-done:
				return
			}
		}
	}()

	return func() {
		close(done)
		<-exited
	}
}

// SetMTU offers VIRTIO_NET_F_MTU with mtu in the configuration, as
// QEMU's virtio-net-device,host_mtu=MTU does.
func (d *Device) SetMTU(mtu uint16) {
	d.MTU = mtu
	d.Features |= FeatureMTU
}

// Wire connects two devices back to back: what one transmits, the other
// receives (or drops, lacking a buffer).
func Wire(a, b *Device) {
	a.Backlog, b.Backlog = 1024, 1024
	a.OnTransmit = func(f []byte) { b.Inject(f) }
	b.OnTransmit = func(f []byte) { a.Inject(f) }
}
