package virtiotest

import "encoding/binary"

// Receiving: frames written into the driver's posted buffers, or held
// in the backlog until there are some (virtio-v1.2 §5.1.6.3, §5.1.6.4).

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
	}
	d.publishUsed(q)
	d.isr |= 1

	return true
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
