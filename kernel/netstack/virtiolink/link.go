// Package virtiolink is a gVisor link endpoint (stack.LinkEndpoint) over
// a virtio-net device, or anything else with virtio.NIC's plain frame
// interface: one small package per link endpoint, like gVisor's
// pkg/tcpip/link/*, so that the driver knows no IP (drivers/virtio has no
// gVisor import).
package virtiolink

import (
	"sync"
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"

	"fornax/drivers/virtio"
)

// Endpoint is a gVisor stack.LinkEndpoint carrying Ethernet frames over a
// virtio.NIC. Attaching it to a stack starts a goroutine that receives
// frames and hands them to the stack; it ends when NIC.ReceiveFunc fails
// (e.g. after virtio.Net.Close).
type Endpoint struct {
	nic virtio.NIC
	tx  virtio.TxOffloader // nil unless the NIC checksums and segments TCP/IPv4

	mu         sync.RWMutex
	dispatcher stack.NetworkDispatcher
	addr       tcpip.LinkAddress
	mtu        uint32
	onClose    func()
	started    bool

	wg sync.WaitGroup

	rxDrops, rxFiltered, txDrops atomic.Uint64
	rxVouched                    atomic.Uint64 // frames delivered with the device's checksum word

	// vouched is set while a frame whose checksums the device vouched
	// for is being delivered; see Capabilities.
	vouched atomic.Bool
}

var (
	_ stack.LinkEndpoint = (*Endpoint)(nil)
	_ stack.GSOEndpoint  = (*Endpoint)(nil)
)

// Stats counts frames the endpoint lost or discarded.
type Stats struct {
	RxDrops    uint64 // malformed, truncated, or no stack attached
	RxFiltered uint64 // unicast frames for another MAC
	TxDrops    uint64 // a transmit failed (e.g. ErrTxFull)
	// RxVouched counts frames delivered without the stack checking
	// their checksums, the device having vouched for them.
	RxVouched uint64
}

// New returns an endpoint over nic.
func New(nic virtio.NIC) *Endpoint {
	mac := nic.MAC()

	var tx virtio.TxOffloader
	if o, ok := nic.(virtio.TxOffloader); ok {
		if csum, tso := o.TxOffloads(); csum && tso {
			tx = o
		}
	}
	return &Endpoint{
		nic:  nic,
		tx:   tx,
		addr: tcpip.LinkAddress(mac[:]),
		mtu:  uint32(nic.MTU()),
	}
}

// Stats returns the endpoint's drop counters.
func (e *Endpoint) Stats() Stats {
	return Stats{
		RxDrops:    e.rxDrops.Load(),
		RxFiltered: e.rxFiltered.Load(),
		TxDrops:    e.txDrops.Load(),
		RxVouched:  e.rxVouched.Load(),
	}
}

// MTU implements stack.LinkEndpoint.
func (e *Endpoint) MTU() uint32 {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.mtu
}

// SetMTU implements stack.LinkEndpoint.
func (e *Endpoint) SetMTU(mtu uint32) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.mtu = mtu
}

// MaxHeaderLength implements stack.LinkEndpoint.
func (*Endpoint) MaxHeaderLength() uint16 { return header.EthernetMinimumSize }

// LinkAddress implements stack.LinkEndpoint.
func (e *Endpoint) LinkAddress() tcpip.LinkAddress {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.addr
}

// SetLinkAddress implements stack.LinkEndpoint.
func (e *Endpoint) SetLinkAddress(addr tcpip.LinkAddress) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.addr = addr
}

// Capabilities implements stack.LinkEndpoint: Ethernet needs ARP. It
// has CapabilityRXChecksumOffload only while a frame the device vouched
// for is being delivered: gVisor reads that bit once per received packet,
// in the delivering goroutine (stack/nic.go DeliverNetworkPacket, the
// bit's one reader in gvisor@v0.0.0-20250911055229), to set
// RXChecksumValidated, so every other frame has its IP, TCP and UDP
// checksums checked by the stack. (A static bit would let a fragment the
// device did not check through unchecked: reassembly clones the flag.)
func (e *Endpoint) Capabilities() stack.LinkEndpointCapabilities {
	c := stack.CapabilityResolutionRequired
	if e.vouched.Load() {
		c |= stack.CapabilityRXChecksumOffload
	}
	return c
}

// Attach implements stack.LinkEndpoint; the first attachment starts the
// RX goroutine.
func (e *Endpoint) Attach(d stack.NetworkDispatcher) {
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
func (e *Endpoint) IsAttached() bool {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.dispatcher != nil
}

// Wait implements stack.LinkEndpoint: it waits for the RX goroutine,
// which ends when the NIC is closed.
func (e *Endpoint) Wait() { e.wg.Wait() }

// ARPHardwareType implements stack.LinkEndpoint.
func (*Endpoint) ARPHardwareType() header.ARPHardwareType { return header.ARPHardwareEther }

// AddHeader implements stack.LinkEndpoint.
func (*Endpoint) AddHeader(pkt *stack.PacketBuffer) {
	eth := header.Ethernet(pkt.LinkHeader().Push(header.EthernetMinimumSize))
	eth.Encode(&header.EthernetFields{
		SrcAddr: pkt.EgressRoute.LocalLinkAddress,
		DstAddr: pkt.EgressRoute.RemoteLinkAddress,
		Type:    pkt.NetworkProtocolNumber,
	})
}

// ParseHeader implements stack.LinkEndpoint.
func (*Endpoint) ParseHeader(pkt *stack.PacketBuffer) bool {
	b, ok := pkt.LinkHeader().Consume(header.EthernetMinimumSize)
	if ok {
		pkt.NetworkProtocolNumber = header.Ethernet(b).Type()
	}
	return ok
}

// Close implements stack.LinkEndpoint. It runs the on-close action; the
// NIC belongs to the caller.
func (e *Endpoint) Close() {
	e.mu.Lock()
	f := e.onClose
	e.onClose = nil
	e.mu.Unlock()

	if f != nil {
		f()
	}
}

// SetOnCloseAction implements stack.LinkEndpoint.
func (e *Endpoint) SetOnCloseAction(f func()) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.onClose = f
}

// transmit hands one packet to the NIC; a TCP one with GSO options
// (HostGSOSupported: gVisor left its checksum partial, and it may be up
// to GSOMaxSize long) goes with them, for the device to finish.
func (e *Endpoint) transmit(pkt *stack.PacketBuffer) error {
	g := pkt.GSOOptions
	if e.tx == nil || g.Type != stack.GSOTCPv4 || !g.NeedsCsum {
		return e.nic.TransmitParts(pkt.AsSlices())
	}
	start := header.EthernetMinimumSize + int(g.L3HdrLen)
	return e.tx.TransmitOffload(pkt.AsSlices(), start, int(g.CsumOffset), pkt.HeaderSize(), int(g.MSS))
}

// GSOMaxSize implements stack.GSOEndpoint: TCP sends at most this much
// (headers included, less one byte) in one packet; a 20-byte IPv4
// header makes it the largest IPv4 packet.
func (e *Endpoint) GSOMaxSize() uint32 {
	if e.tx == nil {
		return 0
	}
	return 65535 - header.IPv4MinimumSize
}

// SupportedGSO implements stack.GSOEndpoint: the device segments TCP/IPv4
// (VIRTIO_NET_F_HOST_TSO4) when it can.
func (e *Endpoint) SupportedGSO() stack.SupportedGSO {
	if e.tx == nil {
		return stack.GSONotSupported
	}
	return stack.HostGSOSupported
}

// WritePackets implements stack.LinkWriter. Each packet, its Ethernet
// header already added, goes to the NIC in its pieces; at
// the first frame the NIC refuses, the rest are dropped, counted and
// reported to the stack as ErrNoBufferSpace.
func (e *Endpoint) WritePackets(pkts stack.PacketBufferList) (int, tcpip.Error) {
	n := 0

	for _, pkt := range pkts.AsSlice() {
		if err := e.transmit(pkt); err != nil {
			// Tell the stack, so that it counts the rest as dropped
			// for want of buffer space rather than as sent.
			e.txDrops.Add(1)
			return n, &tcpip.ErrNoBufferSpace{}
		}

		n++
	}

	return n, nil
}

func (e *Endpoint) rxLoop() {
	defer e.wg.Done()

	// One closure for the endpoint's life: nothing allocated per frame
	// but the packet itself.
	var (
		pkt     *stack.PacketBuffer
		typ     tcpip.PacketType
		d       stack.NetworkDispatcher
		vouched bool
	)
	take := func(frame [][]byte, checksumOK bool) {
		pkt, typ, d = e.packet(frame)
		vouched = checksumOK
	}
	for {
		pkt = nil
		if err := e.nic.ReceiveFunc(take); err != nil {
			return
		}
		if pkt != nil {
			e.deliver(d, pkt, typ, vouched)
		}
	}
}

// packet classifies a received frame, in parts, and copies it into a
// packet buffer, or drops it (nil).
func (e *Endpoint) packet(frame [][]byte) (*stack.PacketBuffer, tcpip.PacketType, stack.NetworkDispatcher) {
	e.mu.RLock()
	d, addr := e.dispatcher, e.addr
	e.mu.RUnlock()

	// The device's first buffer holds the Ethernet header whenever the
	// frame has one (with MRG_RXBUF it is at least a page).
	if d == nil || len(frame) == 0 || len(frame[0]) < header.EthernetMinimumSize {
		e.rxDrops.Add(1)
		return nil, 0, nil
	}

	var typ tcpip.PacketType

	switch dst := header.Ethernet(frame[0]).DestinationAddress(); {
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

	// The one copy on the way in: from the device's buffers into the
	// stack's.
	payload := buffer.MakeWithData(frame[0])
	for _, p := range frame[1:] {
		payload.Append(buffer.NewViewWithData(p))
	}
	return stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: payload}), typ, d
}

// deliver hands one received packet to the stack.
func (e *Endpoint) deliver(d stack.NetworkDispatcher, pkt *stack.PacketBuffer, typ tcpip.PacketType, vouched bool) {
	defer pkt.DecRef()

	if !e.ParseHeader(pkt) {
		e.rxDrops.Add(1)
		return
	}

	pkt.PktType = typ
	if vouched {
		e.rxVouched.Add(1)
		e.vouched.Store(true)
		defer e.vouched.Store(false)
	}
	d.DeliverNetworkPacket(pkt.NetworkProtocolNumber, pkt)
}
