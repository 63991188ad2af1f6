package netstack

import (
	"context"
	"net"
	"os"
	"sync"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/waiter"
)

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
