package netstack

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"syscall"

	"gvisor.dev/gvisor/pkg/tcpip"
)

// ListenPacket returns a UDP socket bound to address ("host:port", host
// an IPv4 literal or empty for any). Like a Linux socket with
// SO_BROADCAST, it may send to the subnet and limited broadcast
// addresses; bound to the any address it receives unicast and both kinds
// of broadcast.
func (s *Stack) ListenPacket(network, address string) (net.PacketConn, error) {
	if err := checkNetwork(network, "udp"); err != nil {
		return nil, err
	}

	la, err := parseAddr(address)
	if err != nil {
		return nil, opError("listen", network, nil, err)
	}

	return s.udp(&la, nil)
}

// Listen returns a TCP listener on address.
func (s *Stack) Listen(network, address string) (net.Listener, error) {
	if err := checkNetwork(network, "tcp"); err != nil {
		return nil, err
	}

	la, err := parseAddr(address)
	if err != nil {
		return nil, opError("listen", network, nil, err)
	}

	return s.listenTCP(la)
}

// Dial connects to address over "tcp" or "udp".
func (s *Stack) Dial(network, address string) (net.Conn, error) {
	return s.DialContext(context.Background(), network, address)
}

// DialContext is Dial with a context bounding the TCP handshake.
func (s *Stack) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	ra, err := parseAddr(address)
	if err != nil {
		return nil, opError("dial", network, nil, err)
	}

	switch {
	case checkNetwork(network, "tcp") == nil:
		return s.dialTCP(ctx, tcpip.FullAddress{}, ra)
	case checkNetwork(network, "udp") == nil:
		return s.udp(nil, &ra)
	}

	return nil, net.UnknownNetworkError(network)
}

// SocketFunc implements the contract of TamaGo's net.SocketFunc: it
// returns a net.Listener (SOCK_STREAM, laddr without raddr), a dialed
// net.Conn (SOCK_STREAM with raddr), or for SOCK_DGRAM a net.PacketConn
// bound to laddr, connected to raddr if given. laddr and raddr are
// *net.TCPAddr or *net.UDPAddr, or nil.
func (s *Stack) SocketFunc(ctx context.Context, network string, family, sotype int, laddr, raddr net.Addr) (interface{}, error) {
	if family != syscall.AF_INET && family != syscall.AF_UNSPEC {
		return nil, syscall.EAFNOSUPPORT
	}

	la, err := fullAddr(laddr)
	if err != nil {
		return nil, err
	}
	ra, err := fullAddr(raddr)
	if err != nil {
		return nil, err
	}

	switch sotype {
	case syscall.SOCK_STREAM:
		if ra != nil {
			var local tcpip.FullAddress
			if la != nil {
				local = *la
			}
			return s.dialTCP(ctx, local, *ra)
		}
		if la == nil {
			la = &tcpip.FullAddress{}
		}
		return s.listenTCP(*la)
	case syscall.SOCK_DGRAM:
		if la == nil && ra == nil {
			la = &tcpip.FullAddress{}
		}
		return s.udp(la, ra)
	}

	return nil, syscall.EPROTONOSUPPORT
}

// local maps an unspecified destination to the interface's own address,
// as Go's net does for Dial(":port").
func (s *Stack) local(ra *tcpip.FullAddress) {
	if ra.Addr.Len() == 0 || ra.Addr == tcpip.AddrFrom4([4]byte{}) {
		ra.Addr = tcpip.AddrFrom4(s.cfg.Addr.Addr().As4())
	}
}

func checkNetwork(network, want string) error {
	if network == want || network == want+"4" {
		return nil
	}
	return net.UnknownNetworkError(network)
}

// parseAddr parses "host:port" with host an IPv4 literal or empty.
func parseAddr(address string) (tcpip.FullAddress, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return tcpip.FullAddress{}, err
	}

	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return tcpip.FullAddress{}, fmt.Errorf("bad port %q", port)
	}

	a := tcpip.FullAddress{Port: uint16(p)}

	if host != "" {
		ip, err := netip.ParseAddr(host)
		if err != nil {
			return tcpip.FullAddress{}, fmt.Errorf("%q is not an IP address", host)
		}
		ip = ip.Unmap()
		if !ip.Is4() {
			return tcpip.FullAddress{}, fmt.Errorf("%v: IPv6 is not supported", ip)
		}
		if !ip.IsUnspecified() {
			a.Addr = tcpip.AddrFrom4(ip.As4())
		}
	}

	return a, nil
}

// fullAddr converts a *net.TCPAddr or *net.UDPAddr; nil gives nil.
func fullAddr(addr net.Addr) (*tcpip.FullAddress, error) {
	var ip net.IP
	var port int

	switch a := addr.(type) {
	case nil:
		return nil, nil
	case *net.TCPAddr:
		if a == nil {
			return nil, nil
		}
		ip, port = a.IP, a.Port
	case *net.UDPAddr:
		if a == nil {
			return nil, nil
		}
		ip, port = a.IP, a.Port
	default:
		return nil, fmt.Errorf("netstack: unsupported address type %T", addr)
	}

	fa := &tcpip.FullAddress{Port: uint16(port)}

	if len(ip) == 0 || ip.IsUnspecified() {
		return fa, nil
	}

	ip4 := ip.To4()
	if ip4 == nil {
		return nil, syscall.EAFNOSUPPORT
	}
	fa.Addr = tcpip.AddrFrom4Slice(ip4)

	return fa, nil
}

func tcpAddr(a tcpip.FullAddress) net.Addr {
	return &net.TCPAddr{IP: net.IP(a.Addr.AsSlice()), Port: int(a.Port)}
}

func udpAddr(a tcpip.FullAddress) net.Addr {
	return &net.UDPAddr{IP: net.IP(a.Addr.AsSlice()), Port: int(a.Port)}
}

func opError(op, network string, addr net.Addr, err error) error {
	return &net.OpError{Op: op, Net: network, Addr: addr, Err: err}
}
