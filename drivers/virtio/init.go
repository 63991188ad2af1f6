package virtio

import (
	"errors"
	"fmt"
	"math/rand/v2"
)

// Bringing the device up (virtio-v1.2 §3.1.1), and up again after it
// broke a queue.

// Init resets and initializes the device (virtio-v1.2 §3.1.1, §4.2.3,
// §5.1.5): it negotiates VIRTIO_F_VERSION_1, VIRTIO_NET_F_MAC,
// VIRTIO_NET_F_MTU (see takeMTU) and the offloads not in Decline (see
// wantFeatures), sets up receiveq1 and
// transmitq1, fills the receive queue and sets DRIVER_OK.
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
	// Sent buffers are reaped by the next transmit: their completions
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
	n.maxTx = MaxFrameSize
	if n.mtu != 0 {
		n.maxTx = n.mtu + etherHdrSize
	}

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
	features := wantFeatures(offered, n.Decline.features(), rxBufs)
	var mtu int
	if offered&FeatureNetMTU != 0 {
		// §3.1.1 step 4: the configuration may be read before the
		// features are fixed, to decide whether to take one.
		if m := n.readMTU(); takeMTU(m) {
			features |= FeatureNetMTU
			mtu = m
		}
	}
	if n.features != 0 && (features != n.features || mtu != n.mtu) {
		return status, fmt.Errorf("virtio: device now offers features %#x and mtu %d, had %#x and %d", features, mtu, n.features, n.mtu)
	}
	n.features, n.mtu = features, mtu
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

// recover resets the device after a queue broke (see restart). The
// device may misbehave again: each reset is counted; only a device that
// does not come back ends the driver, with an error from ReceiveFunc and
// the transmit methods.
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

// takeMTU reports whether the driver takes VIRTIO_NET_F_MTU with mtu:
// only if its buffers carry it (MTU, 1500, at most), for the feature is
// a promise to post buffers that hold an mtu-sized frame (§5.1.4.2); a
// larger one is declined and the link runs at 1500, as without the
// feature. An mtu below MinMTU breaks §5.1.4.1 and is declined too.
func takeMTU(mtu int) bool { return mtu >= MinMTU && mtu <= MTU }

// readConfig runs read, which reads the device configuration space,
// until the configuration generation is the same before and after it
// (§4.2.2.2, §2.5.1).
func (n *Net) readConfig(read func()) {
	for {
		gen := n.Regs.Read32(RegConfigGeneration)
		read()
		if n.Regs.Read32(RegConfigGeneration) == gen {
			return
		}
	}
}

// readMTU reads struct virtio_net_config.mtu (virtio-v1.2 §5.1.4), with a
// 16-bit access where the register window has one (§4.2.2.2).
func (n *Net) readMTU() (mtu int) {
	n.readConfig(func() {
		if hr, ok := n.Regs.(HalfReader); ok {
			mtu = int(hr.Read16(RegConfig + netCfgMTUOff))
		} else {
			w := n.Regs.Read32(RegConfig + netCfgMTUOff&^3)
			mtu = int(uint16(w >> (8 * (netCfgMTUOff & 3))))
		}
	})
	return mtu
}

// readMAC reads struct virtio_net_config.mac (virtio-v1.2 §5.1.4).
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

	n.readConfig(func() {
		if br, ok := r.(ByteReader); ok {
			for i := range n.mac {
				n.mac[i] = br.Read8(RegConfig + uint32(i))
			}
		} else {
			lo, hi := r.Read32(RegConfig), r.Read32(RegConfig+4)
			n.mac = [6]byte{byte(lo), byte(lo >> 8), byte(lo >> 16), byte(lo >> 24), byte(hi), byte(hi >> 8)}
		}
	})
}
