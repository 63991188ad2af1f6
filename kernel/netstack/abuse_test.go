package netstack

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"fornax/kernel/netsvc"
)

var (
	ipA = tcpip.AddrFrom4([4]byte{10, 0, 0, 1})
	ipB = tcpip.AddrFrom4([4]byte{10, 0, 0, 2})
)

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// echoRequest builds a frame from A (macA, 10.0.0.1) carrying an ICMP
// echo request to dst.
func echoRequest(dstMAC tcpip.LinkAddress, dst tcpip.Address, seq uint16) []byte {
	icmp := header.ICMPv4(make([]byte, header.ICMPv4MinimumSize+8))
	icmp.SetType(header.ICMPv4Echo)
	icmp.SetIdent(0x4658)
	icmp.SetSequence(seq)
	icmp.SetChecksum(^checksum.Checksum(icmp, 0))
	return ipFrame(dstMAC, ipA, dst, header.ICMPv4ProtocolNumber, icmp)
}

// TestBroadcastPingDropped: echo requests to a broadcast or multicast
// address, IP or Ethernet, go unanswered (RFC 1122 §3.2.2.6); a forged
// one would have every node answer its victim.
func TestBroadcastPingDropped(t *testing.T) {
	a, b := pair(t)
	bcastMAC, unicastMAC := header.EthernetBroadcastAddress, tcpip.LinkAddress(macB[:])

	for i, f := range [][]byte{
		echoRequest(bcastMAC, tcpip.AddrFrom4([4]byte{10, 0, 0, 255}), 1),
		echoRequest(bcastMAC, header.IPv4Broadcast, 2),
		echoRequest(tcpip.LinkAddress("\x01\x00\x5e\x00\x00\x01"), tcpip.AddrFrom4([4]byte{224, 0, 0, 1}), 3),
		echoRequest(bcastMAC, ipB, 4),                                       // IP unicast in an Ethernet broadcast
		echoRequest(unicastMAC, tcpip.AddrFrom4([4]byte{10, 0, 0, 255}), 5), // and the other way round
		echoRequest(unicastMAC, ipB, 6),                                     // the one to answer
	} {
		if !b.dev.Inject(f) {
			t.Fatalf("frame %d: no receive buffer", i)
		}
	}

	replies := func(h host) uint64 { return h.GVisor().Stats().ICMP.V4.PacketsSent.EchoReply.Value() }
	waitFor(t, "the unicast echo reply", func() bool {
		return a.GVisor().Stats().ICMP.V4.PacketsReceived.EchoReply.Value() == 1
	})
	// frames are handled in order: the broadcast ones are done with
	if n := replies(b); n != 1 {
		t.Errorf("B sent %d echo replies, want 1", n)
	}
	if n := b.Info().RxBcastEcho; n != 5 {
		t.Errorf("RxBcastEcho %d, want 5", n)
	}
}

// TestReadFromTo: a UDP socket tells where each datagram was sent, and
// its read deadline and Close wake a blocked ReadFromTo.
func TestReadFromTo(t *testing.T) {
	a, b := pair(t)

	lb, err := b.ListenPacket("udp", ":7")
	if err != nil {
		t.Fatal(err)
	}
	defer lb.Close()
	pc := lb.(netsvc.PacketConn)

	ca, err := a.ListenPacket("udp4", "10.0.0.1:40000")
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close()

	buf := make([]byte, 100)
	for _, dst := range []string{"10.0.0.2", "10.0.0.255", "255.255.255.255"} {
		ca.WriteTo([]byte(dst), &net.UDPAddr{IP: net.ParseIP(dst), Port: 7})
		n, from, to, err := pc.ReadFromTo(buf)
		if err != nil || string(buf[:n]) != dst || from.String() != "10.0.0.1:40000" || to.String() != dst {
			t.Errorf("sent to %s: read %q from %v to %v, %v", dst, buf[:n], from, to, err)
		}
	}

	lb.SetReadDeadline(time.Now().Add(-time.Second))
	if _, _, _, err := pc.ReadFromTo(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("past deadline: %v", err)
	}

	// a deadline set while blocked, then Close, wake the reader
	lb.SetReadDeadline(time.Time{})
	done := make(chan error)
	go func() {
		_, _, _, err := pc.ReadFromTo(buf)
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	lb.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if err := <-done; !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("deadline set while blocked: %v", err)
	}
	lb.SetReadDeadline(time.Time{})
	go func() {
		_, _, _, err := pc.ReadFromTo(buf)
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	lb.Close()
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
}

// echoServices runs UDP echo on port 7 of h.
func echoServices(t *testing.T, h host, addr string) *netsvc.Services {
	t.Helper()
	pc, err := h.ListenPacket("udp4", ":7")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	svc := netsvc.New(netsvc.Config{Addr: netip.MustParseAddr(addr)})
	go svc.EchoUDP(pc.(netsvc.PacketConn))
	return svc
}

// TestUDPEchoAbuse: a forged datagram from A's echo port to B's does
// not start a loop between them, and forged broadcasts to port 7 with
// A's address as source are not answered; a genuine client is.
func TestUDPEchoAbuse(t *testing.T) {
	a, b := pair(t)
	sa, sb := echoServices(t, a, "10.0.0.1"), echoServices(t, b, "10.0.0.2")

	b.dev.Inject(udpFrameFrom(tcpip.LinkAddress(macB[:]), ipA, ipB, 7, 7, "loop"))
	b.dev.Inject(udpFrameFrom(header.EthernetBroadcastAddress, ipA, tcpip.AddrFrom4([4]byte{10, 0, 0, 255}), 40000, 7, "subnet"))
	b.dev.Inject(udpFrameFrom(header.EthernetBroadcastAddress, ipA, header.IPv4Broadcast, 40000, 7, "all"))

	waitFor(t, "the forged datagrams", func() bool {
		return sb.Stats.UDPLowPort.Load() == 1 && sb.Stats.UDPNotOurs.Load() == 2
	})
	time.Sleep(200 * time.Millisecond) // a loop would be well under way
	if ea, eb := sa.Stats.EchoedUDP.Load(), sb.Stats.EchoedUDP.Load(); ea+eb != 0 {
		t.Errorf("forged datagrams echoed: A %d, B %d times", ea, eb)
	}

	c, err := a.Dial("udp", "10.0.0.2:7")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte("genuine"))
	buf := make([]byte, 16)
	if n, err := c.Read(buf); err != nil || string(buf[:n]) != "genuine" {
		t.Errorf("genuine echo: %q %v", buf[:n], err)
	}
}

// TestTCPBuffersBounded: what a peer that sends and never reads can make
// a connection hold is bounded by the fixed buffer sizes.
func TestTCPBuffersBounded(t *testing.T) {
	a, b := pair(t)

	l, err := b.Listen("tcp", ":9")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err == nil {
			defer c.Close()
			time.Sleep(10 * time.Second) // accepts, never reads
		}
	}()

	c, err := a.Dial("tcp", "10.0.0.2:9")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var sent int
	buf := make([]byte, 4096)
	for {
		c.SetWriteDeadline(time.Now().Add(300 * time.Millisecond))
		n, err := c.Write(buf)
		sent += n
		if err != nil {
			break
		}
	}
	t.Logf("a peer that never reads took %d bytes", sent)
	if limit := TCPSendBuffer + TCPReceiveBuffer + 16<<10; sent > limit {
		t.Errorf("took %d bytes before stalling, want at most %d", sent, limit)
	}
}

// TestStalledEchoClients: 32 echo clients that send and never read do
// not pin the stack's memory, and are reset after the write timeout, so
// that a new client is served.
func TestStalledEchoClients(t *testing.T) {
	a, b := pair(t)

	l, err := b.Listen("tcp", ":7")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	svc := netsvc.New(netsvc.Config{Addr: netip.MustParseAddr("10.0.0.2"), WriteTimeout: 2 * time.Second, SendBuffer: TCPSendBuffer, RecvBuffer: TCPReceiveBuffer,
		MaxPerSource: netsvc.MaxConns}) // one client address holds every slot here
	go svc.EchoTCP(l)

	heap0 := heap()
	var pushed atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < netsvc.MaxConns; i++ {
		c, err := a.Dial("tcp", "10.0.0.2:7")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 16<<10)
			for {
				c.SetWriteDeadline(time.Now().Add(10 * time.Second))
				n, err := c.Write(buf)
				pushed.Add(int64(n))
				if err != nil {
					return
				}
			}
		}()
	}

	// stalled when nothing more goes through for 300 ms
	for last := int64(-1); pushed.Load() != last; time.Sleep(300 * time.Millisecond) {
		last = pushed.Load()
	}
	grown := heap() - heap0
	t.Logf("32 stalled clients: %d KiB pushed, heap grew by %d KiB", pushed.Load()>>10, grown>>10)
	if grown > 16<<20 {
		t.Errorf("heap grew by %d MiB under 32 stalled clients", grown>>20)
	}

	waitFor(t, "the write timeouts", func() bool { return svc.Stats.WriteStalls.Load() == netsvc.MaxConns })
	wg.Wait() // the resets end the clients' writes

	c, err := a.Dial("tcp", "10.0.0.2:7")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte("served"))
	buf := make([]byte, 6)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "served" {
		t.Errorf("new client after the stall: %q %v", buf, err)
	}
}

func heap() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}
