package netsvc

import (
	"io"
	"net"
	"testing"
	"time"
)

// dialFrom connects to l from the loopback address from.
func dialFrom(t *testing.T, from string, l net.Listener) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp4", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// hog connects to l from 127.0.0.1 and keeps the connection, if it is
// not refused already in Dial.
func hog(t *testing.T, l net.Listener) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.1")}}
	if c, err := d.Dial("tcp4", l.Addr().String()); err == nil {
		t.Cleanup(func() { c.Close() })
	}
}

// echoes checks that c, just dialled, is echoed.
func echoes(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 4)
	if _, err := io.ReadFull(c, b); err != nil || string(b) != "ping" {
		t.Fatalf("echo: %q %v", b, err)
	}
}

// TestPerSource: one address gets MaxPerSource connections of all the
// services together; another address is still served.
func TestPerSource(t *testing.T) {
	s := New(Config{WriteTimeout: time.Minute})
	chargen, echo := listen(t), listen(t)
	go s.Chargen(chargen)
	go s.EchoTCP(echo)
	// The hog: 19 chargen connections and 2 echo ones.
	for range 19 {
		hog(t, chargen)
	}
	for range 2 {
		hog(t, echo)
	}
	for deadline := time.Now().Add(5 * time.Second); s.Stats.ChargenConns.Load()+s.Stats.EchoedTCP.Load()+s.Stats.RefusedSource.Load() < 21; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("counters:\n%s", s.Stats.String())
		}
	}
	if s.Stats.ChargenConns.Load() != MaxPerSource || s.Stats.RefusedSource.Load() != 21-MaxPerSource {
		t.Errorf("one address: %d chargen served, %d refused; want %d served", s.Stats.ChargenConns.Load(), s.Stats.RefusedSource.Load(), MaxPerSource)
	}
	echoes(t, dialFrom(t, "127.0.0.2", echo))
	dialFrom(t, "127.0.0.2", chargen)
	served(t, &s.Stats.ChargenConns, MaxPerSource+1)
}

// TestReserve: peers that fill the budget with chargen, from as many
// addresses as they like, leave each other service one connection.
func TestReserve(t *testing.T) {
	s := New(Config{WriteTimeout: time.Minute, MaxPerSource: 64})
	chargen, echo, discard := listen(t), listen(t), listen(t)
	go s.Chargen(chargen)
	go s.EchoTCP(echo)
	go s.Discard(discard)
	for range MaxConns {
		hog(t, chargen)
	}
	for deadline := time.Now().Add(5 * time.Second); s.Stats.ChargenConns.Load()+s.Stats.OverBudget.Load() < MaxConns; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("counters:\n%s", s.Stats.String())
		}
	}
	if s.Stats.OverBudget.Load() == 0 {
		t.Fatalf("%d chargen connections fit the budget: the test needs more", MaxConns)
	}
	t.Logf("chargen holds %d connections, %d refused for the budget", s.Stats.ChargenConns.Load(), s.Stats.OverBudget.Load())
	echoes(t, dialFrom(t, "127.0.0.2", echo))
	dialFrom(t, "127.0.0.2", discard)
	served(t, &s.Stats.DiscardConns, 1)
}
