package ns_test

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"fornax/cluster"
	"fornax/fs/file"
	"fornax/fs/ns"
	"fornax/fs/sys"
)

// still freezes each file of s at its first successful read: the kernel's
// files change as they please (/proc/meminfo, /proc/goroutines), and
// fstest reads each several times and wants the same bytes.
type still struct {
	file.Server
	mu    sync.Mutex
	files map[string][]byte
}

func freeze(s file.Server) *still { return &still{Server: s, files: make(map[string][]byte)} }

func (s *still) ReadFile(name string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b, ok := s.files[name]; ok {
		return b, nil
	}
	b, err := s.Server.ReadFile(name)
	if err == nil {
		s.files[name] = b
	}
	return b, err
}

// stillClock is a cluster.Clock that never moves, so a node's timers do
// not fire and its tree holds still once the datagrams fed to it are in.
type stillClock struct{ now time.Time }

func (c stillClock) Now() time.Time { return c.now }
func (c stillClock) TimerAt(at time.Time) cluster.Timer {
	t := stillTimer{make(chan time.Time, 1)}
	if !at.After(c.now) {
		t.c <- c.now
	}
	return t
}

type stillTimer struct{ c chan time.Time }

func (t stillTimer) C() <-chan time.Time { return t.c }
func (t stillTimer) Stop() bool          { return false }

// feedConn is a net.PacketConn that delivers the datagrams put in in and
// throws away what is sent.
type feedConn struct {
	in       chan datagram
	mu       sync.Mutex
	deadline chan struct{} // closed when a read deadline passes
}

type datagram struct {
	from string // a.b.c.d
	msg  string
}

func newFeedConn() *feedConn {
	return &feedConn{in: make(chan datagram, 16), deadline: make(chan struct{})}
}

func (c *feedConn) ReadFrom(b []byte) (int, net.Addr, error) {
	c.mu.Lock()
	dl := c.deadline
	c.mu.Unlock()
	select {
	case d := <-c.in:
		from := net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(d.from), cluster.DefaultPort))
		return copy(b, d.msg), from, nil
	case <-dl:
		return 0, nil, os.ErrDeadlineExceeded
	}
}

func (c *feedConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.IsZero() {
		c.deadline = make(chan struct{})
	} else if t.Before(time.Now()) {
		close(c.deadline)
	}
	return nil
}

func (c *feedConn) WriteTo(b []byte, _ net.Addr) (int, error) { return len(b), nil }
func (c *feedConn) Close() error                              { return nil }
func (c *feedConn) LocalAddr() net.Addr                       { return &net.UDPAddr{} }
func (c *feedConn) SetDeadline(time.Time) error               { return nil }
func (c *feedConn) SetWriteDeadline(time.Time) error          { return nil }

// kernelSpace builds the name space of a cluster kernel as kernel/main.go,
// net.go and cluster.go do, with the kernel's own /dev and /proc, a /net
// of the same files, and a /cluster with two peers and two containers.
func kernelSpace(t *testing.T) *ns.Namespace {
	t.Helper()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	kern := sys.New(sys.Machine{
		Version:  "test",
		CmdLine:  "name=n1 ip=10.0.0.1/24",
		MemTotal: 256 << 20,
		NumCPU:   1,
		Uptime:   func() time.Duration { return 5 * time.Second },
		Now:      func() time.Time { return t0 },
		Clock:    func() string { return "test" },
	}, "n1")

	netDir := ns.NewDir()
	for name, text := range map[string]string{
		"ifconfig": "addr 10.0.0.1/24\n",
		"addr":     "10.0.0.1/24\n",
		"ether":    "52:54:00:12:34:56\n",
		"virtio":   "virtio rx packets 0 bytes 0 drops 0 errors 0\n",
		"services": "echo_udp 0\n",
	} {
		netDir.File(name, ns.File{Read: func() ([]byte, error) { return []byte(text), nil }})
	}

	conn := newFeedConn()
	node, err := cluster.New(cluster.Config{
		ID:     "0a000001",
		Name:   "n1",
		Addr:   netip.MustParseAddr("10.0.0.1"),
		Prefix: netip.MustParsePrefix("10.0.0.1/24"),
		Clock:  stillClock{t0},
		Resources: func() cluster.Resources {
			return cluster.Resources{CPUs: 1, MemTotal: 256 << 20, MemFree: 100 << 20, Load: 0.5}
		},
		Logf: kern.Logf,
	}, conn)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"web", "db"} {
		if err := node.Containers().Add(c); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- node.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	for _, d := range []datagram{
		{"10.0.0.2", "ANNOUNCE 0a000002 10.0.0.2 n2 2 268435456 134217728 1\n"},
		{"10.0.0.3", "ANNOUNCE 0a000003 10.0.0.3 n3 4 1073741824 536870912 0\n"},
		{"10.0.0.3", "HEARTBEAT 0a000003 0.25 536870912 0\n"},
	} {
		conn.in <- d
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := node.Tree().ReadFile("stats")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), "\naccepted 3\n") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the node did not take the datagrams:\n%s", b)
		}
		time.Sleep(time.Millisecond)
	}

	space := ns.New()
	for p, s := range map[string]file.Server{
		"/dev":     kern.Dev(),
		"/proc":    kern.Proc(),
		"/net":     netDir,
		"/cluster": node.Tree(),
	} {
		if err := space.Mount(p, freeze(s)); err != nil {
			t.Fatal(err)
		}
	}
	return space
}

// TestFSKernel runs fstest over the name space of a cluster kernel.
func TestFSKernel(t *testing.T) {
	fsys := kernelSpace(t).FS()
	files := []string{
		"cluster/conflicts", "cluster/ctl", "cluster/events", "cluster/stats", "cluster/view",
		"cluster/nodes/0a000002/addr", "cluster/nodes/0a000002/containers",
		"cluster/nodes/0a000002/name", "cluster/nodes/0a000002/resources",
		"cluster/nodes/0a000002/status", "cluster/nodes/0a000003/resources",
		"cluster/self/addr", "cluster/self/containers/db", "cluster/self/containers/web",
		"cluster/self/id", "cluster/self/name", "cluster/self/resources",
		"dev/kmesg", "dev/sysname", "dev/time",
		"net/addr", "net/ether", "net/ifconfig", "net/services", "net/virtio",
		"proc/clock", "proc/cmdline", "proc/cpus", "proc/goroutines", "proc/meminfo",
		"proc/uptime", "proc/version",
	}
	if err := fstest.TestFS(fsys, files...); err != nil {
		t.Fatal(err)
	}
	// TestFS tries fs.Sub on the first directory only.
	for _, dir := range []string{"dev", "proc", "net", "cluster"} {
		sub, err := fs.Sub(fsys, dir)
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for _, f := range files {
			if rest, ok := strings.CutPrefix(f, dir+"/"); ok {
				want = append(want, rest)
			}
		}
		if err := fstest.TestFS(sub, want...); err != nil {
			t.Errorf("%s: %v", dir, err)
		}
	}
}

// TestFSServer runs fstest over a server by itself.
func TestFSServer(t *testing.T) {
	d := ns.NewDir().File("a", ns.File{Read: func() ([]byte, error) { return []byte("A\n"), nil }})
	d.Dir("b").File("c", ns.File{Read: func() ([]byte, error) { return nil, nil }})
	d.Dir("e")
	if err := fstest.TestFS(ns.FS(d), "a", "b/c", "e"); err != nil {
		t.Fatal(err)
	}
}

// TestFSView checks what fstest does not: the contents, the view's
// errors and its directory reads.
func TestFSView(t *testing.T) {
	fsys := kernelSpace(t).FS()
	b, err := fs.ReadFile(fsys, "cluster/nodes/0a000003/resources")
	if want := "cpus 4\nmem 1G\nmem_free 512M\nload 0.25\ncontainers 0\n"; err != nil || string(b) != want {
		t.Errorf("ReadFile(cluster/nodes/0a000003/resources) = %q, %v, want %q", b, err, want)
	}
	matches, err := fs.Glob(fsys, "cluster/nodes/*/name")
	if want := []string{"cluster/nodes/0a000002/name", "cluster/nodes/0a000003/name"}; err != nil || !slices.Equal(matches, want) {
		t.Errorf("Glob = %q, %v, want %q", matches, err, want)
	}
	fi, err := fs.Stat(fsys, "cluster/ctl")
	if err != nil || fi.Mode() != 0o444 || fi.Size() != 0 || fi.Name() != "ctl" {
		t.Errorf("Stat(cluster/ctl) = %v, %v", fi, err)
	}
	fi, err = fs.Stat(fsys, ".")
	if err != nil || fi.Mode() != fs.ModeDir|0o555 || fi.Name() != "." {
		t.Errorf("Stat(.) = %v, %v", fi, err)
	}
	for _, tt := range []struct {
		name string
		err  error
		text string
	}{
		{"nope", fs.ErrNotExist, "open nope: file does not exist"},
		{"cluster/nope", fs.ErrNotExist, "open cluster/nope: file does not exist"},
		{"dev/time/x", file.ErrNotDir, "open dev/time/x: not a directory"},
		{"/dev/time", fs.ErrInvalid, "open /dev/time: invalid argument"},
		{"dev/../dev/time", fs.ErrInvalid, "open dev/../dev/time: invalid argument"},
	} {
		_, err := fsys.Open(tt.name)
		if !errors.Is(err, tt.err) || err.Error() != tt.text {
			t.Errorf("Open(%q): %v, want %q", tt.name, err, tt.text)
		}
	}
	if _, err := fs.ReadFile(fsys, "cluster/self"); err == nil || err.Error() != "read cluster/self: is a directory" {
		t.Errorf("ReadFile(cluster/self): %v", err)
	}
	if _, err := fs.ReadDir(fsys, "cluster/ctl"); err == nil || err.Error() != "readdir cluster/ctl: not a directory" {
		t.Errorf("ReadDir(cluster/ctl): %v", err)
	}

	f, err := fsys.Open("cluster")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Read(make([]byte, 1)); err == nil || err.Error() != "read cluster: is a directory" {
		t.Errorf("Read of a directory: %v", err)
	}
	d := f.(fs.ReadDirFile)
	var names []string
	for {
		l, err := d.ReadDir(2)
		for _, e := range l {
			names = append(names, e.Name())
		}
		if err == io.EOF {
			break
		}
		if err != nil || len(l) == 0 {
			t.Fatalf("ReadDir(2) = %d entries, %v", len(l), err)
		}
	}
	if want := []string{"conflicts", "ctl", "events", "nodes", "self", "stats", "view"}; !slices.Equal(names, want) {
		t.Errorf("ReadDir(2) in turn gave %q, want %q", names, want)
	}
}

// TestFSMounts runs fstest over mounts that hide, shadow and extend the
// server below them.
func TestFSMounts(t *testing.T) {
	text := func(s string) ns.File { return ns.File{Read: func() ([]byte, error) { return []byte(s), nil }} }
	root := ns.NewDir().File("README", text("root\n")).File("dev", text("shadowed\n")).File("a", text("hidden\n"))
	root.Dir("net").File("x", text("x\n"))
	root.Dir("z")
	space := ns.New()
	for p, s := range map[string]file.Server{
		"/":            root,
		"/dev":         ns.NewDir().File("time", text("1\n")),
		"/net/cluster": ns.NewDir().File("ctl", text("joined\n")),
		"/a/b":         ns.NewDir().File("c", text("c\n")),
		"/m/n/o":       ns.NewDir(),
		"/z/y":         ns.NewDir().File("w", text("w\n")),
	} {
		if err := space.Mount(p, s); err != nil {
			t.Fatal(err)
		}
	}
	if err := fstest.TestFS(space.FS(), "README", "dev/time", "net/x", "net/cluster/ctl", "a/b/c", "m/n/o", "z/y/w"); err != nil {
		t.Fatal(err)
	}
}
