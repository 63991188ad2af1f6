package netstack

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

var mdnsGroup = netip.MustParseAddrPort("224.0.0.251:5353")

// readerTo is the socket's ReadFromTo, as a service sees it.
type readerTo interface {
	ReadFromTo(b []byte) (int, netip.AddrPort, netip.Addr, error)
}

// readTo reads one datagram from c and says where it was sent.
func readTo(t *testing.T, c net.PacketConn) (msg string, from netip.AddrPort, to netip.Addr) {
	t.Helper()
	r, ok := c.(readerTo)
	if !ok {
		t.Fatalf("%T has no ReadFromTo", c)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 1500)
	n, from, to, err := r.ReadFromTo(buf)
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n]), from, to
}

// tap keeps a device's transmitted frames for a test to look through.
func tap() (func([]byte), <-chan []byte) {
	ch := make(chan []byte, 1024)
	return func(f []byte) {
		select {
		case ch <- bytes.Clone(f):
		default: // the test looks at the first ones
		}
	}, ch
}

// waitFrame returns the IPv4 packet of the first frame on ch that match
// accepts, or fails after 10 s.
func waitFrame(t *testing.T, ch <-chan []byte, what string, match func(header.Ethernet, header.IPv4) bool) header.IPv4 {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case f := <-ch:
			eth := header.Ethernet(f)
			if len(f) < header.EthernetMinimumSize+header.IPv4MinimumSize || eth.Type() != header.IPv4ProtocolNumber {
				continue
			}
			if ip := header.IPv4(f[header.EthernetMinimumSize:]); match(eth, ip) {
				return ip
			}
		case <-timeout:
			t.Fatalf("no %s sent", what)
		}
	}
}

// sentTo matches a UDP datagram to dst.
func sentTo(dst netip.Addr) func(header.Ethernet, header.IPv4) bool {
	return func(_ header.Ethernet, ip header.IPv4) bool {
		return ip.Protocol() == uint8(header.UDPProtocolNumber) && ip.DestinationAddress() == tcpip.AddrFrom4(dst.As4())
	}
}

func TestMulticast(t *testing.T) {
	tapA, fromA := tap()
	tapB, fromB := tap()
	a, b := tappedPair(t, tapA, tapB)

	mb, err := b.ListenMulticast(mdnsGroup, 255)
	if err != nil {
		t.Fatal(err)
	}
	defer mb.Close()
	ma, err := a.ListenMulticast(mdnsGroup, 255)
	if err != nil {
		t.Fatal(err)
	}
	defer ma.Close()

	// The join: B reports its membership with IGMP (to 224.0.0.22,
	// IGMPv3, or the group itself, IGMPv2), with TTL 1.
	ip := waitFrame(t, fromB, "IGMP report", func(_ header.Ethernet, ip header.IPv4) bool {
		return ip.Protocol() == uint8(header.IGMPProtocolNumber) && bytes.Contains(ip.Payload(), []byte{224, 0, 0, 251})
	})
	if ip.TTL() != 1 {
		t.Errorf("IGMP report with TTL %d, want 1", ip.TTL())
	}

	// A datagram to a group B has not joined is not delivered (the one
	// behind it is read first) and counted dropped.
	dropped := b.Info().RxDropped
	for _, dst := range []string{"224.0.0.252:5353", mdnsGroup.String()} {
		if _, err := ma.WriteTo([]byte("to "+dst), net.UDPAddrFromAddrPort(netip.MustParseAddrPort(dst))); err != nil {
			t.Fatalf("WriteTo %s: %v", dst, err)
		}
	}
	msg, from, to := readTo(t, mb)
	if msg != "to "+mdnsGroup.String() || from != netip.MustParseAddrPort("10.0.0.1:5353") || to != mdnsGroup.Addr() {
		t.Errorf("B read %q from %v to %v, want the group's datagram from 10.0.0.1:5353 to %v", msg, from, to, mdnsGroup.Addr())
	}
	if d := b.Info().RxDropped; d <= dropped {
		t.Errorf("B's dropped count %d, was %d: the other group's datagram is not counted", d, dropped)
	}

	// Sent to the group: its MAC (RFC 1112 §6.4), TTL 255.
	ip = waitFrame(t, fromA, "datagram to the group", sentTo(mdnsGroup.Addr()))
	if ip.TTL() != 255 {
		t.Errorf("multicast sent with TTL %d, want 255", ip.TTL())
	}

	// B answers A alone, with TTL 255 too; its own multicast is not
	// looped back to it (else it would be read before A's answer).
	if _, err := mb.WriteTo([]byte("B to the group"), net.UDPAddrFromAddrPort(mdnsGroup)); err != nil {
		t.Fatal(err)
	}
	if _, err := mb.WriteTo([]byte("unicast"), &net.UDPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 5353}); err != nil {
		t.Fatal(err)
	}
	if _, err := ma.WriteTo([]byte("answer"), &net.UDPAddr{IP: net.IPv4(10, 0, 0, 2), Port: 5353}); err != nil {
		t.Fatal(err)
	}
	if msg, _, to := readTo(t, mb); msg != "answer" || to != netip.MustParseAddr("10.0.0.2") {
		t.Errorf("B read %q to %v, want A's answer to 10.0.0.2", msg, to)
	}
	if msg, _, _ := readTo(t, ma); msg != "B to the group" {
		t.Errorf("A read %q, want B's multicast", msg)
	}
	if msg, _, to := readTo(t, ma); msg != "unicast" || to != netip.MustParseAddr("10.0.0.1") {
		t.Errorf("A read %q to %v, want B's unicast to 10.0.0.1", msg, to)
	}
	waitFrame(t, fromB, "multicast", sentTo(mdnsGroup.Addr())) // sent first
	ip = waitFrame(t, fromB, "unicast datagram", sentTo(netip.MustParseAddr("10.0.0.1")))
	if ip.TTL() != 255 {
		t.Errorf("unicast sent with TTL %d, want 255", ip.TTL())
	}

	// Closing leaves the group: a plain socket on the port gets unicast
	// but no longer the group's datagrams.
	mb.Close()
	pb, err := b.ListenPacket("udp", ":5353")
	if err != nil {
		t.Fatal(err)
	}
	defer pb.Close()
	ma.WriteTo([]byte("after close"), net.UDPAddrFromAddrPort(mdnsGroup))
	ma.WriteTo([]byte("marker"), &net.UDPAddr{IP: net.IPv4(10, 0, 0, 2), Port: 5353})
	if msg, _ := readFrom(t, pb); msg != "marker" {
		t.Errorf("B read %q after leaving the group, want only the unicast marker", msg)
	}
}

// TestMulticastMAC: a datagram to the group goes to the group's Ethernet
// address, 01:00:5e and the group's low 23 bits (RFC 1112 §6.4).
func TestMulticastMAC(t *testing.T) {
	tapA, fromA := tap()
	a, _ := tappedPair(t, tapA, nil)
	ma, err := a.ListenMulticast(mdnsGroup, 255)
	if err != nil {
		t.Fatal(err)
	}
	defer ma.Close()
	if _, err := ma.WriteTo([]byte("x"), net.UDPAddrFromAddrPort(mdnsGroup)); err != nil {
		t.Fatal(err)
	}
	want := tcpip.LinkAddress([]byte{0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb})
	var dst tcpip.LinkAddress
	waitFrame(t, fromA, "datagram to the group", func(eth header.Ethernet, ip header.IPv4) bool {
		dst = eth.DestinationAddress()
		return sentTo(mdnsGroup.Addr())(eth, ip)
	})
	if dst != want {
		t.Errorf("sent to %v, want %v", dst, want)
	}
}

func TestListenMulticastRefuses(t *testing.T) {
	a, _ := pair(t)
	for _, g := range []string{"10.0.0.2:5353", "224.0.0.251:0", "[ff02::fb]:5353", "255.255.255.255:5353"} {
		if c, err := a.ListenMulticast(netip.MustParseAddrPort(g), 255); err == nil {
			c.Close()
			t.Errorf("ListenMulticast(%s) succeeded", g)
		}
	}
	// The port is taken: a second socket on it is refused.
	c, err := a.ListenMulticast(mdnsGroup, 255)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c2, err := a.ListenMulticast(mdnsGroup, 255); err == nil {
		c2.Close()
		t.Error("a second socket on the port succeeded")
	}
}
