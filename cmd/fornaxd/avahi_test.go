package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"fornax/cluster"
	"fornax/internal/vmtest"
)

// avahiLAN is a LAN of network namespaces made by the test: a client
// with a bridge, running its own dbus-daemon and avahi-daemon, and one
// namespace per fornaxd on a veth to that bridge. Nothing of the host's
// (network, /run, its D-Bus) is touched: avahi runs in a mount
// namespace with a tmpfs on /run, and the tools reach it through the
// private bus (DBUS_SYSTEM_BUS_ADDRESS, which libdbus reads).
type avahiLAN struct {
	client string
	nodes  []string
	env    []string // the private bus for avahi's tools
	avahi  *exec.Cmd
}

func newAvahiLAN(t *testing.T, n int) *avahiLAN {
	if os.Geteuid() != 0 {
		t.Skip("TEST SKIPPED: needs root, to make network namespaces")
	}
	for _, tool := range []string{"ip", "unshare", "nsenter", "dbus-daemon", "avahi-daemon", "avahi-browse", "avahi-resolve", "getent"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("TEST SKIPPED: needs %s (Debian: apt-get install avahi-daemon avahi-utils libnss-mdns dbus iproute2)", tool)
		}
	}
	tag := fmt.Sprintf("%d", os.Getpid()%100000)
	l := &avahiLAN{client: "fxav" + tag + "c"}
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	ip("netns", "add", l.client)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", l.client).Run() })
	ip("-n", l.client, "link", "add", "fxbr0", "type", "bridge")
	ip("-n", l.client, "addr", "add", "10.98.0.1/24", "dev", "fxbr0")
	ip("-n", l.client, "link", "set", "fxbr0", "up")
	ip("-n", l.client, "link", "set", "lo", "up")
	for i := range n {
		ns := fmt.Sprintf("fxav%sn%d", tag, i)
		ip("netns", "add", ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
		ip("link", "add", "fxavtmp", "netns", ns, "type", "veth", "peer", "name", fmt.Sprintf("fxp%d", i), "netns", l.client)
		ip("-n", ns, "link", "set", "fxavtmp", "name", "fxd0")
		ip("-n", ns, "addr", "add", fmt.Sprintf("10.98.0.%d/24", 10+i), "dev", "fxd0")
		ip("-n", ns, "link", "set", "fxd0", "up")
		ip("-n", ns, "link", "set", "lo", "up")
		ip("-n", l.client, "link", "set", fmt.Sprintf("fxp%d", i), "master", "fxbr0")
		ip("-n", l.client, "link", "set", fmt.Sprintf("fxp%d", i), "up")
		l.nodes = append(l.nodes, ns)
	}
	dir := t.TempDir()
	bus := filepath.Join(dir, "bus")
	busConf := `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=` + bus + `</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
`
	avahiConf := `[server]
host-name=fxavclient
use-ipv4=yes
use-ipv6=no
allow-interfaces=fxbr0
enable-dbus=yes
[wide-area]
enable-wide-area=no
[publish]
publish-addresses=no
publish-hinfo=no
publish-workstation=no
`
	for name, text := range map[string]string{"bus.conf": busConf, "avahi.conf": avahiConf} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	l.env = append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS=unix:path="+bus)
	dbus := exec.Command("ip", "netns", "exec", l.client, "dbus-daemon", "--config-file="+filepath.Join(dir, "bus.conf"), "--nofork", "--nopidfile")
	dbus.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := dbus.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dbus.Process.Kill(); dbus.Wait() })
	for i := 0; ; i++ {
		if _, err := os.Stat(bus); err == nil {
			break
		}
		if i == 50 {
			t.Fatal("the private dbus-daemon made no socket in 5 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	var alog strings.Builder
	l.avahi = exec.Command("ip", "netns", "exec", l.client, "unshare", "-m", "--propagation", "private", "sh", "-c",
		"mount -t tmpfs fxav /run && mkdir /run/avahi-daemon && exec avahi-daemon --no-drop-root --no-chroot --no-rlimits -f "+filepath.Join(dir, "avahi.conf"))
	l.avahi.Env = l.env
	l.avahi.Stdout, l.avahi.Stderr = &alog, &alog
	l.avahi.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := l.avahi.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		l.avahi.Process.Kill()
		l.avahi.Wait()
		if t.Failed() {
			t.Logf("avahi-daemon:\n%s", alog.String())
		}
	})
	// Up when its tools get an answer over the bus.
	for i := 0; ; i++ {
		if err := l.tool(5*time.Second, "avahi-browse", "-pt", "_fornax._udp").Run(); err == nil {
			break
		}
		if i == 50 {
			t.Fatalf("avahi-daemon not on the private bus after 5 s:\n%s", alog.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	return l
}

// tool runs one of avahi's tools against the private avahi.
func (l *avahiLAN) tool(timeout time.Duration, name string, args ...string) *exec.Cmd {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	time.AfterFunc(timeout+time.Second, cancel)
	c := exec.CommandContext(ctx, name, args...)
	c.Env = l.env
	return c
}

// browse is avahi-browse -rpt's resolved lines for a service type.
func (l *avahiLAN) browse(t *testing.T, typ string) []string {
	out, err := l.tool(10*time.Second, "avahi-browse", "-rpt", typ).Output()
	if err != nil {
		t.Fatalf("avahi-browse -rpt %s: %v", typ, err)
	}
	var lines []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "=;") {
			lines = append(lines, line)
		}
	}
	return lines
}

// TestAvahi: two fornaxd started with one name, seen by a real
// avahi-daemon on the LAN: avahi-browse lists both with their TXT
// records under distinct names, avahi-resolve and getent (nss-mdns)
// resolve both names, and a SIGTERM removes a node from avahi-browse.
func TestAvahi(t *testing.T) {
	l := newAvahiLAN(t, 2)
	var ds []*proc
	for _, ns := range l.nodes {
		d := startDaemon(t, ns, "-iface", "fxd0", "-name", "twin", "-profile", "fast")
		ds = append(ds, d)
	}
	var hosts []string
	for _, d := range ds {
		d.log.Wait(t, "mdns: claimed ", 15*time.Second)
		s := d.log.String()
		i := strings.LastIndex(s, "mdns: claimed ")
		hosts = append(hosts, strings.Fields(s[i+len("mdns: claimed "):])[0])
	}
	slices.Sort(hosts)
	if hosts[0] != "twin-2.local" || hosts[1] != "twin.local" {
		t.Fatalf("claimed %q, want twin.local and twin-2.local", hosts)
	}
	conflicted := 0
	for _, d := range ds {
		if strings.Contains(d.log.String(), "mdns: twin.local is taken by 10.98.0.") {
			conflicted++
		}
	}
	if conflicted != 1 {
		t.Errorf("%d logs report the clash, want 1", conflicted)
	}
	// And so does /mdns/conflicts over 9P, on the node that lost.
	lines9p := 0
	for i := range ds {
		f := vmtest.Mount9P(t, l.client, fmt.Sprintf("10.98.0.%d:564", 10+i))
		c := vmtest.Read9P(t, f, "/mdns/conflicts")
		host := strings.TrimSpace(vmtest.Read9P(t, f, "/mdns/host"))
		if c != "" {
			lines9p++
			if !strings.Contains(c, " twin.local 10.98.0.") || !strings.HasSuffix(c, " twin-2.local\n") || host != "twin-2.local" {
				t.Errorf("/mdns/conflicts %q, /mdns/host %q", c, host)
			}
		}
	}
	if lines9p != 1 {
		t.Errorf("%d nodes list a conflict in /mdns/conflicts, want 1", lines9p)
	}

	// avahi-browse lists both, resolved, with id, profile and auth.
	var lines []string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if lines = l.browse(t, "_fornax._udp"); len(lines) == 2 {
			break
		}
	}
	if len(lines) != 2 {
		t.Fatalf("avahi-browse -rpt _fornax._udp: %q, want 2 nodes", lines)
	}
	for _, line := range lines {
		f := strings.Split(line, ";")
		if len(f) < 10 || f[8] != fmt.Sprint(cluster.DefaultPort) || !strings.Contains(f[9], `"profile=fast"`) || !strings.Contains(f[9], `"auth=plain"`) || !strings.Contains(f[9], `"id=`) {
			t.Errorf("avahi-browse line %q: want port 9710 and TXT id, profile=fast, auth=plain", line)
		}
	}
	t.Logf("avahi-browse -rpt _fornax._udp:\n%s", strings.Join(lines, "\n"))

	// avahi-resolve, 20 times each, timed; getent through nss-mdns.
	for _, h := range hosts {
		var took []time.Duration
		for range 20 {
			t0 := time.Now()
			out, err := l.tool(5*time.Second, "avahi-resolve", "-4", "-n", h).Output()
			took = append(took, time.Since(t0))
			if f := strings.Fields(string(out)); err != nil || len(f) != 2 || f[0] != h || !strings.HasPrefix(f[1], "10.98.0.1") {
				t.Fatalf("avahi-resolve -n %s: %q, %v", h, out, err)
			}
		}
		slices.Sort(took)
		t.Logf("avahi-resolve -n %s: median %v over 20 (min %v, max %v)", h, took[10].Round(10*time.Microsecond), took[0].Round(10*time.Microsecond), took[19].Round(10*time.Microsecond))
		out, err := exec.Command("nsenter", "-t", fmt.Sprint(l.avahi.Process.Pid), "-m", "-n", "getent", "hosts", h).Output()
		if f := strings.Fields(string(out)); err != nil || len(f) < 2 || f[1] != h || !strings.HasPrefix(f[0], "10.98.0.1") {
			t.Errorf("getent hosts %s: %q, %v", h, out, err)
		}
	}

	// SIGTERM: the goodbye takes the node out of avahi's cache; a
	// running avahi-browse prints its removal ("-;" line) at once.
	watch := l.tool(30*time.Second, "avahi-browse", "-p", "_fornax._udp")
	pipe, err := watch.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := watch.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { watch.Process.Kill(); watch.Wait() }()
	removed := make(chan string, 4)
	go func() {
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "-;") {
				removed <- sc.Text()
			}
		}
	}()
	time.Sleep(time.Second) // its first listing
	t0 := time.Now()
	if code := ds[1].stop(t); code != 0 {
		t.Errorf("fornaxd exited %d", code)
	}
	select {
	case line := <-removed:
		t.Logf("avahi-browse: %q %v after the SIGTERM", line, time.Since(t0).Round(time.Millisecond))
		// A goodbye leaves the record 1 s in a cache (RFC 6762 §10.1): 1 s
		// is the floor, 3 s room for a loaded machine.
		if time.Since(t0) > 3*time.Second {
			t.Errorf("removed %v after the SIGTERM, want about 1 s", time.Since(t0).Round(time.Millisecond))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("5 s after SIGTERM avahi-browse has not removed the node")
	}
	if lines = l.browse(t, "_fornax._udp"); len(lines) != 1 {
		t.Errorf("after the SIGTERM avahi-browse -rpt lists %q, want 1 node", lines)
	}
}
