package mdns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Server runs a Responder on a socket: it reads datagrams, calls Tick
// when it is due and sends what the responder returns. Set, Stats, Host
// and Conflicts are safe from any goroutine. The socket is the caller's
// (on Linux: udp/5353, in the group 224.0.0.251 on one interface).
type Server struct {
	mu   sync.Mutex
	r    *Responder
	conn net.PacketConn
	now  func() time.Time
	poke chan struct{}
	// writeErrs counts datagrams the socket refused.
	writeErrs atomic.Uint64
}

// NewServer returns a Server of r on conn, keeping time by now
// (time.Now if nil).
func NewServer(r *Responder, conn net.PacketConn, now func() time.Time) *Server {
	if now == nil {
		now = time.Now
	}
	return &Server{r: r, conn: conn, now: now, poke: make(chan struct{}, 1)}
}

// Set is Responder.Set, now; what it returns is sent before Set returns,
// so a goodbye is on the wire when Set(info, false) is done.
func (s *Server) Set(info Info, active bool) error {
	s.mu.Lock()
	out, err := s.r.Set(s.now(), info, active)
	s.mu.Unlock()
	s.write(out)
	s.wake()
	return err
}

// Run reads and answers until ctx is done or the socket fails; it
// returns the socket's error, or nil once ctx is done.
func (s *Server) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go s.timer(ctx)
	stop := context.AfterFunc(ctx, func() { s.conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	buf := make([]byte, maxIn+1)
	for {
		n, from, err := s.conn.ReadFrom(buf)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("mdns: read: %w", err)
		}
		ua, ok := from.(*net.UDPAddr)
		if !ok {
			continue
		}
		s.mu.Lock()
		out := s.r.Receive(s.now(), ua.AddrPort(), buf[:n])
		s.mu.Unlock()
		s.write(out)
		s.wake()
	}
}

// timer calls Tick when the responder says it is due.
func (s *Server) timer(ctx context.Context) {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		s.mu.Lock()
		next := s.r.Next()
		s.mu.Unlock()
		wait := time.Hour
		if !next.IsZero() {
			wait = max(next.Sub(s.now()), 0)
		}
		t.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-s.poke:
			continue
		case <-t.C:
		}
		s.mu.Lock()
		out := s.r.Tick(s.now())
		s.mu.Unlock()
		s.write(out)
	}
}

func (s *Server) wake() {
	select {
	case s.poke <- struct{}{}:
	default:
	}
}

func (s *Server) write(out []Packet) {
	for _, p := range out {
		if _, err := s.conn.WriteTo(p.Data, net.UDPAddrFromAddrPort(p.To)); err != nil {
			s.writeErrs.Add(1)
		}
	}
}

// Stats returns the responder's counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.r.Stats()
}

// WriteErrors is the number of datagrams the socket refused.
func (s *Server) WriteErrors() uint64 { return s.writeErrs.Load() }

// Host is Responder.Host.
func (s *Server) Host() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.r.Host()
}

// Conflicts is Responder.Conflicts.
func (s *Server) Conflicts() []Conflict {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.r.Conflicts()
}
