package netsvc

import (
	"errors"
	"fornax/internal/ipv4"
	"net"
	"net/netip"
	"sync"
	"time"
)

// EchoTCP sends back what each connection sends (RFC 862), until l is
// closed. A peer that takes nothing of the echo for WriteTimeout is
// reset.
func (s *Services) EchoTCP(l net.Listener) error {
	return s.serve(l, svcEcho, func(c net.Conn, buf []byte) {
		s.Stats.EchoedTCP.Add(1)
		s.readAll(c, buf, func(b []byte) error {
			c.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
			_, err := c.Write(b)
			if isTimeout(err) {
				s.Stats.WriteStalls.Add(1)
				abort(c)
			}
			return err
		})
	})
}

// Discard reads and drops what each connection sends (RFC 863), until l
// is closed.
func (s *Services) Discard(l net.Listener) error {
	return s.serve(l, svcDiscard, func(c net.Conn, buf []byte) {
		s.Stats.DiscardConns.Add(1)
		s.readAll(c, buf, func(b []byte) error {
			s.Stats.DiscardBytes.Add(uint64(len(b)))
			return nil
		})
	})
}

// Chargen sends a repeating pattern to each connection (RFC 864) until
// the peer closes it, or takes nothing of it for WriteTimeout (then it is
// reset), until l is closed. It is what the node's transmit path is
// measured with; what the peer sends is read and dropped.
func (s *Services) Chargen(l net.Listener) error {
	return s.serve(l, svcChargen, func(c net.Conn, buf []byte) {
		s.Stats.ChargenConns.Add(1)
		go s.readAll(c, make([]byte, 512), func([]byte) error { return nil })
		fillChargen(buf)
		for {
			c.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
			n, err := c.Write(buf)
			s.Stats.ChargenBytes.Add(uint64(n))
			if isTimeout(err) {
				s.Stats.WriteStalls.Add(1)
				abort(c)
			}
			if err != nil {
				return
			}
		}
	})
}

// fillChargen fills b with RFC 864's lines: 72 of the 95 printable ASCII
// characters, each line starting one further on, ended by CR LF.
func fillChargen(b []byte) {
	for i, line := 0, 0; i < len(b); line++ {
		for k := 0; k < 72 && i < len(b); k++ {
			b[i] = ' ' + byte((line+k)%95)
			i++
		}
		for _, c := range []byte("\r\n") {
			if i < len(b) {
				b[i] = c
				i++
			}
		}
	}
}

// readAll hands what c sends to use until EOF, an error, or IdleTimeout
// of silence.
func (s *Services) readAll(c net.Conn, buf []byte, use func([]byte) error) {
	for {
		c.SetReadDeadline(time.Now().Add(s.cfg.IdleTimeout))
		n, err := c.Read(buf)
		if n > 0 {
			if use(buf[:n]) != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// serve accepts connections on l and runs handle on each, with a buffer
// and the stack buffers of svc, while the service has a slot, the source
// is under MaxPerSource and the budget has room for svc; others are
// reset at once.
func (s *Services) serve(l net.Listener, svc service, handle func(net.Conn, []byte)) error {
	slots := make(chan struct{}, s.cfg.MaxConns)
	rcvbuf, sndbuf := s.buffers(svc)
	cost := s.connCost(rcvbuf, sndbuf)
	for {
		c, err := l.Accept()
		if err != nil {
			return err
		}
		select {
		case slots <- struct{}{}:
		default:
			s.Stats.Refused.Add(1)
			abort(c)
			continue
		}
		src := ipv4.Source(c.RemoteAddr())
		if !s.sources.take(src, s.cfg.MaxPerSource) {
			<-slots
			s.Stats.RefusedSource.Add(1)
			abort(c)
			continue
		}
		if !s.budget.take(svc, cost) {
			s.sources.give(src)
			<-slots
			s.Stats.OverBudget.Add(1)
			abort(c)
			continue
		}
		go func() {
			defer func() {
				s.budget.give(svc, cost)
				s.sources.give(src)
				<-slots
			}()
			defer c.Close()
			limitBuffers(c, rcvbuf, sndbuf)
			handle(c, make([]byte, connBuffer))
		}()
	}
}

// limitBuffers asks the stack for the buffer sizes the budget counts, on
// connections that can be asked (net.TCPConn and the kernel's can).
func limitBuffers(c net.Conn, rcvbuf, sndbuf int) {
	if b, ok := c.(interface{ SetReadBuffer(int) error }); ok {
		b.SetReadBuffer(rcvbuf)
	}
	if b, ok := c.(interface{ SetWriteBuffer(int) error }); ok {
		b.SetWriteBuffer(sndbuf)
	}
}

// abort closes c with a reset (SO_LINGER 0) where the connection
// supports it: its buffers are freed at once, instead of lingering to
// deliver data to a peer that does not take it.
func abort(c net.Conn) {
	if l, ok := c.(interface{ SetLinger(int) error }); ok {
		l.SetLinger(0)
	}
	c.Close()
}

// isTimeout reports whether err is a deadline's; gVisor's has its own
// type, so not os.ErrDeadlineExceeded.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// service names a TCP service, for its buffers and its reserve.
type service int

const (
	svcEcho service = iota
	svcDiscard
	svcChargen
	nservices
)

// buffers returns the stack buffers svc asks for: receive, send.
func (s *Services) buffers(svc service) (rcvbuf, sndbuf int) {
	switch svc {
	case svcDiscard:
		return s.cfg.RecvBuffer, s.cfg.SendBuffer
	case svcChargen:
		return s.cfg.SendBuffer, s.cfg.ChargenBuffer
	}
	return s.cfg.SendBuffer, s.cfg.SendBuffer
}

// budget is a count of bytes that connections take and give back. Each
// service has a reserve, one connection's cost, that the others cannot
// take: a peer holding the whole budget with chargen still leaves room
// for an echo and a discard.
type budget struct {
	mu      sync.Mutex
	left    int64
	reserve [nservices]int64 // bytes kept for each service
	used    [nservices]int64 // bytes each service holds
}

// newBudget sets the reserves when the budget can hold them all,
// otherwise none.
func newBudget(total int64, reserve [nservices]int64) *budget {
	b := &budget{left: total}
	var sum int64
	for _, r := range reserve {
		sum += r
	}
	if sum <= total {
		b.reserve = reserve
	}
	return b
}

// take takes n bytes for svc if that leaves the other services' unused
// reserves whole.
func (b *budget) take(svc service, n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	var kept int64
	for o := range nservices {
		if o != svc {
			kept += max(0, b.reserve[o]-b.used[o])
		}
	}
	if b.left-n < kept {
		return false
	}
	b.left -= n
	b.used[svc] += n
	return true
}

func (b *budget) give(svc service, n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.left += n
	b.used[svc] -= n
}

// sources counts the connections from each address, all services
// together.
type sources struct {
	mu sync.Mutex
	n  map[netip.Addr]int
}

func (s *sources) take(src netip.Addr, max int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n[src] >= max {
		return false
	}
	if s.n == nil {
		s.n = map[netip.Addr]int{}
	}
	s.n[src]++
	return true
}

func (s *sources) give(src netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n[src]--; s.n[src] <= 0 {
		delete(s.n, src)
	}
}
