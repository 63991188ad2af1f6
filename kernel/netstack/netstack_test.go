package netstack

import (
	"bytes"
	"context"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"io"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"fornax/drivers/virtio"
	"fornax/drivers/virtio/virtiotest"
	"fornax/kernel/netstack/virtiolink"
)

var (
	macA = [6]byte{0x52, 0x54, 0, 0, 0, 0xa}
	macB = [6]byte{0x52, 0x54, 0, 0, 0, 0xb}
)

type host struct {
	*Stack
	nic *virtio.Net
	dev *virtiotest.Device
}

// pair returns stacks A (10.0.0.1/24) and B (10.0.0.2/24), each on a
// virtio.Net over a simulated device, the devices wired back to back.
func pair(t *testing.T) (a, b host) {
	t.Helper()
	return tappedPair(t, nil, nil)
}

// tappedPair is pair with tapA and tapB, if not nil, shown every frame
// A and B transmit before the other device receives it.
func tappedPair(t *testing.T, tapA, tapB func(frame []byte)) (a, b host) {
	t.Helper()
	return devicePair(t, nil, tapA, tapB)
}

// devicePair is tappedPair with both devices set up by setup, if not
// nil, before their drivers start.
func devicePair(t *testing.T, setup func(*virtiotest.Device), tapA, tapB func(frame []byte)) (a, b host) {
	t.Helper()

	mk := func(mac [6]byte, addr string) host {
		mem := virtiotest.NewMemory(16 << 20)
		dev := virtiotest.NewDevice(mem, mac)
		if setup != nil {
			setup(dev)
		}
		return host{nic: &virtio.Net{Regs: dev, Mem: mem}, dev: dev}
	}

	a, b = mk(macA, "10.0.0.1/24"), mk(macB, "10.0.0.2/24")
	virtiotest.Wire(a.dev, b.dev)
	for _, w := range []struct {
		from, to *virtiotest.Device
		tap      func([]byte)
	}{{a.dev, b.dev, tapA}, {b.dev, a.dev, tapB}} {
		if w.tap != nil {
			to, tap := w.to, w.tap
			w.from.OnTransmit = func(f []byte) { tap(f); to.Inject(f) }
		}
	}

	for _, h := range []*host{&a, &b} {
		addr := "10.0.0.1/24"
		if h == &b {
			addr = "10.0.0.2/24"
		}

		if err := h.nic.Init(); err != nil {
			t.Fatal(err)
		}
		stop := virtiotest.ServeIRQ(h.dev, h.nic.HandleInterrupt)

		ep := virtiolink.New(h.nic)
		s, err := New(Config{Link: ep, Addr: netip.MustParsePrefix(addr)})
		if err != nil {
			t.Fatal(err)
		}
		h.Stack = s

		n, dev := h.nic, h.dev
		t.Cleanup(func() {
			n.Close()
			ep.Wait()
			s.Close()
			stop()
			if errs := dev.Errors(); len(errs) > 0 {
				t.Errorf("device protocol errors: %q", errs)
			}
		})
	}

	return a, b
}

func readFrom(t *testing.T, c net.PacketConn) (string, net.Addr) {
	t.Helper()

	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 1500)
	n, from, err := c.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n]), from
}

func TestUDPBroadcast(t *testing.T) {
	a, b := pair(t)

	lb, err := b.ListenPacket("udp", ":9710")
	if err != nil {
		t.Fatal(err)
	}
	defer lb.Close()

	ca, err := a.ListenPacket("udp4", "10.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close()

	for _, dst := range []string{"10.0.0.2", "10.0.0.255", "255.255.255.255"} {
		// net.ParseIP gives the 16-byte form
		to := &net.UDPAddr{IP: net.ParseIP(dst), Port: 9710}
		if _, err := ca.WriteTo([]byte("to "+dst), to); err != nil {
			t.Fatalf("WriteTo %s: %v", dst, err)
		}

		msg, from := readFrom(t, lb)
		if msg != "to "+dst {
			t.Errorf("got %q, want %q", msg, "to "+dst)
		}
		if ua := from.(*net.UDPAddr); !ua.IP.Equal(net.IPv4(10, 0, 0, 1)) || ua.Port != ca.LocalAddr().(*net.UDPAddr).Port {
			t.Errorf("from %v", from)
		}
	}

	// reply to the sender's address as received
	lb.WriteTo([]byte("reply"), &net.UDPAddr{IP: net.IPv4(10, 0, 0, 1), Port: ca.LocalAddr().(*net.UDPAddr).Port})
	if msg, _ := readFrom(t, ca); msg != "reply" {
		t.Errorf("reply %q", msg)
	}

	if _, err := ca.WriteTo([]byte("x"), &net.TCPAddr{IP: net.IPv4(10, 0, 0, 2), Port: 1}); err == nil {
		t.Error("WriteTo a TCPAddr succeeded")
	}
}

func TestTCPEcho(t *testing.T) {
	a, b := pair(t)

	l, err := b.Listen("tcp", ":7")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()

	c, err := a.Dial("tcp", "10.0.0.2:7")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))

	data := bytes.Repeat([]byte("fornax echo "), 20000)
	go c.Write(data)

	got := make([]byte, len(data))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("echo corrupted")
	}

	if i := a.Info(); i.TCPEstablished != 1 || i.TxPackets == 0 || i.RxBytes == 0 {
		t.Errorf("info %+v", i)
	}
}

// udpFrame builds an Ethernet broadcast frame carrying a UDP datagram
// from port 9710.
func udpFrame(src, dst tcpip.Address, dport uint16, payload string) []byte {
	return udpFrameFrom(header.EthernetBroadcastAddress, src, dst, 9710, dport, payload)
}

// udpFrameFrom builds a frame from macA to dstMAC carrying a UDP
// datagram with any addresses and ports.
func udpFrameFrom(dstMAC tcpip.LinkAddress, src, dst tcpip.Address, sport, dport uint16, payload string) []byte {
	const udpLen = header.UDPMinimumSize

	u := header.UDP(make([]byte, udpLen+len(payload)))
	copy(u.Payload(), payload)
	u.Encode(&header.UDPFields{SrcPort: sport, DstPort: dport, Length: uint16(len(u))})
	xsum := header.PseudoHeaderChecksum(header.UDPProtocolNumber, src, dst, uint16(len(u)))
	u.SetChecksum(^u.CalculateChecksum(checksum.Checksum([]byte(payload), xsum)))

	return ipFrame(dstMAC, src, dst, header.UDPProtocolNumber, u)
}

// ipFrame builds a frame from macA to dstMAC carrying an IPv4 packet.
func ipFrame(dstMAC tcpip.LinkAddress, src, dst tcpip.Address, proto tcpip.TransportProtocolNumber, payload []byte) []byte {
	const ipLen = header.IPv4MinimumSize

	f := make([]byte, header.EthernetMinimumSize+ipLen+len(payload))
	header.Ethernet(f).Encode(&header.EthernetFields{
		SrcAddr: tcpip.LinkAddress(macA[:]),
		DstAddr: dstMAC,
		Type:    header.IPv4ProtocolNumber,
	})

	ip := header.IPv4(f[header.EthernetMinimumSize:])
	ip.Encode(&header.IPv4Fields{
		TotalLength: uint16(ipLen + len(payload)),
		TTL:         64,
		Protocol:    uint8(proto),
		SrcAddr:     src,
		DstAddr:     dst,
	})
	ip.SetChecksum(^ip.CalculateChecksum())
	copy(ip[ipLen:], payload)

	return f
}

func TestBadSourceDropped(t *testing.T) {
	_, b := pair(t)

	lb, err := b.ListenPacket("udp", ":9710")
	if err != nil {
		t.Fatal(err)
	}
	defer lb.Close()

	bcast := tcpip.AddrFrom4([4]byte{255, 255, 255, 255})
	for _, src := range [][4]byte{{10, 0, 0, 255}, {255, 255, 255, 255}, {224, 0, 0, 1}} {
		b.dev.Inject(udpFrame(tcpip.AddrFrom4(src), bcast, 9710, "spoofed"))
	}
	b.dev.Inject(udpFrame(tcpip.AddrFrom4([4]byte{10, 0, 0, 9}), bcast, 9710, "genuine"))

	if msg, _ := readFrom(t, lb); msg != "genuine" {
		t.Errorf("received %q", msg)
	}
	if n := b.Info().RxBadSource; n != 3 {
		t.Errorf("RxBadSource %d, want 3", n)
	}
}

func TestSocketFunc(t *testing.T) {
	a, b := pair(t)
	ctx := context.Background()

	// listener: SOCK_STREAM, laddr, no raddr
	v, err := b.SocketFunc(ctx, "tcp", syscall.AF_INET, syscall.SOCK_STREAM, &net.TCPAddr{Port: 80}, nil)
	if err != nil {
		t.Fatal(err)
	}
	l, ok := v.(net.Listener)
	if !ok {
		t.Fatalf("%T is not a net.Listener", v)
	}
	defer l.Close()
	if _, ok := v.(interface{ SetDeadline(time.Time) error }); !ok {
		t.Error("listener lacks SetDeadline")
	}

	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err == nil {
			accepted <- c
		}
	}()

	// dialed: SOCK_STREAM, typed-nil laddr, raddr
	v, err = a.SocketFunc(ctx, "tcp", syscall.AF_INET, syscall.SOCK_STREAM, (*net.TCPAddr)(nil), &net.TCPAddr{IP: net.ParseIP("10.0.0.2"), Port: 80})
	if err != nil {
		t.Fatal(err)
	}
	c, ok := v.(net.Conn)
	if !ok {
		t.Fatalf("%T is not a net.Conn", v)
	}
	defer c.Close()
	c.Write([]byte("hi"))

	sc := <-accepted
	defer sc.Close()
	sc.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 2)
	if _, err := io.ReadFull(sc, buf); err != nil || string(buf) != "hi" {
		t.Fatalf("read %q %v", buf, err)
	}
	if ra := sc.RemoteAddr().(*net.TCPAddr); !ra.IP.Equal(net.IPv4(10, 0, 0, 1)) {
		t.Errorf("remote %v", ra)
	}

	// datagram: bound PacketConn, and dialed Conn
	v, err = b.SocketFunc(ctx, "udp", syscall.AF_INET, syscall.SOCK_DGRAM, &net.UDPAddr{Port: 5353}, nil)
	if err != nil {
		t.Fatal(err)
	}
	pc, ok := v.(net.PacketConn)
	if !ok {
		t.Fatalf("%T is not a net.PacketConn", v)
	}
	defer pc.Close()

	v, err = a.SocketFunc(ctx, "udp", syscall.AF_INET, syscall.SOCK_DGRAM, nil, &net.UDPAddr{IP: net.IPv4(10, 0, 0, 255), Port: 5353})
	if err != nil {
		t.Fatal(err)
	}
	uc := v.(net.Conn)
	defer uc.Close()
	if _, err := uc.Write([]byte("dgram")); err != nil {
		t.Fatal(err)
	}
	if msg, _ := readFrom(t, pc); msg != "dgram" {
		t.Errorf("datagram %q", msg)
	}

	// refused requests
	for _, tc := range []struct {
		family, sotype int
		laddr, raddr   net.Addr
	}{
		{syscall.AF_INET6, syscall.SOCK_STREAM, &net.TCPAddr{Port: 1}, nil},
		{syscall.AF_INET, syscall.SOCK_RAW, nil, &net.IPAddr{}},
		{syscall.AF_INET, syscall.SOCK_STREAM, nil, &net.TCPAddr{IP: net.ParseIP("fe80::1"), Port: 1}},
		{syscall.AF_INET, syscall.SOCK_STREAM, &net.TCPAddr{Port: 80}, nil}, // in use
	} {
		if v, err := b.SocketFunc(ctx, "tcp", tc.family, tc.sotype, tc.laddr, tc.raddr); err == nil {
			t.Errorf("%+v: got %T", tc, v)
		}
	}
}

func TestDialUDPAndLocal(t *testing.T) {
	a, _ := pair(t)

	l, err := a.ListenPacket("udp", ":53")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	c, err := a.Dial("udp", ":53") // unspecified: our own address
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("self"))
	if msg, _ := readFrom(t, l); msg != "self" {
		t.Errorf("got %q", msg)
	}

	for _, addr := range []string{"example.com:80", "[::1]:80", "10.0.0.1", "10.0.0.1:x"} {
		if _, err := a.Dial("tcp", addr); err == nil {
			t.Errorf("Dial %q succeeded", addr)
		}
	}
	if _, err := a.Dial("ip", "10.0.0.2:1"); err == nil {
		t.Error("Dial ip succeeded")
	}
}

func TestNewAndInfo(t *testing.T) {
	nic, _ := virtiotest.Pipe(macA, macB)
	ep := virtiolink.New(nic)

	for _, cfg := range []Config{
		{Addr: netip.MustParsePrefix("10.0.0.1/24")},
		{Link: ep, Addr: netip.MustParsePrefix("fe80::1/64")},
		{Link: ep},
		{Link: ep, Addr: netip.MustParsePrefix("10.0.0.1/24"), Gateway: netip.MustParseAddr("::1")},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}

	s, err := New(Config{Link: ep, Addr: netip.MustParsePrefix("10.0.0.1/24"), Gateway: netip.MustParseAddr("10.0.0.254")})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		nic.Close() // stop the NIC, then the stack
		s.Close()
	}()

	if nud, err := s.GVisor().NUDConfigurations(1, ipv4.ProtocolNumber); err != nil || nud.MaxMulticastProbes != 1 {
		t.Errorf("ARP probes %d, %v", nud.MaxMulticastProbes, err)
	}

	var routes []string
	for _, r := range s.GVisor().GetRouteTable() {
		routes = append(routes, r.String())
	}
	want := []string{"255.255.255.255/32 nic 1", "10.0.0.0/24 nic 1", "224.0.0.0/4 nic 1", "0.0.0.0/0 via 10.0.0.254 nic 1"}
	if strings.Join(routes, ", ") != strings.Join(want, ", ") {
		t.Errorf("routes %q, want %q", routes, want)
	}

	i := s.Info()
	if i.Addr.String() != "10.0.0.1/24" || i.Gateway.String() != "10.0.0.254" ||
		i.MAC.String() != "52:54:00:00:00:0a" || i.MTU != 1500 {
		t.Errorf("info %+v", i)
	}
	if str := i.String(); !strings.Contains(str, "inet 10.0.0.1/24 gateway 10.0.0.254 mtu 1500") {
		t.Errorf("String() = %q", str)
	}
}
