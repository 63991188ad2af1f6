// Package netsvc holds the kernel's small network services — the classic
// echo (RFC 862), discard (RFC 863) and, over TCP only, chargen (RFC 864)
// servers — and Watch, which prints the datagrams that arrive on a
// socket (the console's udprecv). It uses only small interfaces (the
// standard net ones and PacketConn), so it runs the same over the
// kernel's netstack and, in tests, over the host's sockets or fakes.
//
// The services are open to the LAN, so none can be turned against it or
// against the node:
//
//   - UDP echo answers only datagrams sent to the node's own address, so
//     a broadcast with a forged source does not make every node answer
//     the victim; never a source port below 1024 (MinEchoPort), so a
//     forged datagram from another node's echo (or chargen, daytime...)
//     port does not start an endless loop between the two, nor the
//     cluster's port 9710 (ClusterPort), so that a forged one does not
//     land in a node's gossip socket as our own message; and at most
//     EchoRate Ethernet frames a second with bursts of EchoBurst (a
//     token bucket), which bounds what a forged source can reflect to a
//     victim to about 300 KB/s. A person or a test checking
//     reachability sends far less. Each refusal is counted (Stats).
//   - TCP echo, discard and chargen serve at most MaxConns connections
//     each, and at most MaxPerSource (8) from one address, all three
//     together; a connection silent for IdleTimeout is closed; a peer that
//     takes nothing of what is sent for WriteTimeout is reset. Each
//     connection takes its share of a memory Budget (6 MiB) common to
//     the services — its
//     buffer here, its goroutine, and the stack buffers it asks for with
//     SetReadBuffer and SetWriteBuffer: SendBuffer (32 KiB) each way for
//     echo, which stops reading while its peer does not take the echo,
//     so that what the peer sends meanwhile waits in the stack; SendBuffer
//     and RecvBuffer (128 KiB, the window discard's throughput needs)
//     for discard, which reads all the time; ChargenBuffer (256 KiB, four
//     64 KiB segments in flight) to send and SendBuffer to receive for
//     chargen, which a stalled peer pins for WriteTimeout at most. Each
//     service keeps one connection's cost of the budget that the others
//     cannot take, so one peer holding chargen leaves echo and discard
//     served. A connection that does not fit is refused: 64 that send
//     and never read pin at most 6 MiB, not the VM.
package netsvc

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"
)

// Defaults of Config.
const (
	MaxConns      = 32               // per TCP service; more are closed at once
	MaxPerSource  = 8                // TCP connections from one address, all services together
	IdleTimeout   = 60 * time.Second // a connection silent this long is closed
	WriteTimeout  = 10 * time.Second // a peer that takes no echo this long is reset
	Budget        = 6 << 20          // bytes all TCP connections may pin together
	SendBuffer    = 32 << 10         // stack send buffer asked for, per connection
	ChargenBuffer = 256 << 10        // stack send buffer asked for, per chargen connection
	RecvBuffer    = 128 << 10        // stack receive buffer asked for, per discard connection
	EchoRate      = 200              // UDP echo frames per second, sustained
	EchoBurst     = 64               // UDP echo frames at once (a 64 KiB datagram is 45)
	MinEchoPort   = 1024             // UDP echo answers no source port below this
)

// connBuffer is what a TCP connection reads into; connOverhead stands
// for its goroutine's stack and the stack's connection state.
const (
	connBuffer   = 8 << 10
	connOverhead = 16 << 10
)

// Config sets up the services; zero fields take the defaults above.
type Config struct {
	// Addr is the node's own address: UDP echo answers datagrams sent to
	// it, and no others (broadcast, multicast).
	Addr netip.Addr
	// MTU is the link's IP MTU (default 1500): UDP echo counts a
	// datagram's frames at it.
	MTU int

	MaxConns      int
	MaxPerSource  int
	IdleTimeout   time.Duration
	WriteTimeout  time.Duration
	Budget        int64
	SendBuffer    int
	ChargenBuffer int
	RecvBuffer    int
	EchoRate      float64
	EchoBurst     float64

	// Now is the rate limiter's clock (default time.Now).
	Now func() time.Time
}

func (c *Config) setDefaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.MaxConns, MaxConns)
	def(&c.MaxPerSource, MaxPerSource)
	def(&c.MTU, 1500)
	def(&c.SendBuffer, SendBuffer)
	def(&c.ChargenBuffer, ChargenBuffer)
	def(&c.RecvBuffer, RecvBuffer)
	defDur(&c.IdleTimeout, IdleTimeout)
	defDur(&c.WriteTimeout, WriteTimeout)
	if c.Budget <= 0 {
		c.Budget = Budget
	}
	if c.EchoRate <= 0 {
		c.EchoRate = EchoRate
	}
	if c.EchoBurst <= 0 {
		c.EchoBurst = EchoBurst
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Services runs echo and discard with one configuration, one memory
// budget and one set of counters.
type Services struct {
	Stats Stats

	cfg     Config
	budget  *budget
	sources sources
	echo    bucket
}

// New returns the services configured by cfg.
func New(cfg Config) *Services {
	cfg.setDefaults()
	s := &Services{cfg: cfg}
	var reserve [nservices]int64
	for svc := range nservices {
		reserve[svc] = s.connCost(s.buffers(svc))
	}
	s.budget = newBudget(cfg.Budget, reserve)
	s.echo = bucket{rate: cfg.EchoRate, burst: cfg.EchoBurst, tokens: cfg.EchoBurst, last: cfg.Now()}
	return s
}

// connCost returns the bytes of the budget a TCP connection with stack
// buffers of rcvbuf and sndbuf bytes takes.
func (s *Services) connCost(rcvbuf, sndbuf int) int64 {
	return int64(connBuffer + connOverhead + sndbuf + rcvbuf)
}

// Stats counts what the services did.
type Stats struct {
	EchoedUDP   atomic.Uint64 // datagrams echoed
	UDPLowPort  atomic.Uint64 // not echoed: source port below MinEchoPort, or ClusterPort
	UDPNotOurs  atomic.Uint64 // not echoed: sent to a broadcast, multicast or other address
	UDPLimited  atomic.Uint64 // not echoed: over the rate limit
	EchoedTCP   atomic.Uint64 // connections served
	WriteStalls atomic.Uint64 // echo connections reset: the peer took nothing for WriteTimeout

	DiscardConns atomic.Uint64
	DiscardBytes atomic.Uint64
	ChargenConns atomic.Uint64
	ChargenBytes atomic.Uint64

	Refused       atomic.Uint64 // connections closed at once: MaxConns reached
	RefusedSource atomic.Uint64 // connections closed at once: MaxPerSource reached
	OverBudget    atomic.Uint64 // connections closed at once: memory budget spent
}

// String renders the counters one per line, for /net/services.
func (s *Stats) String() string {
	var b strings.Builder
	for _, c := range []struct {
		name string
		v    *atomic.Uint64
	}{
		{"echo_udp", &s.EchoedUDP},
		{"echo_udp_low_port", &s.UDPLowPort},
		{"echo_udp_not_ours", &s.UDPNotOurs},
		{"echo_udp_rate_limited", &s.UDPLimited},
		{"echo_tcp", &s.EchoedTCP},
		{"echo_tcp_write_stalls", &s.WriteStalls},
		{"discard_conns", &s.DiscardConns},
		{"discard_bytes", &s.DiscardBytes},
		{"chargen_conns", &s.ChargenConns},
		{"chargen_bytes", &s.ChargenBytes},
		{"refused", &s.Refused},
		{"refused_source", &s.RefusedSource},
		{"refused_budget", &s.OverBudget},
	} {
		fmt.Fprintf(&b, "%s %d\n", c.name, c.v.Load())
	}
	return b.String()
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
