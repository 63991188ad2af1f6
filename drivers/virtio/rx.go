package virtio

import "encoding/binary"

// The receive path: frames handed on in place from the device's buffers,
// which go back to the device once used (virtio-v1.2 §5.1.6.3, §5.1.6.4).

// ReceiveFunc waits for the next received frame and hands it to use in
// place: frame is the device's buffers (one, or with MRG_RXBUF as many as
// the frame took), without virtio_net_hdr, valid only until use returns,
// after which they go back to the device. It saves a copy on the receive
// path (the link endpoint copies straight into the stack's buffers). It
// returns ErrClosed after Close, or why a broken device did not come
// back.
func (n *Net) ReceiveFunc(use func(frame [][]byte, checksumOK bool)) error {
	for {
		if n.closed.Load() {
			return ErrClosed
		}

		if n.needReset.Load() {
			if err := n.recover(); err != nil {
				return err
			}
		}

		if n.receive(use) {
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

// receive hands the next received frame to use and reposts its buffers,
// reporting whether there was one. A malformed frame (bad length, a
// num_buffers the used ring does not hold, an offload not negotiated) is
// counted as an error and never handed on.
func (n *Net) receive(use func([][]byte, bool)) bool {
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
		use(parts, csumOK)
		size := 0
		for _, p := range parts {
			size += len(p)
		}
		n.stats.rxPackets.Add(1)
		n.stats.rxBytes.Add(uint64(size))
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

// maxRxFrame is the largest frame the device may deliver.
func (n *Net) maxRxFrame() int {
	if n.features&FeatureNetGuestTSO4 != 0 {
		return MaxRxFrameSize
	}
	return MaxFrameSize
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

// postRx makes receive buffer slot i available to the device; rx must be
// locked (or not yet shared).
func (n *Net) postRx(i int) {
	head, ok := n.rx.q.Add(Buffer{Addr: n.rx.ring.bufAddr(i), Len: uint32(n.rx.ring.size), Writable: true})
	if !ok {
		panic("virtio: no free rx descriptor") // one descriptor per slot
	}
	n.rx.ring.slot[head] = i
}
