package vmtest

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
)

// Avahi is a real avahi-daemon on a test LAN, as the mDNS tests meet
// one: cmd/fornaxd's TestAvahi on a namespace of its own, TestMDNS on
// the VMs' bridge. It runs with a dbus-daemon of its own (a private
// system bus, reached through DBUS_SYSTEM_BUS_ADDRESS, which libdbus and
// so avahi's tools read), in a mount namespace with a tmpfs on /run, so
// that the host's own avahi and D-Bus are not touched. Make one with
// StartAvahi; its methods run avahi's tools against it.
type Avahi struct {
	env   []string // the private bus, for avahi's tools
	avahi *exec.Cmd
}

// AvahiTools are the programs StartAvahi and Avahi's methods run.
func AvahiTools() []string {
	return []string{"ip", "unshare", "nsenter", "dbus-daemon", "avahi-daemon", "avahi-browse", "avahi-resolve", "getent"}
}

// AvahiMissing says which of AvahiTools is not installed, and where
// Debian has it; nil if none is missing. For a test's skip.
func AvahiMissing() error {
	for _, tool := range AvahiTools() {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("needs %s (Debian: apt-get install avahi-daemon avahi-utils libnss-mdns dbus iproute2 util-linux)", tool)
		}
	}
	return nil
}

const busConf = `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=%s</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
`

// avahiConf keeps avahi to the test's interface, IPv4, and to browsing
// and resolving: it publishes nothing of its own.
const avahiConf = `[server]
host-name=fxavclient
use-ipv4=yes
use-ipv6=no
allow-interfaces=%s
enable-dbus=yes
[wide-area]
enable-wide-area=no
[publish]
publish-addresses=no
publish-hinfo=no
publish-workstation=no
`

// StartAvahi starts dbus-daemon and avahi-daemon in network namespace
// ns (as made by ip netns), avahi on interface iface alone, and waits
// until avahi answers on the private bus. Both are killed when the test
// ends, and with the test binary (Pdeathsig); on a failure the test log
// gets avahi's.
func StartAvahi(t testing.TB, ns, iface string) *Avahi {
	t.Helper()
	dir := t.TempDir()
	bus := filepath.Join(dir, "bus")
	for name, text := range map[string]string{"bus.conf": fmt.Sprintf(busConf, bus), "avahi.conf": fmt.Sprintf(avahiConf, iface)} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	a := &Avahi{env: append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS=unix:path="+bus)}
	dbus := exec.Command("ip", "netns", "exec", ns, "dbus-daemon", "--config-file="+filepath.Join(dir, "bus.conf"), "--nofork", "--nopidfile")
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
	alog := NewLogBuffer()
	a.avahi = exec.Command("ip", "netns", "exec", ns, "unshare", "-m", "--propagation", "private", "sh", "-c",
		"mount -t tmpfs fxav /run && mkdir /run/avahi-daemon && exec avahi-daemon --no-drop-root --no-chroot --no-rlimits -f "+filepath.Join(dir, "avahi.conf"))
	a.avahi.Env = a.env
	a.avahi.Stdout, a.avahi.Stderr = alog, alog
	a.avahi.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := a.avahi.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		a.avahi.Process.Kill()
		a.avahi.Wait()
		if t.Failed() {
			t.Logf("avahi-daemon:\n%s", alog.String())
		}
	})
	// Up when its tools get an answer over the bus.
	for i := 0; ; i++ {
		if err := a.tool(5*time.Second, "avahi-browse", "-pt", "_fornax._udp").Run(); err == nil {
			break
		}
		if i == 50 {
			t.Fatalf("avahi-daemon not on the private bus after 5 s:\n%s", alog.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	return a
}

// tool runs one of avahi's tools against the private avahi.
func (a *Avahi) tool(timeout time.Duration, name string, args ...string) *exec.Cmd {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	time.AfterFunc(timeout+time.Second, cancel)
	c := exec.CommandContext(ctx, name, args...)
	c.Env = a.env
	return c
}

// Browse is avahi-browse -rpt's resolved lines ("=;...") for a service
// type, split into their fields: 3 the instance, 6 the host, 7 the
// address, 8 the port, 9 the TXT.
func (a *Avahi) Browse(t testing.TB, typ string) [][]string {
	t.Helper()
	out, err := a.tool(10*time.Second, "avahi-browse", "-rpt", typ).Output()
	if err != nil {
		t.Fatalf("avahi-browse -rpt %s: %v", typ, err)
	}
	var lines [][]string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Split(line, ";"); f[0] == "=" && len(f) >= 10 {
			lines = append(lines, f)
		}
	}
	return lines
}

// BrowseUntil browses typ until it lists n resolved instances, or fails
// after timeout.
func (a *Avahi) BrowseUntil(t testing.TB, typ string, n int, timeout time.Duration) [][]string {
	t.Helper()
	var lines [][]string
	for deadline := time.Now().Add(timeout); ; time.Sleep(200 * time.Millisecond) {
		if lines = a.Browse(t, typ); len(lines) == n {
			return lines
		}
		if time.Now().After(deadline) {
			t.Fatalf("avahi-browse -rpt %s lists %d instances after %v, want %d: %q", typ, len(lines), timeout, n, lines)
		}
	}
}

// JoinBrowse puts Browse's lines back together, for a log.
func JoinBrowse(lines [][]string) string {
	var b strings.Builder
	for _, f := range lines {
		b.WriteString(strings.Join(f, ";") + "\n")
	}
	return b.String()
}

// Resolve is avahi-resolve -4 -n host's address.
func (a *Avahi) Resolve(host string) (string, error) {
	out, err := a.tool(5*time.Second, "avahi-resolve", "-4", "-n", host).Output()
	f := strings.Fields(string(out))
	if err != nil || len(f) != 2 || f[0] != host {
		return "", fmt.Errorf("avahi-resolve -4 -n %s: %q, %v", host, out, err)
	}
	return f[1], nil
}

// Getent resolves host through the C library's resolver: nss-mdns, in
// avahi's namespaces (its socket is on the private /run).
func (a *Avahi) Getent(host string) (string, error) {
	out, err := exec.Command("nsenter", "-t", fmt.Sprint(a.avahi.Process.Pid), "-m", "-n", "getent", "hosts", host).Output()
	f := strings.Fields(string(out))
	if err != nil || len(f) < 2 || f[1] != host {
		return "", fmt.Errorf("getent hosts %s: %q, %v (is mdns4_minimal in /etc/nsswitch.conf's hosts line?)", host, out, err)
	}
	return f[0], nil
}

// AvahiWatch is a running avahi-browse -p: its lines say "+;" when an
// instance appears and "-;" when it goes.
type AvahiWatch struct {
	lines <-chan string
}

// Watch runs avahi-browse -p typ until the test ends.
func (a *Avahi) Watch(t testing.TB, typ string) *AvahiWatch {
	t.Helper()
	c := a.tool(5*time.Minute, "avahi-browse", "-p", typ)
	pipe, err := c.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	lines, done := make(chan string, 64), make(chan struct{})
	t.Cleanup(func() { close(done); c.Process.Kill(); c.Wait() })
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-done:
				return
			}
		}
	}()
	return &AvahiWatch{lines: lines}
}

// Wait waits for a line that starts with prefix and names instance,
// and returns when it came; lines before it are dropped.
func (w *AvahiWatch) Wait(t testing.TB, prefix, instance string, timeout time.Duration) time.Time {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case l, ok := <-w.lines:
			if !ok {
				t.Fatalf("avahi-browse ended before a %q line of %s", prefix, instance)
			}
			if f := strings.Split(l, ";"); strings.HasPrefix(l, prefix) && len(f) > 3 && f[3] == instance {
				return time.Now()
			}
		case <-deadline:
			t.Fatalf("no %q line of %s from avahi-browse within %v", prefix, instance, timeout)
		}
	}
}

// WaitAll waits for a line that starts with prefix for each of
// instances, in any order.
func (w *AvahiWatch) WaitAll(t testing.TB, prefix string, instances []string, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	left := slices.Clone(instances)
	for len(left) > 0 {
		select {
		case l, ok := <-w.lines:
			if !ok {
				t.Fatalf("avahi-browse ended before a %q line of each of %v", prefix, left)
			}
			if f := strings.Split(l, ";"); strings.HasPrefix(l, prefix) && len(f) > 3 {
				left = slices.DeleteFunc(left, func(s string) bool { return s == f[3] })
			}
		case <-deadline:
			t.Fatalf("no %q line of %v from avahi-browse within %v", prefix, left, timeout)
		}
	}
}
