package netstack

import (
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"
)

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
