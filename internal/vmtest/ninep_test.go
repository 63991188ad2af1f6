package vmtest

import (
	"errors"
	"io"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"9fans.net/go/plan9"
	"9fans.net/go/plan9/client"
)

// TestNinep mounts a cluster VM's name space over 9P from the host: it
// reads, renames the node through /cluster/ctl (9p=rw), measures read
// latency and the memory of 16 clients, and sees the 17th refused.
func TestNinep(t *testing.T) {
	lan := startLANOpts(t, kernel(t, "FORNAX_KERNEL_CLUSTER"), 1, Options{Append: []string{"9p=rw"}})
	vm := lan.VMs[0]
	if log := lan.Log(1); !strings.Contains(log, "9p: serving the name space on tcp/564, read-write") {
		t.Errorf("no 9p line on the console:\n%s", log)
	}
	fsys := Mount9P(t, Namespace, Addr(1)+":564")

	id := Read9P(t, fsys, "/cluster/self/id")
	if want := command(t, vm, "cat /cluster/self/id"); !strings.Contains(want, strings.TrimSpace(id)) || len(id) != 9 {
		t.Errorf("self/id over 9P %q, on the console %q", id, want)
	}
	if got := Read9P(t, fsys, "/dev/sysname"); got != Name(1)+"\n" {
		t.Errorf("/dev/sysname = %q", got)
	}
	ctl, err := fsys.Open("/cluster/ctl", plan9.OWRITE|plan9.OTRUNC)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ctl.Write([]byte("name x\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := ctl.Write([]byte("jion")); err == nil || !strings.Contains(err.Error(), "bad ctl message") {
		t.Errorf("bad ctl write: %v", err)
	}
	ctl.Close()
	if got := Read9P(t, fsys, "/dev/sysname"); got != "x\n" {
		t.Errorf("/dev/sysname after the rename = %q", got)
	}
	if got := Read9P(t, fsys, "/cluster/self/name"); got != "x\n" {
		t.Errorf("self/name after the rename = %q", got)
	}

	// Latency of a whole cat: walk, open, read, read (EOF), clunk.
	const n = 1000
	lat := make([]time.Duration, n)
	for i := range lat {
		t0 := time.Now()
		Read9P(t, fsys, "/cluster/self/id")
		lat[i] = time.Since(t0)
	}
	slices.Sort(lat)
	t.Logf("cat /cluster/self/id over 9P, %d times: median %v, p99 %v, max %v", n, lat[n/2], lat[n*99/100], lat[n-1])

	// 16 clients, each with a directory and a file open: 4 from each of
	// 4 addresses, the most one address is served (fs/ninep, "Limits").
	before := Read9P(t, fsys, "/proc/meminfo")
	gBefore := strings.TrimSpace(Read9P(t, fsys, "/proc/goroutines"))
	clients := []*client.Fsys{fsys}
	for len(clients) < 4 {
		clients = append(clients, Mount9P(t, Namespace, Addr(1)+":564"))
	}
	for _, from := range []string{"10.0.0.201", "10.0.0.202", "10.0.0.203"} {
		addHostAddr(t, from)
		for range 4 {
			c, err := mountFrom(t, from, Addr(1)+":564")
			if err != nil {
				t.Fatalf("mount from %s: %v", from, err)
			}
			clients = append(clients, c)
		}
	}
	for _, c := range clients {
		for _, name := range []string{"/cluster/nodes", "/proc/meminfo"} {
			fid, err := c.Open(name, plan9.OREAD)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { fid.Close() })
		}
	}
	after := Read9P(t, fsys, "/proc/meminfo")
	t.Logf("1 then 16 clients: goroutines %s then %s; meminfo before:\n%safter:\n%s", gBefore, strings.TrimSpace(Read9P(t, fsys, "/proc/goroutines")), before, after)

	// A 17th connection, silent: the longest silent idle client of its
	// address gives way to it, and it is closed itself after 10 s
	// without Tversion and Tattach.
	c17 := Dial9P(t, Namespace, Addr(1)+":564")
	t0 := time.Now()
	c17.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := c17.Read(make([]byte, 1)); err != io.EOF && !isReset(err) {
		t.Errorf("a silent 17th connection: read %v after %v, want EOF", err, time.Since(t0))
	}
	t.Logf("a silent 17th connection closed after %v", time.Since(t0).Round(time.Millisecond))
	if got := Read9P(t, clients[15], "/dev/sysname"); got != "x\n" {
		t.Errorf("client 16 reads %q", got)
	}
}

// isReset reports whether err is a connection reset.
func isReset(err error) bool { return errors.Is(err, syscall.ECONNRESET) }
