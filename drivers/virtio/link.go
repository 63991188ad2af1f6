package virtio

import (
	"sync"
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// NIC is what LinkEndpoint needs of an Ethernet device; *Net is one.
//
// ReceiveFunc blocks for the next frame and hands it to its argument,
// valid only during that call; an error ends the endpoint's RX goroutine.
// TransmitParts errors drop the frame, as a full or broken wire would.
type NIC interface {
	MAC() [6]byte
	MTU() int
	TransmitParts(parts [][]byte) error // one frame, in pieces
	ReceiveFunc(use func(frame []byte)) error
}

// LinkEndpoint is a gVisor stack.LinkEndpoint carrying Ethernet frames
// over a NIC. Attaching it to a stack starts a goroutine that receives
// frames and hands them to the stack; it ends when NIC.Receive fails
// (e.g. after Net.Close).
type LinkEndpoint struct {
	nic NIC

	mu         sync.RWMutex
	dispatcher stack.NetworkDispatcher
	addr       tcpip.LinkAddress
	mtu        uint32
	onClose    func()
	started    bool

	wg sync.WaitGroup

	rxDrops, rxFiltered, txDrops atomic.Uint64
}

var _ stack.LinkEndpoint = (*LinkEndpoint)(nil)

// LinkStats counts frames the endpoint lost or discarded.
type LinkStats struct {
	RxDrops    uint64 // malformed, truncated, or no stack attached
	RxFiltered uint64 // unicast frames for another MAC
	TxDrops    uint64 // Transmit failed (e.g. ErrTxFull)
}

// NewLinkEndpoint returns an endpoint over nic.
func NewLinkEndpoint(nic NIC) *LinkEndpoint {
	mac := nic.MAC()

	return &LinkEndpoint{
		nic:  nic,
		addr: tcpip.LinkAddress(mac[:]),
		mtu:  uint32(nic.MTU()),
	}
}

// Stats returns the endpoint's drop counters.
func (e *LinkEndpoint) Stats() LinkStats {
	return LinkStats{
		RxDrops:    e.rxDrops.Load(),
		RxFiltered: e.rxFiltered.Load(),
		TxDrops:    e.txDrops.Load(),
	}
}

// MTU implements stack.LinkEndpoint.
func (e *LinkEndpoint) MTU() uint32 {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.mtu
}

// SetMTU implements stack.LinkEndpoint.
func (e *LinkEndpoint) SetMTU(mtu uint32) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.mtu = mtu
}

// MaxHeaderLength implements stack.LinkEndpoint.
func (*LinkEndpoint) MaxHeaderLength() uint16 { return header.EthernetMinimumSize }

// LinkAddress implements stack.LinkEndpoint.
func (e *LinkEndpoint) LinkAddress() tcpip.LinkAddress {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.addr
}

// SetLinkAddress implements stack.LinkEndpoint.
func (e *LinkEndpoint) SetLinkAddress(addr tcpip.LinkAddress) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.addr = addr
}

// Capabilities implements stack.LinkEndpoint: Ethernet needs ARP, and
// checksums are done in software (no offloads are negotiated).
func (*LinkEndpoint) Capabilities() stack.LinkEndpointCapabilities {
	return stack.CapabilityResolutionRequired
}

// Attach implements stack.LinkEndpoint; the first attachment starts the
// RX goroutine.
func (e *LinkEndpoint) Attach(d stack.NetworkDispatcher) {
	e.mu.Lock()
	defer e.mu.Unlock()

	e.dispatcher = d

	if d != nil && !e.started {
		e.started = true
		e.wg.Add(1)
		go e.rxLoop()
	}
}

// IsAttached implements stack.LinkEndpoint.
func (e *LinkEndpoint) IsAttached() bool {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.dispatcher != nil
}

// Wait implements stack.LinkEndpoint: it waits for the RX goroutine,
// which ends when the NIC is closed.
func (e *LinkEndpoint) Wait() { e.wg.Wait() }

// ARPHardwareType implements stack.LinkEndpoint.
func (*LinkEndpoint) ARPHardwareType() header.ARPHardwareType { return header.ARPHardwareEther }

// AddHeader implements stack.LinkEndpoint.
func (*LinkEndpoint) AddHeader(pkt *stack.PacketBuffer) {
	eth := header.Ethernet(pkt.LinkHeader().Push(header.EthernetMinimumSize))
	eth.Encode(&header.EthernetFields{
		SrcAddr: pkt.EgressRoute.LocalLinkAddress,
		DstAddr: pkt.EgressRoute.RemoteLinkAddress,
		Type:    pkt.NetworkProtocolNumber,
	})
}

// ParseHeader implements stack.LinkEndpoint.
func (*LinkEndpoint) ParseHeader(pkt *stack.PacketBuffer) bool {
	b, ok := pkt.LinkHeader().Consume(header.EthernetMinimumSize)
	if ok {
		pkt.NetworkProtocolNumber = header.Ethernet(b).Type()
	}
	return ok
}

// Close implements stack.LinkEndpoint. It runs the on-close action; the
// NIC belongs to the caller.
func (e *LinkEndpoint) Close() {
	e.mu.Lock()
	f := e.onClose
	e.onClose = nil
	e.mu.Unlock()

	if f != nil {
		f()
	}
}

// SetOnCloseAction implements stack.LinkEndpoint.
func (e *LinkEndpoint) SetOnCloseAction(f func()) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.onClose = f
}

// WritePackets implements stack.LinkWriter. Each packet, its Ethernet
// header already added, goes to the NIC in its pieces; at
// the first frame the NIC refuses, the rest are dropped, counted and
// reported to the stack as ErrNoBufferSpace.
func (e *LinkEndpoint) WritePackets(pkts stack.PacketBufferList) (int, tcpip.Error) {
	n := 0

	for _, pkt := range pkts.AsSlice() {
		if err := e.nic.TransmitParts(pkt.AsSlices()); err != nil {
			// Tell the stack, so that it counts the rest as dropped
			// for want of buffer space rather than as sent.
			e.txDrops.Add(1)
			return n, &tcpip.ErrNoBufferSpace{}
		}

		n++
	}

	return n, nil
}

func (e *LinkEndpoint) rxLoop() {
	defer e.wg.Done()

	// One closure for the endpoint's life: nothing allocated per frame
	// but the packet itself.
	var (
		pkt *stack.PacketBuffer
		typ tcpip.PacketType
		d   stack.NetworkDispatcher
	)
	take := func(frame []byte) {
		pkt, typ, d = e.packet(frame)
	}
	for {
		pkt = nil
		if err := e.nic.ReceiveFunc(take); err != nil {
			return
		}
		if pkt != nil {
			e.deliver(d, pkt, typ)
		}
	}
}

// packet classifies a received frame and copies it into a packet buffer,
// or drops it (nil).
func (e *LinkEndpoint) packet(frame []byte) (*stack.PacketBuffer, tcpip.PacketType, stack.NetworkDispatcher) {
	e.mu.RLock()
	d, addr := e.dispatcher, e.addr
	e.mu.RUnlock()

	if d == nil || len(frame) < header.EthernetMinimumSize {
		e.rxDrops.Add(1)
		return nil, 0, nil
	}

	var typ tcpip.PacketType

	switch dst := header.Ethernet(frame).DestinationAddress(); {
	case dst == addr:
		typ = tcpip.PacketHost
	case dst == header.EthernetBroadcastAddress:
		typ = tcpip.PacketBroadcast
	case header.IsMulticastEthernetAddress(dst):
		typ = tcpip.PacketMulticast
	default:
		// virtio-net without VIRTIO_NET_F_CTRL_RX may be promiscuous
		e.rxFiltered.Add(1)
		return nil, 0, nil
	}

	// The one copy on the way in: from the device's buffer into the
	// stack's.
	return stack.NewPacketBuffer(stack.PacketBufferOptions{
		Payload: buffer.MakeWithData(frame),
	}), typ, d
}

// deliver hands one received packet to the stack.
func (e *LinkEndpoint) deliver(d stack.NetworkDispatcher, pkt *stack.PacketBuffer, typ tcpip.PacketType) {
	defer pkt.DecRef()

	if !e.ParseHeader(pkt) {
		e.rxDrops.Add(1)
		return
	}

	pkt.PktType = typ
	d.DeliverNetworkPacket(pkt.NetworkProtocolNumber, pkt)
}
