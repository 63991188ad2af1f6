package netsvc

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

const maxDatagram = 65535

// ClusterPort is the cluster's gossip port (cluster.DefaultPort,
// docs/protocol.md §1). Echo never answers it: a datagram forged from a
// node's cluster socket would put our echo, from our real address, into
// that socket.
const ClusterPort = 9710

// PacketConn is the UDP socket echo needs. ReadFromTo is ReadFrom that
// also returns the address the datagram was sent to (as IP_PKTINFO
// does on Linux); to is invalid when the socket cannot tell.
type PacketConn interface {
	ReadFromTo(b []byte) (n int, from netip.AddrPort, to netip.Addr, err error)
	WriteTo(b []byte, addr net.Addr) (int, error)
}

// EchoUDP answers datagrams on pc with the same bytes (RFC 862) until
// pc is closed, save those the package doc says it refuses.
func (s *Services) EchoUDP(pc PacketConn) error {
	buf := make([]byte, maxDatagram)
	for {
		n, from, to, err := pc.ReadFromTo(buf)
		if err != nil {
			return err
		}
		if !s.mayEcho(n, from, to) {
			continue
		}
		if _, err := pc.WriteTo(buf[:n], net.UDPAddrFromAddrPort(from)); err == nil {
			s.Stats.EchoedUDP.Add(1)
		}
	}
}

// mayEcho decides whether a datagram of n bytes from from to to is
// answered, and counts a refusal.
func (s *Services) mayEcho(n int, from netip.AddrPort, to netip.Addr) bool {
	switch {
	case from.Port() < MinEchoPort || from.Port() == ClusterPort:
		// Well-known ports are services, and some (echo, chargen) answer
		// anything: a forged source would start a loop. The cluster's
		// port would take our echo as gossip.
		s.Stats.UDPLowPort.Add(1)
	case !s.cfg.Addr.IsValid() || to != s.cfg.Addr:
		// Broadcast or multicast: every node would answer the source.
		s.Stats.UDPNotOurs.Add(1)
	case !s.echo.take(s.cfg.Now(), frames(n, s.cfg.MTU)):
		s.Stats.UDPLimited.Add(1)
	default:
		return true
	}
	return false
}

// frames returns how many Ethernet frames an IPv4 UDP datagram of n
// bytes takes at IP MTU mtu: each fragment carries the MTU less the IP
// header, rounded down to 8 bytes (RFC 791), 1480 at 1500 and 1424 at a
// VXLAN overlay's 1450.
func frames(n, mtu int) float64 {
	perFrame := (mtu - 20) &^ 7
	return float64((n + 8 + perFrame - 1) / perFrame) // + UDP header
}

// bucket is a token bucket: rate tokens a second, at most burst saved.
type bucket struct {
	mu          sync.Mutex
	rate, burst float64
	tokens      float64
	last        time.Time
}

// take spends n tokens if there are that many at time now.
func (b *bucket) take(now time.Time, n float64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()

	if dt := now.Sub(b.last).Seconds(); dt > 0 {
		b.tokens = min(b.burst, b.tokens+dt*b.rate)
		b.last = now
	}
	if b.tokens < n {
		return false
	}
	b.tokens -= n
	return true
}
