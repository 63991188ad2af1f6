//go:build linux

package netsvc

import (
	"bytes"
	"io"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Tests over the host's sockets, with Linux socket options.

// hostUDP is a host UDP socket with ReadFromTo, from IP_PKTINFO.
type hostUDP struct {
	*net.UDPConn
}

func listenHostUDP(t *testing.T) hostUDP {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	raw, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	raw.Control(func(fd uintptr) {
		err = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1)
	})
	if err != nil {
		t.Fatal(err)
	}
	return hostUDP{c}
}

func (c hostUDP) ReadFromTo(b []byte) (n int, from netip.AddrPort, to netip.Addr, err error) {
	oob := make([]byte, 128)
	n, oobn, _, from, err := c.ReadMsgUDPAddrPort(b, oob)
	if err != nil {
		return 0, from, to, err
	}
	msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
	for _, m := range msgs {
		if m.Header.Level == unix.IPPROTO_IP && m.Header.Type == unix.IP_PKTINFO && len(m.Data) >= unix.SizeofInet4Pktinfo {
			info := (*unix.Inet4Pktinfo)(unsafe.Pointer(&m.Data[0]))
			to = netip.AddrFrom4(info.Addr)
		}
	}
	return n, netip.AddrPortFrom(from.Addr().Unmap(), from.Port()), to, nil
}

var loopback = netip.MustParseAddr("127.0.0.1")

func TestEcho(t *testing.T) {
	s := New(Config{Addr: loopback})
	pc := listenHostUDP(t)
	go s.EchoUDP(pc)
	c, err := net.Dial("udp4", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte("ping"))
	buf := make([]byte, 16)
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "ping" {
		t.Fatalf("udp echo: %q, %v", buf[:n], err)
	}

	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go s.EchoTCP(l)
	tc, err := net.Dial("tcp4", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	tc.SetDeadline(time.Now().Add(5 * time.Second))
	msg := bytes.Repeat([]byte("0123456789"), 10000)
	go tc.Write(msg)
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(tc, got); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("tcp echo: %v", err)
	}
	// The UDP counter moves after WriteTo returns, which may be after
	// the reply has arrived: wait for it.
	for deadline := time.Now().Add(5 * time.Second); s.Stats.EchoedUDP.Load() != 1 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if s.Stats.EchoedUDP.Load() != 1 || s.Stats.EchoedTCP.Load() != 1 {
		t.Errorf("counters: %s", s.Stats.String())
	}
}

// stalledClient connects to l with a small receive buffer, sends until
// the server stops taking data, and never reads.
func stalledClient(t *testing.T, l net.Listener) net.Conn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var err error
		c.Control(func(fd uintptr) { err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 4096) })
		return err
	}}
	c, err := d.Dial("tcp4", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 64<<10)
		for {
			c.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if _, err := c.Write(buf); err != nil {
				return
			}
		}
	}()
	return c
}

// TestEchoWriteStall: an echo client that sends and never reads holds
// its slot until WriteTimeout, not forever; then a new client is served.
func TestEchoWriteStall(t *testing.T) {
	s := New(Config{MaxConns: 2, WriteTimeout: 300 * time.Millisecond})
	l := listen(t)
	go s.EchoTCP(l)

	start := time.Now()
	stalledClient(t, l)
	stalledClient(t, l)
	served(t, &s.Stats.EchoedTCP, 2)
	closedAtOnce(t, l)

	for s.Stats.WriteStalls.Load() < 2 {
		if time.Since(start) > 5*time.Second {
			t.Fatalf("stalled clients still served after 5 s:\n%s", s.Stats.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("both stalled clients reset after %v", time.Since(start))

	c := dial(t, l)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte("after"))
	buf := make([]byte, 5)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "after" {
		t.Fatalf("new client after the stall: %q %v", buf, err)
	}
}
