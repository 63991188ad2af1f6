// Package netsvc holds the kernel's small network services — the classic
// echo (RFC 862) and discard (RFC 863) servers — and the console commands
// that send and watch UDP datagrams. It uses only the standard net
// interfaces, so it runs the same over the kernel's netstack and, in
// tests, over the host's sockets.
package netsvc

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Limits of the TCP services, so that idle or hostile peers cannot pin
// the kernel's memory: each connection holds a goroutine and the stack's
// buffers.
const (
	MaxConns    = 32               // per service; more are closed at once
	IdleTimeout = 60 * time.Second // a connection silent this long is closed
)

// Stats counts what the services did.
type Stats struct {
	EchoedUDP    atomic.Uint64 // datagrams echoed
	EchoedTCP    atomic.Uint64 // connections served
	DiscardConns atomic.Uint64
	DiscardBytes atomic.Uint64
	Refused      atomic.Uint64 // connections closed at once: MaxConns reached
}

// String renders the counters one per line, for /net/services.
func (s *Stats) String() string {
	return fmt.Sprintf("echo_udp %d\necho_tcp %d\ndiscard_conns %d\ndiscard_bytes %d\nrefused %d\n",
		s.EchoedUDP.Load(), s.EchoedTCP.Load(), s.DiscardConns.Load(), s.DiscardBytes.Load(), s.Refused.Load())
}

const maxDatagram = 65535

// EchoUDP answers every datagram on pc with the same bytes until pc is
// closed.
func (s *Stats) EchoUDP(pc net.PacketConn) error {
	buf := make([]byte, maxDatagram)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return err
		}
		if _, err := pc.WriteTo(buf[:n], from); err == nil {
			s.EchoedUDP.Add(1)
		}
	}
}

// EchoTCP sends back what each connection sends, until l is closed.
func (s *Stats) EchoTCP(l net.Listener) error {
	return s.serve(l, func(c net.Conn) {
		s.EchoedTCP.Add(1)
		readAll(c, func(b []byte) error {
			_, err := c.Write(b)
			return err
		})
	})
}

// Discard reads and drops what each connection sends, until l is closed.
func (s *Stats) Discard(l net.Listener) error {
	return s.serve(l, func(c net.Conn) {
		s.DiscardConns.Add(1)
		readAll(c, func(b []byte) error {
			s.DiscardBytes.Add(uint64(len(b)))
			return nil
		})
	})
}

// readAll hands what c sends to use until EOF, an error, or IdleTimeout
// of silence.
func readAll(c net.Conn, use func([]byte) error) {
	buf := make([]byte, 32<<10)
	for {
		c.SetReadDeadline(time.Now().Add(IdleTimeout))
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

func (s *Stats) serve(l net.Listener, handle func(net.Conn)) error {
	slots := make(chan struct{}, MaxConns)
	for {
		c, err := l.Accept()
		if err != nil {
			return err
		}
		select {
		case slots <- struct{}{}:
		default:
			s.Refused.Add(1)
			c.Close()
			continue
		}
		go func() {
			defer func() { <-slots }()
			defer c.Close()
			handle(c)
		}()
	}
}

// ListenPacketFunc opens a UDP socket (net.ListenPacket in the kernel).
type ListenPacketFunc func(network, address string) (net.PacketConn, error)

// Registrar is the part of the shell that takes commands.
type Registrar interface {
	Register(name, usage, help string, fn func(w io.Writer, args []string) error)
}

// MaxWatch bounds udprecv, so a typo cannot take the console for hours.
const MaxWatch = 10 * time.Minute

// Commands registers udpsend and udprecv.
func Commands(r Registrar, listen ListenPacketFunc) {
	r.Register("udpsend", "addr:port text...", "send one UDP datagram (broadcast allowed)", func(w io.Writer, args []string) error {
		if len(args) < 2 {
			return errors.New("usage: udpsend addr:port text...")
		}
		to, err := net.ResolveUDPAddr("udp4", args[0])
		if err != nil || to.IP == nil || to.Port == 0 {
			return fmt.Errorf("bad address %q: want a.b.c.d:port", args[0])
		}
		pc, err := listen("udp4", ":0")
		if err != nil {
			return err
		}
		defer pc.Close()
		msg := strings.Join(args[1:], " ")
		n, err := pc.WriteTo([]byte(msg), to)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "sent %d bytes to %s\n", n, to)
		return err
	})
	r.Register("udprecv", "port [seconds]", "print the UDP datagrams that arrive on port (default 5 s)", func(w io.Writer, args []string) error {
		if len(args) < 1 || len(args) > 2 {
			return errors.New("usage: udprecv port [seconds]")
		}
		port, err := strconv.ParseUint(args[0], 10, 16)
		if err != nil || port == 0 {
			return fmt.Errorf("bad port %q", args[0])
		}
		wait := 5 * time.Second
		if len(args) == 2 {
			secs, err := strconv.ParseFloat(args[1], 64)
			if err != nil || secs <= 0 || time.Duration(secs*float64(time.Second)) > MaxWatch {
				return fmt.Errorf("bad seconds %q: want 0 < seconds <= %v", args[1], MaxWatch.Seconds())
			}
			wait = time.Duration(secs * float64(time.Second))
		}
		pc, err := listen("udp4", fmt.Sprintf(":%d", port))
		if err != nil {
			return err
		}
		defer pc.Close()
		fmt.Fprintf(w, "listening on udp port %d for %v\n", port, wait)
		return Watch(w, pc, time.Now().Add(wait))
	})
}

// Watch prints each datagram that arrives on pc until deadline, then how
// many there were.
func Watch(w io.Writer, pc net.PacketConn, deadline time.Time) error {
	if err := pc.SetReadDeadline(deadline); err != nil {
		return err
	}
	buf := make([]byte, maxDatagram)
	count := 0
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				_, err = fmt.Fprintf(w, "%d datagrams\n", count)
				return err
			}
			return err
		}
		count++
		fmt.Fprintf(w, "from %s: %q\n", from, buf[:n])
	}
}
