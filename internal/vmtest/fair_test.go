package vmtest

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"9fans.net/go/plan9"
	"9fans.net/go/plan9/client"
)

// Fairness under hostile clients (docs/protocol.md §10): 9P admits 4
// connections per address and 16 in all, the longest silent idle one
// giving way to a newcomer; echo, discard and chargen admit 8 per
// address and keep a reserve of the budget for each service.

// addHostAddr gives the namespace's host side (the bridge) one more
// address, for clients that must come from another source.
func addHostAddr(t *testing.T, addr string) {
	t.Helper()
	if out, err := InNamespace(10*time.Second, "ip", "addr", "add", addr+"/24", "dev", Bridge); err != nil {
		t.Fatalf("ip addr add %s: %v %s", addr, err, out)
	}
	t.Cleanup(func() { InNamespace(10*time.Second, "ip", "addr", "del", addr+"/24", "dev", Bridge) })
}

// dialFrom connects over TCP from the namespace's address from to addr.
func dialFrom(from, addr string) (net.Conn, error) {
	var c net.Conn
	err := InNetns(Namespace, func() error {
		d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
		var err error
		c, err = d.Dial("tcp4", addr)
		return err
	})
	return c, err
}

// mountFrom attaches to the 9P server at addr from the address from;
// an error is returned, not fatal: refusals are what the tests count.
func mountFrom(t *testing.T, from, addr string) (*client.Fsys, error) {
	c, err := dialFrom(from, addr)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Close() })
	cl, err := client.NewConn(c)
	if err != nil {
		return nil, err
	}
	return cl.Attach(nil, "glenda", "")
}

func TestNinepFairness(t *testing.T) {
	lan := startLAN(t, kernel(t, "FORNAX_KERNEL_CLUSTER"), 1)
	vm := lan.VMs[0]
	ninep := Addr(1) + ":564"
	host, other, third := Addr(0), "10.0.0.201", "10.0.0.202"
	addHostAddr(t, other)
	addHostAddr(t, third)

	t.Run("silent", func(t *testing.T) {
		for range 16 {
			c, err := dialFrom(host, ninep)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
		}
		time.Sleep(200 * time.Millisecond)
		t0 := time.Now()
		fsys, err := mountFrom(t, host, ninep)
		if err != nil {
			t.Fatalf("honest client after 16 silent connections: %v", err)
		}
		if got := Read9P(t, fsys, "/dev/sysname"); got != Name(1)+"\n" {
			t.Errorf("/dev/sysname = %q", got)
		}
		d := time.Since(t0)
		t.Logf("honest client: mounted and read /dev/sysname %v after 16 silent connections from its address", d.Round(time.Millisecond))
		if d > 5*time.Second {
			t.Errorf("honest client served after %v", d)
		}
	})

	t.Run("events", func(t *testing.T) {
		readers := 0
		for range 16 {
			fsys, err := mountFrom(t, other, ninep)
			if err != nil {
				continue // refused: the address has its share
			}
			fid, err := fsys.Open("/cluster/events", plan9.OREAD)
			if err != nil {
				continue
			}
			go fid.Read(make([]byte, 1024))
			readers++
			time.Sleep(100 * time.Millisecond) // the read pending at the node
		}
		t.Logf("16 event readers from %s: %d served", other, readers)
		if readers != 4 {
			t.Errorf("%d event readers served from one address, want 4", readers)
		}
		fsys, err := mountFrom(t, third, ninep)
		if err != nil {
			t.Fatalf("another address while one holds its share of event readers: %v", err)
		}
		if got := Read9P(t, fsys, "/dev/sysname"); got != Name(1)+"\n" {
			t.Errorf("/dev/sysname = %q", got)
		}
	})

	t.Run("services", func(t *testing.T) {
		// The hog: 19 chargen connections that read nothing and
		// 2 echo ones, all from one address.
		for range 19 {
			if c, err := dialFrom(host, Addr(1)+":19"); err == nil {
				t.Cleanup(func() { c.Close() })
			}
		}
		for range 2 {
			if c, err := dialFrom(host, Addr(1)+":7"); err == nil {
				t.Cleanup(func() { c.Close() })
			}
		}
		time.Sleep(500 * time.Millisecond)
		c, err := dialFrom(other, Addr(1)+":7")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write([]byte("ping"))
		b := make([]byte, 4)
		if _, err := io.ReadFull(c, b); err != nil || string(b) != "ping" {
			t.Errorf("echo from another address while one holds chargen: %q %v", b, err)
		}
		out := command(t, vm, "cat /net/services")
		t.Logf("/net/services:\n%s", out)
		if n := counter(t, vm, "/net/services", "refused_source"); n < 13 {
			t.Errorf("refused_source %d, want >= 13 (21 from one address, 8 served)", n)
		}
		if !strings.Contains(out, "chargen_conns") {
			t.Errorf("no chargen counter:\n%s", out)
		}
	})
}
