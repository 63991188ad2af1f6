package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"9fans.net/go/plan9"
	"9fans.net/go/plan9/client"

	"fornax/cluster"
	"fornax/internal/vmtest"
)

// TestMain runs fornaxd itself when the tests start their own binary as
// the daemon (daemonEnv set), so that the end-to-end tests need no build.
func TestMain(m *testing.M) {
	if os.Getenv(daemonEnv) == "1" {
		main()
	}
	os.Exit(m.Run())
}

const daemonEnv = "FORNAXD_TEST_DAEMON"

// run, in process: -help prints the usage on stdout and exits 0; a bad
// flag prints one line on stderr and exits 2, as does a flag value that
// only the host can refuse (no such interface).
func TestRunExitStatus(t *testing.T) {
	for _, c := range []struct {
		args       []string
		code       int
		out, errol string
	}{
		{[]string{"-help"}, 0, "Usage:", ""},
		{[]string{"-bogus"}, 2, "", "fornaxd: flag provided but not defined: -bogus (fornaxd -help lists the flags)\n"},
		{[]string{"-iface", "fxnosuch0"}, 2, "", "fornaxd: -iface fxnosuch0: no such interface (this host has: "},
		{[]string{"-iface", "lo", "-addr", "10.1.2.3"}, 2, "", "fornaxd: -addr 10.1.2.3 is not an address of lo (it has 127.0.0.1/8"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(c.args, &stdout, &stderr, nil)
		if code != c.code || !strings.Contains(stdout.String(), c.out) || !strings.HasPrefix(stderr.String(), c.errol) || strings.Count(stderr.String(), "\n") > 1 {
			t.Errorf("fornaxd %q: exit %d, stdout %q, stderr %q; want exit %d, %q, %q", c.args, code, head(stdout.String()), stderr.String(), c.code, c.out, c.errol)
		}
	}
}

func head(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// pair is two network namespaces joined by a veth pair, each end with an
// address on 10.99.0.0/24: two hosts on one LAN, made and torn down by
// the test.
type pair struct {
	ns    [2]string
	addr  [2]string
	iface string // the name of the veth end in both namespaces
}

func newPair(t testing.TB) *pair {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("TEST SKIPPED: needs root, to make network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("TEST SKIPPED: needs ip (Debian: apt-get install iproute2)")
	}
	tag := fmt.Sprintf("%d-%d", os.Getpid(), time.Now().UnixNano()%1e6)
	p := &pair{ns: [2]string{"fxdt" + tag + "a", "fxdt" + tag + "b"}, addr: [2]string{"10.99.0.1", "10.99.0.2"}, iface: "fxd0"}
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	for _, ns := range p.ns {
		ip("netns", "add", ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	}
	ip("link", "add", "fxdtmp0", "netns", p.ns[0], "type", "veth", "peer", "name", "fxdtmp1", "netns", p.ns[1])
	for i, ns := range p.ns {
		ip("-n", ns, "link", "set", fmt.Sprintf("fxdtmp%d", i), "name", p.iface)
		ip("-n", ns, "addr", "add", p.addr[i]+"/24", "dev", p.iface)
		ip("-n", ns, "link", "set", p.iface, "up")
		ip("-n", ns, "link", "set", "lo", "up")
	}
	return p
}

// mac returns the MAC of the veth end in namespace i.
func (p *pair) mac(t testing.TB, i int) net.HardwareAddr {
	t.Helper()
	b, err := exec.Command("ip", "-n", p.ns[i], "-br", "link", "show", p.iface).Output()
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		t.Fatalf("ip -br link: %q", b)
	}
	mac, err := net.ParseMAC(f[2])
	if err != nil {
		t.Fatal(err)
	}
	return mac
}

// proc is a fornaxd process: this test binary, as its TestMain says.
type proc struct {
	cmd     *exec.Cmd
	log     *vmtest.LogBuffer
	started time.Time
	done    chan struct{}
}

// startDaemon runs fornaxd in network namespace ns.
func startDaemon(t testing.TB, ns string, args ...string) *proc {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	d := &proc{log: vmtest.NewLogBuffer(), done: make(chan struct{})}
	d.cmd = exec.Command("ip", append([]string{"netns", "exec", ns, self}, args...)...)
	d.cmd.Env = append(os.Environ(), daemonEnv+"=1")
	d.cmd.Stderr = d.log
	d.cmd.Stdout = d.log
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	d.started = time.Now()
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.cmd.Wait(); close(d.done) }()
	t.Cleanup(func() {
		d.cmd.Process.Kill()
		<-d.done
		if t.Failed() {
			t.Logf("fornaxd %s log:\n%s", strings.Join(args, " "), d.log.String())
		}
	})
	return d
}

// stop sends SIGTERM and returns fornaxd's exit status.
func (d *proc) stop(t testing.TB) int {
	t.Helper()
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("fornaxd still runs 10 s after SIGTERM; log:\n%s", d.log.String())
	}
	return d.cmd.ProcessState.ExitCode()
}

// TestDaemonPair runs two fornaxd on two hosts of one LAN (network
// namespaces): each lists the other, 9P serves /cluster and /dev the way
// a VM does (writes only with -9p-rw), /cluster/events streams over 9P,
// and SIGTERM makes fornaxd send LEAVE and exit 0. Plain with the
// default profile, then keyed with the fast one.
func TestDaemonPair(t *testing.T) {
	t.Run("plain", func(t *testing.T) { testPair(t, nil, "default") })
	t.Run("keyed-fast", func(t *testing.T) {
		key := make([]byte, cluster.KeySize)
		rand.Read(key)
		path := filepath.Join(t.TempDir(), "cluster.key")
		if err := os.WriteFile(path, []byte(hex.EncodeToString(key)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		testPair(t, []string{"-key-file", path}, "fast")
	})
}

func testPair(t *testing.T, extra []string, profile string) {
	p := newPair(t)
	ids := [2]string{cluster.IDFromMAC(p.mac(t, 0)), cluster.IDFromMAC(p.mac(t, 1))}
	common := append([]string{"-iface", p.iface, "-profile", profile}, extra...)
	// a: every default (name from the host name, 9P on its address:564,
	// read-only); b: named, 9P elsewhere and writable.
	a := startDaemon(t, p.ns[0], common...)
	a.log.Wait(t, "cluster: joined as "+ids[0], 10*time.Second)
	b := startDaemon(t, p.ns[1], append(common, "-name", "b", "-listen", ":5640", "-9p-rw")...)
	host, _ := os.Hostname()
	nameA := defaultName(host, ids[0])
	aSeesB := a.log.Wait(t, fmt.Sprintf("cluster: %s (b) joined from %s", ids[1], p.addr[1]), 10*time.Second)
	bSeesA := b.log.Wait(t, fmt.Sprintf("cluster: %s (%s) joined from %s", ids[0], nameA, p.addr[0]), 10*time.Second)
	t.Logf("b started; a lists b after %v, b lists a after %v", aSeesB.Sub(b.started).Round(time.Millisecond), bSeesA.Sub(b.started).Round(time.Millisecond))
	wantIntro := fmt.Sprintf("fornaxd: node %s (%s) on %s %s/24, udp/9710, ", ids[0], nameA, p.iface, p.addr[0])
	if !strings.Contains(a.log.String(), wantIntro) || !strings.Contains(a.log.String(), "profile "+profile+"; 9P on tcp "+p.addr[0]+":564, read-only; HTTP on tcp "+p.addr[0]+":9711") {
		t.Errorf("a's log lacks %q ... profile %s; 9P on tcp %s:564, read-only:\n%s", wantIntro, profile, p.addr[0], a.log.String())
	}

	fa := vmtest.Mount9P(t, p.ns[0], p.addr[0]+":564")
	fb := vmtest.Mount9P(t, p.ns[0], p.addr[1]+":5640") // from a's host, across the LAN
	if got := vmtest.Ls9P(t, fa, "/"); strings.Join(got, " ") != "cluster dev mdns" {
		t.Errorf("/ of a: %q, want cluster dev mdns", got)
	}
	if got := vmtest.Ls9P(t, fa, "/cluster/nodes"); len(got) != 1 || got[0] != ids[1] {
		t.Errorf("a's /cluster/nodes: %q, want [%s]", got, ids[1])
	}
	for _, c := range []struct {
		fsys       *client.Fsys
		file, want string
	}{
		{fa, "/cluster/nodes/" + ids[1] + "/name", "b\n"},
		{fa, "/cluster/nodes/" + ids[1] + "/addr", p.addr[1] + "\n"},
		{fa, "/cluster/nodes/" + ids[1] + "/status", "online\n"},
		{fa, "/cluster/self/id", ids[0] + "\n"},
		{fa, "/dev/sysname", nameA + "\n"},
		{fb, "/cluster/nodes/" + ids[0] + "/name", nameA + "\n"},
		{fb, "/dev/sysname", "b\n"},
	} {
		if got := vmtest.Read9P(t, c.fsys, c.file); got != c.want {
			t.Errorf("%s: %q, want %q", c.file, got, c.want)
		}
	}
	// The figures are the host's, from /proc.
	self := newProcFiles(t.Logf).Resources()
	if got, want := vmtest.Read9P(t, fa, "/cluster/nodes/"+ids[1]+"/resources"), fmt.Sprintf("cpus %d\n", self.CPUs); !strings.HasPrefix(got, want) {
		t.Errorf("b's resources as a sees them: %q, want %q first", got, want)
	}
	if got := vmtest.Read9P(t, fa, "/dev/kmesg"); !strings.Contains(got, "cluster: "+ids[1]+" (b) joined") {
		t.Errorf("a's /dev/kmesg lacks b's join:\n%s", got)
	}

	checkFace(t, p, ids)

	// Writes: a is read-only (the default), b takes ctl messages.
	if _, err := fa.Open("/cluster/ctl", plan9.OWRITE); err == nil {
		t.Error("a's /cluster/ctl opened for writing without -9p-rw")
	}
	events, err := fa.Open("/cluster/events", plan9.OREAD)
	if err != nil {
		t.Fatal(err)
	}
	defer events.Close()
	ctl, err := fb.Open("/cluster/ctl", plan9.OWRITE)
	if err != nil {
		t.Fatalf("b's /cluster/ctl with -9p-rw: %v", err)
	}
	if _, err := ctl.Write([]byte("name b2\n")); err != nil {
		t.Fatal(err)
	}
	ctl.Close()
	a.log.Wait(t, fmt.Sprintf("cluster: %s renamed from b to b2", ids[1]), 5*time.Second)
	if got := vmtest.Read9P(t, fb, "/dev/sysname"); got != "b2\n" {
		t.Errorf("b's /dev/sysname after the rename: %q", got)
	}

	// SIGTERM: b sends LEAVE, exits 0; a drops it at once.
	t0 := time.Now()
	if code := b.stop(t); code != 0 {
		t.Errorf("b exited %d after SIGTERM, want 0", code)
	}
	left := a.log.Wait(t, fmt.Sprintf("cluster: %s (b2) left", ids[1]), 5*time.Second)
	t.Logf("a saw b leave %v after the SIGTERM", left.Sub(t0).Round(time.Millisecond))
	for _, s := range []string{"fornaxd: SIGTERM: leaving the cluster\n", "cluster: left\n", "fornaxd: stopped\n"} {
		if !strings.Contains(b.log.String(), s) {
			t.Errorf("b's log lacks %q:\n%s", s, b.log.String())
		}
	}
	want := []string{ids[1] + " renamed b2", ids[1] + " left"}
	got := readEvents(t, events, len(want))
	for i := range want {
		if i >= len(got) || !strings.HasSuffix(got[i], want[i]) {
			t.Errorf("a's /cluster/events over 9P: %q, want lines ending %q", got, want)
			break
		}
	}
	if got := vmtest.Ls9P(t, fa, "/cluster/nodes"); len(got) != 0 {
		t.Errorf("a's /cluster/nodes after b left: %q", got)
	}
	if code := a.stop(t); code != 0 {
		t.Errorf("a exited %d after SIGTERM, want 0", code)
	}
}

// readEvents reads n lines from a stream fid. A read of 0 bytes ends a
// burst, not the stream (fs/ninep's doc): read on.
func readEvents(t *testing.T, fid *client.Fid, n int) []string {
	t.Helper()
	var lines []string
	buf := make([]byte, 4096)
	deadline := time.Now().Add(10 * time.Second)
	var text string
	for len(lines) < n && time.Now().Before(deadline) {
		k, err := fid.Read(buf)
		if err != nil && err != io.EOF {
			t.Fatalf("read /cluster/events: %v", err)
		}
		text += string(buf[:k])
		lines = strings.Split(strings.TrimSuffix(text, "\n"), "\n")
		if text == "" {
			lines = nil
		}
	}
	return lines
}

// One gossip socket per interface: two on different interfaces share
// port 9710 (each fornaxd gossips on its own), a second on the same one
// is refused with a message that says why.
func TestListenGossipPerInterface(t *testing.T) {
	p := newPair(t)
	err := vmtest.InNetns(p.ns[0], func() error {
		a, err := listenGossip(p.iface, cluster.DefaultPort)
		if err != nil {
			return err
		}
		defer a.Close()
		b, err := listenGossip("lo", cluster.DefaultPort)
		if err != nil {
			return fmt.Errorf("a second interface: %w", err)
		}
		defer b.Close()
		c, err := listenGossip(p.iface, cluster.DefaultPort)
		if err == nil {
			c.Close()
			return errors.New("two gossip sockets on one interface")
		}
		if want := "udp port 9710 on fxd0 is taken: is another fornaxd running on fxd0?"; !strings.Contains(err.Error(), want) {
			return fmt.Errorf("the second socket on fxd0: %v, want %q", err, want)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}
