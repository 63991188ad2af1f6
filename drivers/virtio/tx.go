package virtio

import "encoding/binary"

// The transmit path: a frame is copied into a free buffer, small or, for
// a TSO frame, 64 KiB, behind the virtio_net_hdr that says what the
// device is to finish (virtio-v1.2 §5.1.6.2); sent buffers are reaped by
// the next transmit.

// TransmitParts copies a frame given in pieces (headers and payload, as
// a network stack holds them; a complete Ethernet frame without FCS)
// straight into a transmit buffer, with no gathering copy before, and
// hands it to the device. Completed buffers are reclaimed first; if none
// is free the frame is dropped with ErrTxFull.
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
	case mss > 0 && hdrLen+mss > n.maxTx: // segments over the mtu (§5.1.4.2)
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
	// With VIRTIO_NET_F_MTU no unsegmented frame may exceed the
	// device's mtu (§5.1.4.2): the wire behind it would drop it.
	if (h.gsoType == NetHdrGSONone && size > n.maxTx) || size > MaxTxFrameSize {
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
