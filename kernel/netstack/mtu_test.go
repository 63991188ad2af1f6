package netstack

import (
	"bytes"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/header"

	"fornax/drivers/virtio/virtiotest"
)

// frameLog keeps what a tap saw: the largest frame, the MSS options of
// SYNs and the largest TCP and UDP payloads.
type frameLog struct {
	mu                 sync.Mutex
	maxFrame           int
	synMSS             []int
	maxTCP, fragments  int
	maxFragmentPayload int
}

func (l *frameLog) tap(f []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.maxFrame = max(l.maxFrame, len(f))
	if len(f) < header.EthernetMinimumSize+header.IPv4MinimumSize || header.Ethernet(f).Type() != header.IPv4ProtocolNumber {
		return
	}
	ip := header.IPv4(f[header.EthernetMinimumSize:])
	if ip.More() || ip.FragmentOffset() != 0 {
		l.fragments++
		l.maxFragmentPayload = max(l.maxFragmentPayload, len(ip.Payload()))
		return
	}
	if ip.TransportProtocol() != header.TCPProtocolNumber {
		return
	}
	tcp := header.TCP(ip.Payload())
	if tcp.Flags().Contains(header.TCPFlagSyn) {
		l.synMSS = append(l.synMSS, int(header.ParseSynOptions(tcp.Options(), tcp.Flags().Contains(header.TCPFlagAck)).MSS))
	}
	l.maxTCP = max(l.maxTCP, len(tcp.Payload()))
}

// TestMTU1450: over devices offering VIRTIO_NET_F_MTU 1450, as a VXLAN
// overlay's do, the stack's link MTU is 1450, TCP announces MSS 1410
// (gVisor derives it from the route's MTU) and sends full-size segments,
// never more; a UDP datagram larger than the MTU
// leaves in fragments that fit. The simulated devices fail the test if
// any frame exceeds their mtu.
func TestMTU1450(t *testing.T) {
	var la, lb frameLog
	a, b := devicePair(t, func(d *virtiotest.Device) { d.SetMTU(1450) }, la.tap, lb.tap)

	for _, h := range []host{a, b} {
		if m := h.Info().MTU; m != 1450 {
			t.Errorf("link MTU %d, want 1450", m)
		}
	}

	l, err := b.Listen("tcp4", ":9")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	got := make(chan []byte, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		b, _ := io.ReadAll(c)
		got <- b
	}()

	c, err := a.Dial("tcp", "10.0.0.2:9")
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	data := bytes.Repeat([]byte("across the overlay "), 20000)
	if _, err := c.Write(data); err != nil {
		t.Fatal(err)
	}
	c.Close()
	select {
	case b := <-got:
		if !bytes.Equal(b, data) {
			t.Fatalf("received %d bytes, sent %d", len(b), len(data))
		}
	case <-time.After(30 * time.Second):
		t.Fatal("transfer stalled")
	}

	// UDP: 3000 bytes take three fragments.
	ub, err := b.ListenPacket("udp4", "10.0.0.2:7000")
	if err != nil {
		t.Fatal(err)
	}
	defer ub.Close()
	ua, err := a.ListenPacket("udp4", "10.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ua.Close()
	dgram := bytes.Repeat([]byte{0xa5}, 3000)
	if _, err := ua.WriteTo(dgram, &net.UDPAddr{IP: net.IPv4(10, 0, 0, 2), Port: 7000}); err != nil {
		t.Fatal(err)
	}
	ub.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 4000)
	n, _, err := ub.ReadFrom(buf)
	if err != nil || !bytes.Equal(buf[:n], dgram) {
		t.Fatalf("datagram: %d bytes, %v", n, err)
	}

	la.mu.Lock()
	defer la.mu.Unlock()
	lb.mu.Lock()
	defer lb.mu.Unlock()
	t.Logf("A sent frames of at most %d bytes, TCP payloads of %d, %d fragments of at most %d; SYN MSS A %v B %v",
		la.maxFrame, la.maxTCP, la.fragments, la.maxFragmentPayload, la.synMSS, lb.synMSS)
	if len(la.synMSS) != 1 || la.synMSS[0] != 1410 || len(lb.synMSS) != 1 || lb.synMSS[0] != 1410 {
		t.Errorf("SYN MSS A %v, B %v, want [1410] each", la.synMSS, lb.synMSS)
	}
	if la.maxFrame > 14+1450 || lb.maxFrame > 14+1450 {
		t.Errorf("largest frames %d and %d bytes, over 1464", la.maxFrame, lb.maxFrame)
	}
	// Full-size: the MSS less the room gVisor keeps for options,
	// timestamps and SACK blocks (40 bytes at most, RFC 6691), which
	// it takes off every segment whether it sends them or not.
	if la.maxTCP < 1410-40 || la.maxTCP > 1410 {
		t.Errorf("largest TCP payload %d, want full-size segments (1370 to 1410)", la.maxTCP)
	}
	if la.fragments != 3 || la.maxFragmentPayload != (1450-20)&^7 {
		t.Errorf("%d fragments, largest payload %d: want 3, 1424", la.fragments, la.maxFragmentPayload)
	}
}
