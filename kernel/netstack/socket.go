package netstack

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"
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

func (s *Stack) listenTCP(la tcpip.FullAddress) (net.Listener, error) {
	wq := new(waiter.Queue)
	ep, terr := s.s.NewEndpoint(tcp.ProtocolNumber, ipv4.ProtocolNumber, wq)
	if terr != nil {
		return nil, asError(terr)
	}

	if terr := ep.Bind(la); terr != nil {
		ep.Close()
		return nil, opError("bind", "tcp", tcpAddr(la), asError(terr))
	}
	if terr := ep.Listen(listenBacklog); terr != nil {
		ep.Close()
		return nil, opError("listen", "tcp", tcpAddr(la), asError(terr))
	}

	return &tcpListener{ep: ep, wq: wq, closed: make(chan struct{})}, nil
}

// listenBacklog is the accept queue of a listener (gonet's too).
const listenBacklog = 10

func (s *Stack) dialTCP(ctx context.Context, la, ra tcpip.FullAddress) (net.Conn, error) {
	s.local(&ra)
	return gonet.DialTCPWithBind(ctx, s.s, la, ra, ipv4.ProtocolNumber)
}

// local maps an unspecified destination to the interface's own address,
// as Go's net does for Dial(":port").
func (s *Stack) local(ra *tcpip.FullAddress) {
	if ra.Addr.Len() == 0 || ra.Addr == tcpip.AddrFrom4([4]byte{}) {
		ra.Addr = tcpip.AddrFrom4(s.cfg.Addr.Addr().As4())
	}
}

// udp returns a UDP socket with SO_BROADCAST, bound to la and connected
// to ra as given.
func (s *Stack) udp(la, ra *tcpip.FullAddress) (*udpConn, error) {
	var wq waiter.Queue

	ep, terr := s.s.NewEndpoint(udp.ProtocolNumber, ipv4.ProtocolNumber, &wq)
	if terr != nil {
		return nil, asError(terr)
	}

	ep.SocketOptions().SetBroadcast(true)
	ep.SocketOptions().SetReceivePacketInfo(true) // for ReadFromTo

	if la != nil {
		if terr := ep.Bind(*la); terr != nil {
			ep.Close()
			return nil, opError("bind", "udp", udpAddr(*la), asError(terr))
		}
	}

	if ra != nil {
		s.local(ra)
		if terr := ep.Connect(*ra); terr != nil {
			ep.Close()
			return nil, opError("connect", "udp", udpAddr(*ra), asError(terr))
		}
	}

	return &udpConn{UDPConn: gonet.NewUDPConn(&wq, ep), ep: ep, wq: &wq}, nil
}

// udpConn is a gonet.UDPConn that takes any IPv4 net.UDPAddr (gonet
// panics on other net.Addr types and reads 16-byte IPs as IPv6) and
// tells where each datagram was sent (ReadFromTo).
type udpConn struct {
	*gonet.UDPConn
	ep tcpip.Endpoint
	wq *waiter.Queue
	rd deadline // for ReadFromTo; gonet keeps its own for ReadFrom
}

// SetDeadline implements net.PacketConn.
func (c *udpConn) SetDeadline(t time.Time) error {
	c.rd.set(t)
	return c.UDPConn.SetDeadline(t)
}

// SetReadDeadline implements net.PacketConn.
func (c *udpConn) SetReadDeadline(t time.Time) error {
	c.rd.set(t)
	return c.UDPConn.SetReadDeadline(t)
}

// ReadFromTo is ReadFrom that also returns the address the datagram was
// sent to, as IP_PKTINFO does on Linux: the node's own address, or a
// broadcast or multicast one. Services use it not to answer broadcasts.
func (c *udpConn) ReadFromTo(b []byte) (n int, from netip.AddrPort, to netip.Addr, err error) {
	entry, readable := waiter.NewChannelEntry(waiter.ReadableEvents)
	c.wq.EventRegister(&entry)
	defer c.wq.EventUnregister(&entry)

	w := tcpip.SliceWriter(b)
	for {
		dl, changed := c.rd.watch()
		if !dl.IsZero() && !time.Now().Before(dl) {
			return 0, from, to, opError("read", "udp", c.LocalAddr(), os.ErrDeadlineExceeded)
		}

		res, terr := c.ep.Read(&w, tcpip.ReadOptions{NeedRemoteAddr: true})
		switch terr.(type) {
		case nil:
			from = netip.AddrPortFrom(netip.AddrFrom4(res.RemoteAddr.Addr.As4()), res.RemoteAddr.Port)
			if cm := res.ControlMessages; cm.HasIPPacketInfo {
				to = netip.AddrFrom4(cm.PacketInfo.DestinationAddr.As4())
			}
			return res.Count, from, to, nil
		case *tcpip.ErrWouldBlock:
		case *tcpip.ErrClosedForReceive:
			return 0, from, to, opError("read", "udp", nil, net.ErrClosed)
		default:
			return 0, from, to, opError("read", "udp", c.LocalAddr(), asError(terr))
		}

		sleep(readable, changed, dl)
	}
}

// sleep waits for readable, changed, or deadline dl if set.
func sleep(readable <-chan struct{}, changed <-chan struct{}, dl time.Time) {
	var timeout <-chan time.Time
	if !dl.IsZero() {
		t := time.NewTimer(time.Until(dl))
		defer t.Stop()
		timeout = t.C
	}

	select {
	case <-readable:
	case <-changed:
	case <-timeout:
	}
}

// deadline is a read deadline that a blocked reader can watch for
// changes.
type deadline struct {
	mu      sync.Mutex
	t       time.Time
	changed chan struct{} // closed by set
}

func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.t = t
	if d.changed != nil {
		close(d.changed)
		d.changed = nil
	}
}

// watch returns the deadline and a channel closed when it changes.
func (d *deadline) watch() (time.Time, <-chan struct{}) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.changed == nil {
		d.changed = make(chan struct{})
	}
	return d.t, d.changed
}

// WriteTo implements net.PacketConn.
func (c *udpConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok || ua == nil {
		return 0, opError("write", "udp", addr, syscall.EINVAL)
	}

	ip := ua.IP.To4()
	if ip == nil {
		return 0, opError("write", "udp", addr, syscall.EAFNOSUPPORT)
	}

	return c.UDPConn.WriteTo(b, &net.UDPAddr{IP: ip, Port: ua.Port})
}

// tcpListener is a listening TCP endpoint. Its connections can be made
// to reset rather than close gracefully (tcpConn.SetLinger). It has the
// deadline methods TamaGo's net expects of every socket; Accept
// deadlines are not supported.
type tcpListener struct {
	ep     tcpip.Endpoint
	wq     *waiter.Queue
	closed chan struct{}
	once   sync.Once
}

// Accept implements net.Listener.
func (l *tcpListener) Accept() (net.Conn, error) {
	entry, readable := waiter.NewChannelEntry(waiter.ReadableEvents)
	l.wq.EventRegister(&entry)
	defer l.wq.EventUnregister(&entry)

	for {
		ep, wq, terr := l.ep.Accept(nil)
		switch terr.(type) {
		case nil:
			return &tcpConn{TCPConn: gonet.NewTCPConn(wq, ep), ep: ep}, nil
		case *tcpip.ErrWouldBlock:
		default:
			return nil, opError("accept", "tcp", l.Addr(), asError(terr))
		}

		select {
		case <-readable:
		case <-l.closed:
			return nil, opError("accept", "tcp", l.Addr(), net.ErrClosed)
		}
	}
}

// Close implements net.Listener.
func (l *tcpListener) Close() error {
	l.once.Do(func() {
		l.ep.Close()
		close(l.closed)
	})
	return nil
}

// Addr implements net.Listener.
func (l *tcpListener) Addr() net.Addr {
	a, err := l.ep.GetLocalAddress()
	if err != nil {
		return nil
	}
	return tcpAddr(a)
}

func (*tcpListener) SetDeadline(time.Time) error      { return os.ErrNoDeadline }
func (*tcpListener) SetReadDeadline(time.Time) error  { return os.ErrNoDeadline }
func (*tcpListener) SetWriteDeadline(time.Time) error { return os.ErrNoDeadline }

// tcpConn is an accepted connection.
type tcpConn struct {
	*gonet.TCPConn
	ep tcpip.Endpoint
}

// SetLinger is net.TCPConn's SetLinger: with sec 0, Close resets the
// connection and frees its buffers at once, instead of keeping them to
// deliver unsent data to a peer that may never take it; sec < 0 restores
// the graceful close.
func (c *tcpConn) SetLinger(sec int) error {
	c.ep.SocketOptions().SetLinger(tcpip.LingerOption{Enabled: sec >= 0, Timeout: time.Duration(max(sec, 0)) * time.Second})
	return nil
}

// SetReadBuffer is net.TCPConn's: it sets the stack's receive buffer,
// hence the window, within [tcp.MinBufferSize, TCPReceiveBuffer].
func (c *tcpConn) SetReadBuffer(bytes int) error {
	c.ep.SocketOptions().SetReceiveBufferSize(int64(min(max(bytes, tcp.MinBufferSize), TCPReceiveBuffer)), true)
	return nil
}

// SetWriteBuffer is net.TCPConn's: it sets the stack's send buffer
// within [tcp.MinBufferSize, TCPSendBuffer].
func (c *tcpConn) SetWriteBuffer(bytes int) error {
	c.ep.SocketOptions().SetSendBufferSize(int64(min(max(bytes, tcp.MinBufferSize), TCPSendBuffer)), true)
	return nil
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
