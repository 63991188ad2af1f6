package netsvc

import (
	"bytes"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

func TestEcho(t *testing.T) {
	var s Stats
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
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
	if s.EchoedUDP.Load() != 1 || s.EchoedTCP.Load() != 1 {
		t.Errorf("counters: %s", s.String())
	}
}

func TestDiscard(t *testing.T) {
	var s Stats
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go s.Discard(l)
	c, err := net.Dial("tcp4", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.Write(make([]byte, 100000))
	c.Close()
	for deadline := time.Now().Add(5 * time.Second); s.DiscardBytes.Load() < 100000; {
		if time.Now().After(deadline) {
			t.Fatalf("discarded %d bytes", s.DiscardBytes.Load())
		}
		time.Sleep(time.Millisecond)
	}
}

type registrar map[string]func(io.Writer, []string) error

func (r registrar) Register(name, usage, help string, fn func(io.Writer, []string) error) {
	r[name] = fn
}

func TestCommands(t *testing.T) {
	r := registrar{}
	// Sockets bind to loopback only: tests send nowhere else.
	Commands(r, func(network, address string) (net.PacketConn, error) {
		return net.ListenPacket(network, "127.0.0.1"+address)
	})
	sink, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()

	var out bytes.Buffer
	if err := r["udpsend"](&out, []string{sink.LocalAddr().String(), "hello", "there"}); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "sent 11 bytes to 127.0.0.1:") {
		t.Errorf("udpsend: %q", out.String())
	}
	buf := make([]byte, 64)
	sink.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, _, err := sink.ReadFrom(buf); err != nil || string(buf[:n]) != "hello there" {
		t.Errorf("got %q, %v", buf[:n], err)
	}

	// udprecv says when it listens, then what came
	go func() {
		time.Sleep(200 * time.Millisecond)
		r["udpsend"](io.Discard, []string{"127.0.0.1:39710", "late"})
	}()
	out.Reset()
	if err := r["udprecv"](&out, []string{"39710", "1"}); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); !strings.HasPrefix(got, "listening on udp port 39710 for 1s\n") || !strings.Contains(got, `"late"`) || !strings.HasSuffix(got, "1 datagrams\n") {
		t.Errorf("udprecv: %q", got)
	}

	for _, args := range [][]string{
		{"udpsend"}, {"udpsend", "10.0.0.1", "x"}, {"udpsend", "nowhere:7", "x"},
		{"udprecv"}, {"udprecv", "0"}, {"udprecv", "70000"}, {"udprecv", "9", "-1"}, {"udprecv", "9", "100000"},
	} {
		if err := r[args[0]](io.Discard, args[1:]); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
}

func TestWatch(t *testing.T) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	c, _ := net.Dial("udp4", pc.LocalAddr().String())
	defer c.Close()
	c.Write([]byte("one"))
	c.Write([]byte("two"))
	var out bytes.Buffer
	if err := Watch(&out, pc, time.Now().Add(300*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	if !strings.Contains(got, `"one"`) || !strings.Contains(got, `"two"`) || !strings.HasSuffix(got, "2 datagrams\n") {
		t.Errorf("watch: %q", got)
	}
}

func TestMaxConns(t *testing.T) {
	var s Stats
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go s.Discard(l)
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := 0; i < MaxConns; i++ {
		c, err := net.Dial("tcp4", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	for deadline := time.Now().Add(5 * time.Second); s.DiscardConns.Load() < MaxConns; {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections served", s.DiscardConns.Load())
		}
		time.Sleep(time.Millisecond)
	}
	extra, err := net.Dial("tcp4", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	extra.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := extra.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("connection over the limit: read %v, want EOF", err)
	}
	if s.Refused.Load() != 1 {
		t.Errorf("refused %d", s.Refused.Load())
	}
	// A slot freed is taken again.
	conns[0].Close()
	conns = conns[1:]
	for deadline := time.Now().Add(5 * time.Second); ; {
		c, err := net.Dial("tcp4", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		if s.DiscardConns.Load() == MaxConns+1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("freed slot not reused")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
