package netstack

import (
	"fmt"
	"net"
	"net/netip"

	"gvisor.dev/gvisor/pkg/tcpip"
)

// ListenMulticast returns a UDP socket for a link-local multicast
// protocol such as mDNS (RFC 6762): bound to group's port on every
// address and a member of group on the interface (IGMP reports it), it
// receives the group's datagrams and unicast ones to the port, which
// ReadFromTo tells apart. Datagrams to other groups are not delivered.
// What it sends, to the group or to one host, leaves the interface with
// IP TTL ttl (RFC 6762 §11: 255, so that receivers may check that it
// comes from the link) and is not looped back: nothing else on the node
// listens to the group, and the sender would only read its own words.
// Closing the socket leaves the group.
func (s *Stack) ListenMulticast(group netip.AddrPort, ttl uint8) (net.PacketConn, error) {
	if a := group.Addr(); !a.Is4() || !a.IsMulticast() || group.Port() == 0 {
		return nil, fmt.Errorf("netstack: multicast group %v: want an IPv4 multicast address and a port", group)
	}

	c, err := s.udp(&tcpip.FullAddress{Port: group.Port()}, nil)
	if err != nil {
		return nil, err
	}

	gaddr := tcpip.AddrFrom4(group.Addr().As4())
	so := c.ep.SocketOptions()
	so.SetMulticastLoop(false)
	steps := []struct {
		what string
		do   func() tcpip.Error
	}{
		// The group is on the link: sent there without a route.
		{"interface", func() tcpip.Error { return c.ep.SetSockOpt(&tcpip.MulticastInterfaceOption{NIC: nicID}) }},
		{"join", func() tcpip.Error {
			return c.ep.SetSockOpt(&tcpip.AddMembershipOption{NIC: nicID, MulticastAddr: gaddr})
		}},
		{"multicast TTL", func() tcpip.Error { return c.ep.SetSockOptInt(tcpip.MulticastTTLOption, int(ttl)) }},
		{"TTL", func() tcpip.Error { return c.ep.SetSockOptInt(tcpip.IPv4TTLOption, int(ttl)) }},
	}
	for _, st := range steps {
		if terr := st.do(); terr != nil {
			c.Close()
			return nil, fmt.Errorf("netstack: multicast %v: %s: %w", group, st.what, asError(terr))
		}
	}

	return c, nil
}
