package virtiotest

import "encoding/binary"

// The register window (virtio-v1.2 §4.2.2): what a driver reads and
// writes, and the device state each write changes.

// Register offsets, repeated here from the virtio-mmio layout
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
)

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
	case regConfig, regConfig + 4, regConfig + 8:
		return binary.LittleEndian.Uint32(d.config()[off-regConfig:])
	}

	d.errorf("read of register %#x", off)
	return 0
}

// Read16 implements the driver's HalfReader: a 16-bit access to the
// configuration space, as §4.2.2.2 wants for its 16-bit fields.
func (d *Device) Read16(off uint32) uint16 {
	d.mu.Lock()
	defer d.mu.Unlock()

	if off < regConfig || off%2 != 0 || off+2 > regConfig+configSize {
		d.errorf("16-bit read of register %#x", off)
		return 0
	}
	return binary.LittleEndian.Uint16(d.config()[off-regConfig:])
}

// configSize is the size of the configuration the device has: up to and
// including mtu (§5.1.4).
const configSize = 12

// config returns struct virtio_net_config (§5.1.4): mac[6], status,
// max_virtqueue_pairs and mtu (le16 each); d.mu is held.
func (d *Device) config() []byte {
	cfg := make([]byte, configSize)
	copy(cfg, d.MAC[:])
	binary.LittleEndian.PutUint16(cfg[10:], d.MTU)
	return cfg
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
