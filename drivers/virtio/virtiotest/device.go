package virtiotest

import (
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
)

// Register offsets and values, repeated here from the virtio-mmio layout
// (virtio-v1.2 §4.2.2) so that this package does not import virtio.
const (
	regMagic             = 0x000
	regVersion           = 0x004
	regDeviceID          = 0x008
	regVendorID          = 0x00c
	regDeviceFeatures    = 0x010
	regDeviceFeaturesSel = 0x014
	regDriverFeatures    = 0x020
	regDriverFeaturesSel = 0x024
	regQueueSel          = 0x030
	regQueueNumMax       = 0x034
	regQueueNum          = 0x038
	regQueueReady        = 0x044
	regQueueNotify       = 0x050
	regInterruptStatus   = 0x060
	regInterruptACK      = 0x064
	regStatus            = 0x070
	regQueueDescLow      = 0x080
	regQueueDescHigh     = 0x084
	regQueueDriverLow    = 0x090
	regQueueDriverHigh   = 0x094
	regQueueDeviceLow    = 0x0a0
	regQueueDeviceHigh   = 0x0a4
	regConfigGeneration  = 0x0fc
	regConfig            = 0x100

	statusDriver     = 2
	statusDriverOK   = 4
	statusFeaturesOK = 8

	// FeatureMAC is VIRTIO_NET_F_MAC (virtio-v1.2 §5.1.3).
	FeatureMAC = 1 << 5
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

	netHdrSize = 12 // struct virtio_net_hdr (§5.1.6)
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
	rxDelivered uint64
	errs        []string
	usedID      func(q int, head uint32) uint32
	tsoFrames   uint64 // frames cut into segments (HOST_TSO4)
	csumFrames  uint64 // frames whose checksum it completed (CSUM)
}

// Offloaded returns how many transmitted frames the device cut into
// segments and how many it completed the checksum of.
func (d *Device) Offloaded() (tso, csum uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.tsoFrames, d.csumFrames
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

// SetInterrupt raises interrupt status bits, as the device would.
func (d *Device) SetInterrupt(bits uint32) {
	d.mu.Lock()
	d.isr |= bits
	d.mu.Unlock()
	d.raise()
}

// Raise signals IRQ without setting any status bit: a spurious interrupt.
func (d *Device) raise() {
	select {
	case d.IRQ <- struct{}{}:
	default:
	}
}

// RaiseSpurious signals IRQ without any InterruptStatus bit set.
func (d *Device) RaiseSpurious() { d.raise() }

// Read32 implements the driver's Regs.
func (d *Device) Read32(off uint32) uint32 {
	d.mu.Lock()
	defer d.mu.Unlock()

	switch off {
	case regMagic:
		return 0x74726976
	case regVersion:
		return 2
	case regDeviceID:
		return 1
	case regVendorID:
		return 0x554d4551
	case regDeviceFeatures:
		if d.devFeatSel > 1 {
			return 0
		}
		return uint32(d.Features >> (32 * d.devFeatSel))
	case regQueueNumMax:
		if d.queueSel > 1 {
			return 0
		}
		return d.QueueNumMax
	case regQueueReady:
		if d.queueSel > 1 {
			return 0
		}
		if d.q[d.queueSel].ready {
			return 1
		}
		return 0
	case regInterruptStatus:
		return d.isr
	case regStatus:
		return d.status
	case regConfigGeneration:
		return 0
	case regConfig, regConfig + 4:
		// struct virtio_net_config: mac[6], status (§5.1.4)
		var cfg [8]byte
		copy(cfg[:], d.MAC[:])
		return binary.LittleEndian.Uint32(cfg[off-regConfig:])
	}

	d.errorf("read of register %#x", off)
	return 0
}

// Write32 implements the driver's Regs.
func (d *Device) Write32(off uint32, v uint32) {
	d.mu.Lock()

	var frames [][]byte
	var irq bool

	switch off {
	case regDeviceFeaturesSel:
		d.devFeatSel = v
	case regDriverFeaturesSel:
		d.drvFeatSel = v
	case regDriverFeatures:
		if d.status&statusDriver == 0 || d.status&statusFeaturesOK != 0 {
			d.errorf("features written in status %#x", d.status)
		}
		if d.drvFeatSel <= 1 {
			sh := 32 * d.drvFeatSel
			d.drvFeatures = d.drvFeatures&^(0xffffffff<<sh) | uint64(v)<<sh
		}
	case regQueueSel:
		d.queueSel = v
	case regQueueNum, regQueueDescLow, regQueueDescHigh, regQueueDriverLow,
		regQueueDriverHigh, regQueueDeviceLow, regQueueDeviceHigh:
		d.writeQueue(off, v)
	case regQueueReady:
		d.setReady(v)
	case regQueueNotify:
		frames, irq = d.notify(v)
	case regInterruptACK:
		d.isr &^= v
	case regStatus:
		d.setStatus(v)
	default:
		d.errorf("write %#x to register %#x", v, off)
	}

	d.mu.Unlock()

	d.deliver(frames, irq)
}

func (d *Device) deliver(frames [][]byte, irq bool) {
	if irq {
		d.raise()
	}

	if d.OnTransmit == nil {
		return
	}

	for _, f := range frames {
		d.OnTransmit(f)
	}
}

func (d *Device) writeQueue(off, v uint32) {
	if d.queueSel > 1 {
		d.errorf("queue register %#x for missing queue %d", off, d.queueSel)
		return
	}

	q := &d.q[d.queueSel]

	if q.ready {
		d.errorf("queue %d register %#x written while ready", d.queueSel, off)
		return
	}

	lo := func(a *uint64) { *a = *a&^0xffffffff | uint64(v) }
	hi := func(a *uint64) { *a = *a&0xffffffff | uint64(v)<<32 }

	switch off {
	case regQueueNum:
		q.num = v
	case regQueueDescLow:
		lo(&q.desc)
	case regQueueDescHigh:
		hi(&q.desc)
	case regQueueDriverLow:
		lo(&q.driver)
	case regQueueDriverHigh:
		hi(&q.driver)
	case regQueueDeviceLow:
		lo(&q.device)
	case regQueueDeviceHigh:
		hi(&q.device)
	}
}

func (d *Device) setReady(v uint32) {
	if d.queueSel > 1 {
		d.errorf("QueueReady for missing queue %d", d.queueSel)
		return
	}

	q := &d.q[d.queueSel]

	if v == 0 {
		q.ready = false
		return
	}

	switch {
	case q.num == 0 || q.num > d.QueueNumMax || q.num&(q.num-1) != 0:
		d.errorf("queue %d: bad size %d", d.queueSel, q.num)
	case q.desc%16 != 0 || q.driver%2 != 0 || q.device%4 != 0:
		d.errorf("queue %d: misaligned rings", d.queueSel) // §2.7
	default:
		if _, err := d.Mem.Slice(q.desc, 16*int(q.num)); err != nil {
			d.errorf("queue %d desc: %v", d.queueSel, err)
		}
		if _, err := d.Mem.Slice(q.driver, 6+2*int(q.num)); err != nil {
			d.errorf("queue %d driver: %v", d.queueSel, err)
		}
		if _, err := d.Mem.Slice(q.device, 6+8*int(q.num)); err != nil {
			d.errorf("queue %d device: %v", d.queueSel, err)
		}
		q.ready = true
		q.lastAvail, q.usedIdx = 0, 0
		d.publishUsed(q)
	}
}

func (d *Device) setStatus(v uint32) {
	d.statusLog = append(d.statusLog, v)

	if v == 0 {
		// reset (§4.2.2.1)
		d.status = 0
		d.drvFeatures = 0
		d.q = [2]queue{}
		d.isr = 0
		return
	}

	if d.status&^v != 0 {
		d.errorf("status bits cleared: %#x -> %#x", d.status, v)
	}

	if v&statusFeaturesOK != 0 && d.status&statusFeaturesOK == 0 {
		if d.drvFeatures&^d.Features != 0 || d.drvFeatures&FeatureVersion1 == 0 {
			v &^= statusFeaturesOK // refuse (§2.2.2)
		}
	}

	if v&statusDriverOK != 0 && v&statusFeaturesOK == 0 {
		d.errorf("DRIVER_OK without FEATURES_OK")
	}

	d.status = v
}

func (d *Device) notify(v uint32) (frames [][]byte, irq bool) {
	if v > 1 {
		d.errorf("notify of missing queue %d", v)
		return
	}

	d.notifies[v]++

	if d.status&statusDriverOK == 0 {
		d.errorf("notify of queue %d before DRIVER_OK", v) // §3.1.1
		return
	}

	if v == 1 && !d.HoldTX {
		return d.processTX()
	}
	if v == 0 {
		irq = d.drainBacklog()
	}

	return
}

// drainBacklog delivers held frames while there are buffers for them.
func (d *Device) drainBacklog() (delivered bool) {
	for len(d.backlog) > 0 {
		f := d.backlog[0]
		d.backlog = d.backlog[1:]
		if !d.inject(f, Hdr{}) {
			// inject held it again, at the end (there was room, f
			// having left): put it back first.
			d.backlog = append([][]byte{f}, d.backlog[:len(d.backlog)-1]...)
			return delivered
		}
		delivered = true
	}
	return delivered
}

// CompleteTX consumes all pending transmit buffers (for HoldTX).
func (d *Device) CompleteTX() {
	d.mu.Lock()
	frames, irq := d.processTX()
	d.mu.Unlock()
	d.deliver(frames, irq)
}

type seg struct {
	buf   []byte
	write bool
}

func (d *Device) processTX() (frames [][]byte, irq bool) {
	q := &d.q[1]

	if !q.ready {
		d.errorf("transmit on a queue not ready")
		return
	}

	var done []uint32 // heads taken, returned after the loop
	for {
		head, ok := d.popAvail(q)
		if !ok {
			break
		}

		segs, err := d.chain(q, head)
		if err != nil {
			d.errorf("tx: %v", err)
			d.pushUsed(q, uint32(head), 0)
			irq = true
			continue
		}

		var pkt []byte
		for _, s := range segs {
			if s.write {
				d.errorf("tx: device-writable descriptor")
			}
			pkt = append(pkt, s.buf...)
		}

		if len(pkt) < netHdrSize {
			d.errorf("tx: %d bytes, no virtio_net_hdr", len(pkt))
		} else if fs, err := d.finish(pkt[:netHdrSize], pkt[netHdrSize:]); err != nil {
			d.errorf("tx: %v", err)
		} else {
			frames = append(frames, fs...)
		}

		done = append(done, uint32(head))
		irq = true
	}
	if d.ReverseTX {
		slices.Reverse(done)
	}
	for _, h := range done {
		d.pushUsed(q, h, 0)
	}

	if irq {
		d.isr |= 1
	}

	if d.OnTransmit == nil {
		d.frames = append(d.frames, frames...)
	}

	return
}

// Hdr is the virtio_net_hdr the device writes before a received frame
// (§5.1.6): Flags (NEEDS_CSUM 1, DATA_VALID 2), GSOType (TCPV4 1, ...),
// and NumBuffers, which 0 leaves to the device (the buffers it used).
type Hdr struct {
	Flags, GSOType uint8
	NumBuffers     uint16
}

// Inject delivers frame into the next posted receive buffer (or, with
// MRG_RXBUF, buffers), as if it had arrived from the wire, and raises
// the interrupt. Without enough posted buffers the frame is dropped
// (counted in RxDropped) and false returned.
func (d *Device) Inject(frame []byte) bool { return d.InjectHdr(frame, Hdr{}) }

// InjectHdr is Inject with the header's flags and gso_type given, as a
// device that offloads receive work writes them. It writes what it is
// told, negotiated or not, so tests can play a device that lies.
func (d *Device) InjectHdr(frame []byte, h Hdr) bool {
	d.mu.Lock()
	ok := d.drainBacklog()
	if len(d.backlog) == 0 { // frames keep their order
		ok = d.inject(frame, h) || ok
	} else if len(d.backlog) < d.Backlog {
		d.backlog = append(d.backlog, frame)
	} else {
		d.rxDropped++
	}
	d.mu.Unlock()

	if ok {
		d.raise()
	}

	return ok
}

func (d *Device) inject(frame []byte, h Hdr) bool {
	q := &d.q[0]

	if d.status&statusDriverOK == 0 || !q.ready {
		d.rxDropped++
		return false
	}

	pkt := make([]byte, netHdrSize+len(frame))
	pkt[0], pkt[1] = h.Flags, h.GSOType
	copy(pkt[netHdrSize:], frame)

	// The buffers, one (without MRG_RXBUF) or as many as the frame needs
	// (§5.1.6.4.2); all are used at once, under one used.idx update.
	type used struct {
		head uint16
		segs []seg
		n    int
	}
	var bufs []used
	mrg := d.drvFeatures&FeatureMrgRxbuf != 0
	for left := len(pkt); left > 0 || len(bufs) == 0; {
		head, ok := d.popAvail(q)
		if !ok {
			// Not enough buffers: drop the frame, leaving those it
			// took available, as QEMU checks before it takes any.
			q.lastAvail -= uint16(len(bufs))
			if len(d.backlog) < d.Backlog {
				d.backlog = append(d.backlog, frame) // see Backlog
			} else {
				d.rxDropped++
			}
			return false
		}
		segs, err := d.chain(q, head)
		if err != nil {
			d.errorf("rx: %v", err)
			d.pushUsed(q, uint32(head), 0)
			d.isr |= 1
			return true
		}
		size := 0
		for _, s := range segs {
			if !s.write {
				d.errorf("rx: device-readable descriptor")
				continue
			}
			size += len(s.buf)
		}
		if mrg && size < netHdrSize && len(bufs) == 0 {
			d.errorf("rx: first buffer of %d bytes holds no virtio_net_hdr", size)
		}
		n := min(size, left)
		bufs = append(bufs, used{head, segs, n})
		left -= n
		if !mrg {
			break
		}
	}

	nb := h.NumBuffers
	if nb == 0 {
		nb = uint16(len(bufs))
	}
	binary.LittleEndian.PutUint16(pkt[10:], nb)

	off := 0
	for _, b := range bufs {
		w := 0
		for _, s := range b.segs {
			if s.write && w < b.n {
				w += copy(s.buf[:min(len(s.buf), b.n-w)], pkt[off+w:])
			}
		}
		off += b.n
	}

	if off < len(pkt) {
		d.errorf("rx: buffer of %d bytes for a %d-byte frame", off, len(pkt))
		for _, b := range bufs {
			d.pushUsedQuiet(q, uint32(b.head), 0)
		}
		d.rxDropped++
	} else {
		for _, b := range bufs {
			d.pushUsedQuiet(q, uint32(b.head), uint32(b.n))
		}
		d.rxDelivered++
	}
	d.publishUsed(q)
	d.isr |= 1

	return true
}

// popAvail takes the next available head (§2.7.13.1, device side).
func (d *Device) popAvail(q *queue) (uint16, bool) {
	w, err := d.Mem.Load32(q.driver)
	if err != nil {
		d.errorf("avail: %v", err)
		return 0, false
	}

	if q.lastAvail == uint16(w>>16) {
		return 0, false
	}

	if n := uint16(w>>16) - q.lastAvail; uint32(n) > q.num {
		d.errorf("avail.idx %d runs %d ahead of %d: more than the queue size", uint16(w>>16), n, q.lastAvail)
	}

	slot, err := d.Mem.Slice(q.driver+4+2*uint64(uint32(q.lastAvail)%q.num), 2)
	if err != nil {
		d.errorf("avail: %v", err)
		return 0, false
	}

	q.lastAvail++

	return binary.LittleEndian.Uint16(slot), true
}

// chain walks a descriptor chain (§2.7.5).
func (d *Device) chain(q *queue, head uint16) (segs []seg, err error) {
	id := uint32(head)

	for i := uint32(0); ; i++ {
		if id >= q.num || i >= q.num {
			return nil, fmt.Errorf("bad descriptor chain from %d", head)
		}

		desc, err := d.Mem.Slice(q.desc+16*uint64(id), 16)
		if err != nil {
			return nil, err
		}

		addr := binary.LittleEndian.Uint64(desc[0:])
		n := binary.LittleEndian.Uint32(desc[8:])
		flags := binary.LittleEndian.Uint16(desc[12:])

		if flags&4 != 0 {
			return nil, fmt.Errorf("indirect descriptor %d", id)
		}

		buf, err := d.Mem.Slice(addr, int(n))
		if err != nil {
			return nil, fmt.Errorf("descriptor %d: %v", id, err)
		}

		segs = append(segs, seg{buf: buf, write: flags&2 != 0})

		if flags&1 == 0 {
			return segs, nil
		}

		id = uint32(binary.LittleEndian.Uint16(desc[14:]))
	}
}

// pushUsed adds a used element and publishes used.idx (§2.7.8).
func (d *Device) pushUsed(q *queue, id, n uint32) {
	d.pushUsedQuiet(q, id, n)
	d.publishUsed(q)
}

// pushUsedQuiet adds a used element without publishing used.idx.
func (d *Device) pushUsedQuiet(q *queue, id, n uint32) {
	if d.usedID != nil {
		id = d.usedID(d.index(q), id)
	}

	elem, err := d.Mem.Slice(q.device+4+8*uint64(uint32(q.usedIdx)%q.num), 8)
	if err != nil {
		d.errorf("used: %v", err)
		return
	}

	binary.LittleEndian.PutUint32(elem[0:], id)
	binary.LittleEndian.PutUint32(elem[4:], n)
	q.usedIdx++
}

// index returns the number of queue q.
func (d *Device) index(q *queue) int {
	if q == &d.q[0] {
		return 0
	}
	return 1
}

func (d *Device) publishUsed(q *queue) {
	var flags uint32
	if d.NoNotify {
		flags = 1
	}

	if err := d.Mem.Store32(q.device, flags|uint32(q.usedIdx)<<16); err != nil {
		d.errorf("used: %v", err)
	}
}

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

// Wire connects two devices back to back: what one transmits, the other
// receives (or drops, lacking a buffer).
func Wire(a, b *Device) {
	a.Backlog, b.Backlog = 1024, 1024
	a.OnTransmit = func(f []byte) { b.Inject(f) }
	b.OnTransmit = func(f []byte) { a.Inject(f) }
}
