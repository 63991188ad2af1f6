package virtiotest

import "slices"

// Transmitting: chains taken from the transmit queue on a notify (or
// CompleteTX), finished (offload.go) and handed on (virtio-v1.2 §5.1.6.2).

// CompleteTX consumes all pending transmit buffers (for HoldTX).
func (d *Device) CompleteTX() {
	d.mu.Lock()
	frames, irq := d.processTX()
	d.mu.Unlock()
	d.deliver(frames, irq)
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
