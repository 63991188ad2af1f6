// Package netstack runs gVisor's TCP/IP stack (IPv4, ARP, ICMP, IGMP,
// UDP, TCP) over one link endpoint and hands out sockets as the standard
// net interfaces. SocketFunc plugs it into TamaGo's net package (see Install).
package netstack

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/nested"
	"gvisor.dev/gvisor/pkg/tcpip/network/arp"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"

	ip4 "fornax/internal/ipv4" // ipv4 is gVisor's protocol
)

// arpProbes is the number of ARP requests sent to resolve an address.
const arpProbes = 1

// nicID is the stack's only NIC.
const nicID tcpip.NICID = 1

// Per-connection TCP buffers, fixed (no auto-tuning), the defaults and
// the most a socket may ask for (SetReadBuffer, SetWriteBuffer): the
// most the stack holds of one connection's unacknowledged and unread
// data. gVisor's defaults (1 MiB, growing to 4 MiB) let 32 peers that
// send and never read take more than the VM's 96 MiB; with these, 64
// connections hold at most 10 MiB, and a service that stops reading can
// lower its receive buffer (netsvc's echo does). The receive window is
// what TCP throughput into a VM under TCG needs: 128 KiB gives 27 MB/s,
// 64 KiB 22, 32 KiB 13 (make bench, discard).
const (
	TCPSendBuffer    = 32 << 10
	TCPReceiveBuffer = 128 << 10
)

// Config describes the interface.
type Config struct {
	// Link is the Ethernet link endpoint, e.g. a virtiolink.Endpoint.
	Link stack.LinkEndpoint
	// Addr is the interface's IPv4 address and subnet, e.g. 10.0.0.2/24.
	Addr netip.Prefix
	// Gateway, if valid, is the next hop of the default route.
	Gateway netip.Addr
}

// Stack is a gVisor network stack with one Ethernet interface.
type Stack struct {
	s      *stack.Stack
	cfg    Config
	filter *srcFilter
}

// New creates the stack, its NIC, address and routes: the subnet, the
// limited broadcast 255.255.255.255/32, multicast 224.0.0.0/4 on the link
// (so that any socket may send to a group, as on Linux, not only
// ListenMulticast's) and, given a gateway, the default route.
func New(cfg Config) (*Stack, error) {
	if cfg.Link == nil {
		return nil, errors.New("netstack: no link endpoint")
	}
	if !cfg.Addr.IsValid() || !cfg.Addr.Addr().Is4() {
		return nil, fmt.Errorf("netstack: address %v is not an IPv4 prefix", cfg.Addr)
	}
	if cfg.Gateway.IsValid() && !cfg.Gateway.Is4() {
		return nil, fmt.Errorf("netstack: gateway %v is not IPv4", cfg.Gateway)
	}

	subnet := cfg.Addr.Masked()

	st := &Stack{
		cfg:    cfg,
		filter: newSrcFilter(cfg.Link, subnet),
	}

	// IGMP reports the groups a socket joins (ListenMulticast) and
	// answers routers' queries, so that switches that snoop it pass
	// the group's traffic on.
	ip := ipv4.NewProtocolWithOptions(ipv4.Options{IGMP: ipv4.IGMPOptions{Enabled: true}})
	st.s = stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ip, arp.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol, icmp.NewProtocol4},
		HandleLocal:        true,
	})

	if err := setTCPOptions(st.s); err != nil {
		return nil, err
	}

	if err := st.s.CreateNIC(nicID, st.filter); err != nil {
		return nil, fmt.Errorf("netstack: CreateNIC: %w", asError(err))
	}
	// One ARP request per resolution, not gVisor's default three: a
	// datagram to an address nobody holds (a cluster answer to a forged
	// source, docs/protocol.md §10) then costs the LAN one broadcast.
	nud := stack.DefaultNUDConfigurations()
	nud.MaxMulticastProbes = arpProbes
	if err := st.s.SetNUDConfigurations(nicID, ipv4.ProtocolNumber, nud); err != nil {
		return nil, fmt.Errorf("netstack: ARP probes: %w", asError(err))
	}

	pa := tcpip.ProtocolAddress{
		Protocol: ipv4.ProtocolNumber,
		AddressWithPrefix: tcpip.AddressWithPrefix{
			Address:   tcpip.AddrFrom4(cfg.Addr.Addr().As4()),
			PrefixLen: cfg.Addr.Bits(),
		},
	}
	if err := st.s.AddProtocolAddress(nicID, pa, stack.AddressProperties{}); err != nil {
		return nil, fmt.Errorf("netstack: AddProtocolAddress: %w", asError(err))
	}

	routes := []tcpip.Route{
		{Destination: header.IPv4Broadcast.WithPrefix().Subnet(), NIC: nicID},
		{Destination: pa.AddressWithPrefix.Subnet(), NIC: nicID},
		{Destination: multicastSubnet, NIC: nicID},
	}
	if cfg.Gateway.IsValid() {
		routes = append(routes, tcpip.Route{
			Destination: header.IPv4EmptySubnet,
			Gateway:     tcpip.AddrFrom4(cfg.Gateway.As4()),
			NIC:         nicID,
		})
	}
	st.s.SetRouteTable(routes) // most specific first

	return st, nil
}

// multicastSubnet is IPv4's multicast range, 224.0.0.0/4.
var multicastSubnet = tcpip.AddressWithPrefix{Address: tcpip.AddrFrom4([4]byte{224, 0, 0, 0}), PrefixLen: 4}.Subnet()

// setTCPOptions turns SACK on and fixes the buffer sizes (see
// TCPSendBuffer): Max bounds what sockets may ask with SO_SNDBUF and
// SO_RCVBUF too.
func setTCPOptions(s *stack.Stack) error {
	sack := tcpip.TCPSACKEnabled(true)
	moderate := tcpip.TCPModerateReceiveBufferOption(false)
	snd := tcpip.TCPSendBufferSizeRangeOption{Min: tcp.MinBufferSize, Default: TCPSendBuffer, Max: TCPSendBuffer}
	rcv := tcpip.TCPReceiveBufferSizeRangeOption{Min: tcp.MinBufferSize, Default: TCPReceiveBuffer, Max: TCPReceiveBuffer}

	for _, opt := range []tcpip.SettableTransportProtocolOption{&sack, &moderate, &snd, &rcv} {
		if err := s.SetTransportProtocolOption(tcp.ProtocolNumber, opt); err != nil {
			return fmt.Errorf("netstack: TCP option %T: %w", opt, asError(err))
		}
	}
	return nil
}

// GVisor returns the underlying gVisor stack.
func (s *Stack) GVisor() *stack.Stack { return s.s }

// Close aborts all endpoints and waits for the stack's goroutines, the
// link endpoint's included: stop the NIC first (e.g. virtio Net.Close).
func (s *Stack) Close() {
	s.s.Destroy()
}

// Info is what an ifconfig command shows.
type Info struct {
	Addr    netip.Prefix
	Gateway netip.Addr // invalid if none
	MAC     net.HardwareAddr
	MTU     uint32

	RxPackets, RxBytes uint64
	TxPackets, TxBytes uint64

	// RxBadSource counts inbound IPv4 packets dropped for a broadcast,
	// multicast or subnet-broadcast source address.
	RxBadSource uint64
	// RxBcastEcho counts ICMP echo requests dropped unanswered for
	// being sent to a broadcast or multicast address.
	RxBcastEcho uint64
	// RxDropped counts other inbound packets the stack discarded
	// (malformed, unknown protocol, bad address, no such port).
	RxDropped uint64
	// TxErrors counts packets the stack failed to send.
	TxErrors uint64

	TCPEstablished uint64 // current TCP connections
}

// Info returns the interface's configuration and counters.
func (s *Stack) Info() Info {
	i := Info{
		Addr:        s.cfg.Addr,
		Gateway:     s.cfg.Gateway,
		RxBadSource: s.filter.bad.Load(),
		RxBcastEcho: s.filter.bcastEcho.Load(),
	}

	if ni, ok := s.s.NICInfo()[nicID]; ok {
		i.MAC = net.HardwareAddr(ni.LinkAddress)
		i.MTU = ni.MTU
		i.RxPackets = ni.Stats.Rx.Packets.Value()
		i.RxBytes = ni.Stats.Rx.Bytes.Value()
		i.TxPackets = ni.Stats.Tx.Packets.Value()
		i.TxBytes = ni.Stats.Tx.Bytes.Value()
		i.RxDropped = ni.Stats.MalformedL4RcvdPackets.Value() + ni.Stats.DisabledRx.Packets.Value()
		i.TxErrors = ni.Stats.TxPacketsDroppedNoBufferSpace.Value()
	}

	st := s.s.Stats()
	i.RxDropped += st.IP.MalformedPacketsReceived.Value() +
		st.IP.InvalidDestinationAddressesReceived.Value() +
		st.IP.InvalidSourceAddressesReceived.Value() +
		st.UDP.UnknownPortErrors.Value() +
		st.UDP.ReceiveBufferErrors.Value() +
		st.UDP.MalformedPacketsReceived.Value() +
		st.UDP.ChecksumErrors.Value()
	i.TxErrors += st.IP.OutgoingPacketErrors.Value()
	i.TCPEstablished = st.TCP.CurrentEstablished.Value()

	return i
}

// String formats i like ifconfig.
func (i Info) String() string {
	gw := ""
	if i.Gateway.IsValid() {
		gw = " gateway " + i.Gateway.String()
	}
	return fmt.Sprintf("inet %v%s mtu %d\nether %v\nrx packets %d bytes %d dropped %d bad-source %d bcast-echo %d\ntx packets %d bytes %d errors %d\ntcp established %d\n",
		i.Addr, gw, i.MTU, i.MAC,
		i.RxPackets, i.RxBytes, i.RxDropped, i.RxBadSource, i.RxBcastEcho,
		i.TxPackets, i.TxBytes, i.TxErrors, i.TCPEstablished)
}

// srcFilter sits between the link endpoint and the stack and drops
// inbound IPv4 packets gVisor would otherwise accept:
//   - from a source no host may have: limited broadcast, multicast or
//     the subnet broadcast (RFC 1122 §3.2.1.3, §3.3.6);
//   - ICMP echo requests to a broadcast or multicast address, IP or
//     link layer, which RFC 1122 §3.2.2.6 lets a host discard: answered,
//     one forged request has every node on the LAN answer its victim.
type srcFilter struct {
	nested.Endpoint
	bcast     tcpip.Address // subnet broadcast, or empty for /31, /32
	bad       atomic.Uint64
	bcastEcho atomic.Uint64
}

func newSrcFilter(child stack.LinkEndpoint, subnet netip.Prefix) *srcFilter {
	f := &srcFilter{}

	if ip4.HasBroadcast(subnet) {
		f.bcast = tcpip.AddrFrom4(ip4.Broadcast(subnet).As4())
	}

	f.Endpoint.Init(child, f)

	return f
}

// DeliverNetworkPacket implements stack.NetworkDispatcher.
func (f *srcFilter) DeliverNetworkPacket(proto tcpip.NetworkProtocolNumber, pkt *stack.PacketBuffer) {
	if proto == header.IPv4ProtocolNumber {
		if h, ok := pkt.Data().PullUp(header.IPv4MinimumSize); ok {
			ip := header.IPv4(h)

			if f.isBroadcast(ip.SourceAddress()) {
				f.bad.Add(1)
				return
			}
			if f.broadcastEcho(pkt, ip) {
				f.bcastEcho.Add(1)
				return
			}
		}
	}

	f.Endpoint.DeliverNetworkPacket(proto, pkt)
}

// isBroadcast reports whether a is a broadcast or multicast address.
func (f *srcFilter) isBroadcast(a tcpip.Address) bool {
	return a == header.IPv4Broadcast || header.IsV4MulticastAddress(a) || a == f.bcast
}

// broadcastEcho reports whether pkt, with IPv4 header ip, is an ICMP
// echo request sent to a broadcast or multicast address.
func (f *srcFilter) broadcastEcho(pkt *stack.PacketBuffer, ip header.IPv4) bool {
	if ip.Protocol() != uint8(header.ICMPv4ProtocolNumber) || ip.FragmentOffset() != 0 {
		return false
	}

	hlen := int(ip.HeaderLength())
	h, ok := pkt.Data().PullUp(hlen + 1)
	if hlen < header.IPv4MinimumSize || !ok || header.ICMPv4Type(h[hlen]) != header.ICMPv4Echo {
		return false
	}

	return f.isBroadcast(ip.DestinationAddress()) ||
		pkt.PktType == tcpip.PacketBroadcast || pkt.PktType == tcpip.PacketMulticast
}
