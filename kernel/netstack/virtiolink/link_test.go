package virtiolink

import (
	"bytes"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/arp"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"

	"fornax/drivers/virtio"
	"fornax/drivers/virtio/virtiotest"
)

var (
	macA  = [6]byte{0x52, 0x54, 0, 0, 0, 0xa}
	macB  = [6]byte{0x52, 0x54, 0, 0, 0, 0xb}
	addrA = tcpip.AddrFrom4([4]byte{10, 0, 0, 1})
	addrB = tcpip.AddrFrom4([4]byte{10, 0, 0, 2})
)

// closer is the NIC side of a test pair: closing it ends the RX goroutine.
type closer interface{ Close() error }

// newStack puts ep on a fresh gVisor stack at addr/24.
func newStack(t *testing.T, ep *Endpoint, nic closer, addr tcpip.Address) *stack.Stack {
	t.Helper()

	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, arp.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol, icmp.NewProtocol4},
	})
	if err := s.CreateNIC(1, ep); err != nil {
		t.Fatal(err)
	}
	pa := tcpip.ProtocolAddress{Protocol: ipv4.ProtocolNumber, AddressWithPrefix: tcpip.AddressWithPrefix{Address: addr, PrefixLen: 24}}
	if err := s.AddProtocolAddress(1, pa, stack.AddressProperties{}); err != nil {
		t.Fatal(err)
	}
	s.SetRouteTable([]tcpip.Route{{Destination: pa.AddressWithPrefix.Subnet(), NIC: 1}})

	t.Cleanup(func() {
		nic.Close()
		ep.Wait() // RX goroutine gone before the stack goes
		s.Destroy()
	})

	return s
}

func pipeStacks(t *testing.T) (a, b *stack.Stack) {
	nicA, nicB := virtiotest.Pipe(macA, macB)
	return newStack(t, New(nicA), nicA, addrA), newStack(t, New(nicB), nicB, addrB)
}

// virtioStacks wires two Nets on simulated devices back to back.
func virtioStacks(t *testing.T, queueSize int) (a, b *stack.Stack, na, nb *virtio.Net) {
	a, b, na, nb, _, _ = virtioStacksDev(t, queueSize, 0)
	return
}

// virtioStacksDev is virtioStacks with the devices, and the offloads in
// decline declined.
func virtioStacksDev(t *testing.T, queueSize int, decline virtio.Offloads) (a, b *stack.Stack, na, nb *virtio.Net, da, db *virtiotest.Device) {
	t.Helper()

	mk := func(mac [6]byte) (*virtio.Net, *virtiotest.Device) {
		mem := virtiotest.NewMemory(16 << 20)
		dev := virtiotest.NewDevice(mem, mac)
		return &virtio.Net{Regs: dev, Mem: mem, QueueSize: queueSize, Decline: decline}, dev
	}

	na, da = mk(macA)
	nb, db = mk(macB)
	virtiotest.Wire(da, db)

	for _, p := range []struct {
		n *virtio.Net
		d *virtiotest.Device
	}{{na, da}, {nb, db}} {
		if err := p.n.Init(); err != nil {
			t.Fatal(err)
		}
		stop := virtiotest.ServeIRQ(p.d, p.n.HandleInterrupt)
		t.Cleanup(stop)
		d := p.d
		t.Cleanup(func() {
			if errs := d.Errors(); len(errs) > 0 {
				t.Errorf("device protocol errors: %q", errs)
			}
		})
	}

	return newStack(t, New(na), na, addrA), newStack(t, New(nb), nb, addrB), na, nb, da, db
}

func ping(t *testing.T, s *stack.Stack, dst tcpip.Address) {
	t.Helper()

	var wq waiter.Queue
	ep, err := s.NewEndpoint(icmp.ProtocolNumber4, ipv4.ProtocolNumber, &wq)
	if err != nil {
		t.Fatal(err)
	}
	c := gonet.NewUDPConn(&wq, ep)
	defer c.Close()

	req := header.ICMPv4(make([]byte, header.ICMPv4MinimumSize+8))
	req.SetType(header.ICMPv4Echo)
	req.SetSequence(1)
	copy(req.Payload(), "fornax!!")

	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, werr := c.WriteTo(req, &net.UDPAddr{IP: net.IP(dst.AsSlice())}); werr != nil {
		t.Fatal(werr)
	}

	buf := make([]byte, 1500)
	n, _, rerr := c.ReadFrom(buf)
	if rerr != nil {
		t.Fatal(rerr)
	}
	rep := header.ICMPv4(buf[:n])
	if rep.Type() != header.ICMPv4EchoReply || string(rep.Payload()) != "fornax!!" {
		t.Fatalf("reply type %d payload %q", rep.Type(), rep.Payload())
	}
}

func udpExchange(t *testing.T, a, b *stack.Stack) {
	t.Helper()

	lb, err := gonet.DialUDP(b, &tcpip.FullAddress{Addr: addrB, Port: 9710}, nil, ipv4.ProtocolNumber)
	if err != nil {
		t.Fatal(err)
	}
	defer lb.Close()

	ca, err := gonet.DialUDP(a, nil, &tcpip.FullAddress{Addr: addrB, Port: 9710}, ipv4.ProtocolNumber)
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close()

	ca.SetDeadline(time.Now().Add(10 * time.Second))
	lb.SetDeadline(time.Now().Add(10 * time.Second))

	if _, err := ca.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	n, from, err := lb.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("ReadFrom: %q %v", buf[:n], err)
	}
	if _, err := lb.WriteTo([]byte("olleh"), from); err != nil {
		t.Fatal(err)
	}
	if n, err = ca.Read(buf); err != nil || string(buf[:n]) != "olleh" {
		t.Fatalf("reply: %q %v", buf[:n], err)
	}
}

func tcpEcho(t *testing.T, a, b *stack.Stack, size int) {
	t.Helper()

	l, err := gonet.ListenTCP(b, tcpip.FullAddress{Addr: addrB, Port: 7}, ipv4.ProtocolNumber)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := l.Accept()
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		io.Copy(c, c)
	}()

	c, err := gonet.DialTCP(a, tcpip.FullAddress{Addr: addrB, Port: 7}, ipv4.ProtocolNumber)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(60 * time.Second))

	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i * 7)
	}

	go func() {
		c.Write(data)
		c.CloseWrite()
	}()

	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("echoed %d bytes, want %d", len(got), len(data))
	}
	c.Close()
	wg.Wait()
}

func TestLinkPipe(t *testing.T) {
	a, b := pipeStacks(t)

	t.Run("ping", func(t *testing.T) { ping(t, a, addrB) })
	t.Run("udp", func(t *testing.T) { udpExchange(t, a, b) })
	t.Run("tcp", func(t *testing.T) { tcpEcho(t, a, b, 256<<10) })
}

func TestLinkVirtio(t *testing.T) {
	a, b, na, nb := virtioStacks(t, 0)

	t.Run("ping", func(t *testing.T) { ping(t, b, addrA) })
	t.Run("udp", func(t *testing.T) { udpExchange(t, a, b) })
	t.Run("tcp", func(t *testing.T) { tcpEcho(t, a, b, 1<<20) })

	for _, n := range []*virtio.Net{na, nb} {
		s := n.Stats()
		if s.RxPackets == 0 || s.TxPackets == 0 || s.RxErrors != 0 || s.TxErrors != 0 {
			t.Errorf("stats %+v", s)
		}
		if s.RX.InFlight != s.RX.Size {
			t.Errorf("%d of %d rx buffers posted", s.RX.InFlight, s.RX.Size)
		}
	}
}

// TestLinkVirtioSmallQueues pushes TCP through queues of 8: the device
// drops frames when the receiver lags, and TCP recovers.
func TestLinkVirtioSmallQueues(t *testing.T) {
	a, b, na, nb := virtioStacks(t, 8)

	tcpEcho(t, a, b, 256<<10)

	for _, n := range []*virtio.Net{na, nb} {
		if s := n.Stats(); s.RX.InFlight != 8 || s.RX.Size != 8 || s.TX.Size != 8 {
			t.Errorf("queues %+v %+v", s.RX, s.TX)
		}
	}
}

func TestLinkFilter(t *testing.T) {
	nicA, nicB := virtiotest.Pipe(macA, macB)
	ep := New(nicB)
	newStack(t, ep, nicB, addrB)
	defer nicA.Close()

	other := append([]byte{0x52, 0x54, 0, 0, 0, 0xc}, macA[:]...)
	other = append(other, 0x08, 0x00)
	nicA.Transmit(append(other, make([]byte, 46)...))
	nicA.Transmit([]byte{1, 2, 3}) // runt

	deadline := time.Now().Add(5 * time.Second)
	for ep.Stats() != (Stats{RxDrops: 1, RxFiltered: 1}) {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v", ep.Stats())
		}
		time.Sleep(time.Millisecond)
	}
}
