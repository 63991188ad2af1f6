package vmtest

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"fornax/cluster"
)

// avahiTools are what TestMDNS runs on the LAN's host side.
var avahiTools = []string{"dbus-daemon", "avahi-daemon", "avahi-browse", "avahi-resolve", "getent", "nsenter", "unshare"}

// avahiHost is a real avahi-daemon on the LAN's bridge (fxbr0,
// 10.0.0.1, in the namespace of scripts/run-two-qemu.sh), as
// cmd/fornaxd's TestAvahi runs one: with a dbus-daemon of its own (a
// private system bus, DBUS_SYSTEM_BUS_ADDRESS, which avahi's tools and
// libdbus read), in a mount namespace with a tmpfs on /run, so that the
// host's own avahi and D-Bus are not touched.
type avahiHost struct {
	env   []string // the private bus, for avahi's tools
	avahi *exec.Cmd
}

func startAvahi(t *testing.T) *avahiHost {
	t.Helper()
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
	h := &avahiHost{env: append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS=unix:path="+bus)}
	dbus := exec.Command("ip", "netns", "exec", Namespace, "dbus-daemon", "--config-file="+filepath.Join(dir, "bus.conf"), "--nofork", "--nopidfile")
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
	h.avahi = exec.Command("ip", "netns", "exec", Namespace, "unshare", "-m", "--propagation", "private", "sh", "-c",
		"mount -t tmpfs fxav /run && mkdir /run/avahi-daemon && exec avahi-daemon --no-drop-root --no-chroot --no-rlimits -f "+filepath.Join(dir, "avahi.conf"))
	h.avahi.Env = h.env
	h.avahi.Stdout, h.avahi.Stderr = alog, alog
	h.avahi.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := h.avahi.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		h.avahi.Process.Kill()
		h.avahi.Wait()
		if t.Failed() {
			t.Logf("avahi-daemon:\n%s", alog.String())
		}
	})
	// Up when its tools get an answer over the bus.
	for i := 0; ; i++ {
		if err := h.tool(5*time.Second, "avahi-browse", "-pt", "_fornax._udp").Run(); err == nil {
			break
		}
		if i == 50 {
			t.Fatalf("avahi-daemon not on the private bus after 5 s:\n%s", alog.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	return h
}

// tool runs one of avahi's tools against the private avahi.
func (h *avahiHost) tool(timeout time.Duration, name string, args ...string) *exec.Cmd {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	time.AfterFunc(timeout+time.Second, cancel)
	c := exec.CommandContext(ctx, name, args...)
	c.Env = h.env
	return c
}

// browse is avahi-browse -rpt's resolved lines ("=;...") for a service
// type, split into their fields: 3 the instance, 6 the host, 7 the
// address, 8 the port, 9 the TXT.
func (h *avahiHost) browse(t *testing.T, typ string) [][]string {
	t.Helper()
	out, err := h.tool(10*time.Second, "avahi-browse", "-rpt", typ).Output()
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

// browseUntil browses typ until it lists n resolved instances, or fails
// after timeout.
func (h *avahiHost) browseUntil(t *testing.T, typ string, n int, timeout time.Duration) [][]string {
	t.Helper()
	var lines [][]string
	for deadline := time.Now().Add(timeout); ; time.Sleep(200 * time.Millisecond) {
		if lines = h.browse(t, typ); len(lines) == n {
			return lines
		}
		if time.Now().After(deadline) {
			t.Fatalf("avahi-browse -rpt %s lists %d instances after %v, want %d: %q", typ, len(lines), timeout, n, lines)
		}
	}
}

// resolve is avahi-resolve -4 -n host's address.
func (h *avahiHost) resolve(host string) (string, error) {
	out, err := h.tool(5*time.Second, "avahi-resolve", "-4", "-n", host).Output()
	f := strings.Fields(string(out))
	if err != nil || len(f) != 2 || f[0] != host {
		return "", fmt.Errorf("avahi-resolve -4 -n %s: %q, %v", host, out, err)
	}
	return f[1], nil
}

// getent resolves host through the C library's resolver: nss-mdns, in
// avahi's namespaces (its socket is on the private /run).
func (h *avahiHost) getent(host string) (string, error) {
	out, err := exec.Command("nsenter", "-t", fmt.Sprint(h.avahi.Process.Pid), "-m", "-n", "getent", "hosts", host).Output()
	f := strings.Fields(string(out))
	if err != nil || len(f) < 2 || f[1] != host {
		return "", fmt.Errorf("getent hosts %s: %q, %v (is mdns4_minimal in /etc/nsswitch.conf's hosts line?)", host, out, err)
	}
	return f[0], nil
}

// watch runs avahi-browse -p typ until the test ends and sends its
// lines: "+;" when an instance appears, "-;" when it goes.
func (h *avahiHost) watch(t *testing.T, typ string) <-chan string {
	t.Helper()
	c := h.tool(5*time.Minute, "avahi-browse", "-p", typ)
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
	return lines
}

// waitLine waits for a line of lines that starts with prefix and names
// instance, and returns when it came.
func waitLine(t *testing.T, lines <-chan string, prefix, instance string, timeout time.Duration) time.Time {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case l, ok := <-lines:
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

// waitAll waits for a line of lines that starts with prefix for each
// of instances, in any order.
func waitAll(t *testing.T, lines <-chan string, prefix string, instances []string, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	left := slices.Clone(instances)
	for len(left) > 0 {
		select {
		case l, ok := <-lines:
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

// waitClaimed waits until vm's kernel log says it claimed a name and
// returns that name.
func waitClaimed(t *testing.T, vm *VM) string {
	t.Helper()
	_, km := poll(t, vm, "cat /dev/kmesg", 20*time.Second, 200*time.Millisecond, contains("mdns: claimed "))
	m := regexp.MustCompile(`mdns: claimed (\S+)`).FindAllStringSubmatch(km, -1)
	return m[len(m)-1][1]
}

// goodbyeBound is how soon a goodbye must take a node out of avahi:
// a record with TTL 0 stays 1 s in a cache (RFC 6762 §10.1), a leave
// reaches the responder within nodeinfo.Poll (250 ms), and 3 s leaves
// room for a loaded machine.
const goodbyeBound = 3 * time.Second

// TestMDNS: cluster VMs seen by a real avahi-daemon on the bridge.
// avahi-browse lists every VM's services with TXT id, profile and auth;
// avahi-resolve (timed) and getent through nss-mdns resolve their
// names; a leave removes a VM from a running avahi-browse and a join
// brings it back; two VMs booted with one name= end with distinct
// names, both resolvable, the clash in /mdns/conflicts and the kernel
// log of the one that lost; halt says goodbye too.
func TestMDNS(t *testing.T) {
	k := kernel(t, "FORNAX_KERNEL_CLUSTER")
	if os.Geteuid() != 0 {
		t.Skip("VM TEST SKIPPED: the virtual LAN needs root (network namespaces)")
	}
	for _, tool := range avahiTools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("VM TEST SKIPPED: needs %s (Debian: apt-get install avahi-daemon avahi-utils libnss-mdns dbus util-linux; make deps)", tool)
		}
	}
	lan := startLAN(t, k, 3)
	avahi := startAvahi(t)

	ids := map[string]string{} // instance -> node id
	for i, vm := range lan.VMs {
		if host := waitClaimed(t, vm); host != Name(i+1)+".local" {
			t.Errorf("%s claimed %s", vm.Name, host)
		}
		if got := command(t, vm, "cat /mdns/host"); got != Name(i+1)+".local\n" {
			t.Errorf("%s: /mdns/host %q", vm.Name, got)
		}
		ids[Name(i+1)] = strings.TrimSpace(command(t, vm, "cat /cluster/self/id"))
	}

	t.Run("browse", func(t *testing.T) {
		lines := avahi.browseUntil(t, "_fornax._udp", 3, 10*time.Second)
		for _, f := range lines {
			name := f[3]
			i := slices.Index([]string{Name(1), Name(2), Name(3)}, name)
			switch {
			case i < 0:
				t.Errorf("avahi-browse lists %q, not a VM", name)
			case f[6] != name+".local" || f[7] != Addr(i+1) || f[8] != fmt.Sprint(cluster.DefaultPort):
				t.Errorf("%s: host %s address %s port %s, want %s.local %s %d", name, f[6], f[7], f[8], name, Addr(i+1), cluster.DefaultPort)
			case !strings.Contains(f[9], `"id=`+ids[name]+`"`) || !strings.Contains(f[9], `"profile=default"`) || !strings.Contains(f[9], `"auth=plain"`):
				t.Errorf("%s: TXT %s, want id=%s profile=default auth=plain", name, f[9], ids[name])
			}
		}
		t.Logf("avahi-browse -rpt _fornax._udp:\n%s", joinFields(lines))
		for _, s := range []struct {
			typ  string
			port int
			txt  string
		}{{"_9p._tcp", 564, ""}, {"_http._tcp", 9711, `"path=/"`}, {"_prometheus-http._tcp", 9711, `"path=/metrics"`}} {
			for _, f := range avahi.browseUntil(t, s.typ, 3, 10*time.Second) {
				if f[8] != fmt.Sprint(s.port) || !strings.Contains(f[9], s.txt) {
					t.Errorf("%s of %s: port %s TXT %s, want %d %s", s.typ, f[3], f[8], f[9], s.port, s.txt)
				}
			}
		}
	})

	t.Run("resolve", func(t *testing.T) {
		for i := range lan.VMs {
			host := Name(i+1) + ".local"
			if a, err := avahi.resolve(host); err != nil || a != Addr(i+1) {
				t.Errorf("avahi-resolve %s: %s, %v; want %s", host, a, err, Addr(i+1))
			}
			if a, err := avahi.getent(host); err != nil || a != Addr(i+1) {
				t.Errorf("getent hosts %s: %s, %v; want %s", host, a, err, Addr(i+1))
			}
		}
		var took []time.Duration
		for range 20 {
			t0 := time.Now()
			a, err := avahi.resolve(Name(2) + ".local")
			took = append(took, time.Since(t0))
			if err != nil || a != Addr(2) {
				t.Fatalf("avahi-resolve %s.local: %s, %v", Name(2), a, err)
			}
		}
		slices.Sort(took)
		t.Logf("avahi-resolve -n %s.local: median %v over 20 (min %v, max %v)", Name(2),
			took[10].Round(10*time.Microsecond), took[0].Round(10*time.Microsecond), took[19].Round(10*time.Microsecond))
		t.Logf("%s /mdns/stats:\n%s", Name(2), command(t, lan.VMs[1], "cat /mdns/stats"))
	})

	t.Run("leave-join", func(t *testing.T) {
		lines := avahi.watch(t, "_fornax._udp")
		waitAll(t, lines, "+;", []string{Name(1), Name(2), Name(3)}, 10*time.Second)
		t0 := time.Now()
		command(t, lan.VMs[2], "echo leave > /cluster/ctl")
		at := waitLine(t, lines, "-;", Name(3), 10*time.Second)
		t.Logf("avahi-browse removed %s %v after the leave", Name(3), at.Sub(t0).Round(time.Millisecond))
		if at.Sub(t0) > goodbyeBound {
			t.Errorf("removed %v after the leave, want within %v", at.Sub(t0).Round(time.Millisecond), goodbyeBound)
		}
		if got := command(t, lan.VMs[2], "cat /mdns/host"); got != "" {
			t.Errorf("/mdns/host after the leave: %q, want empty", got)
		}
		t0 = time.Now()
		command(t, lan.VMs[2], "echo join > /cluster/ctl")
		at = waitLine(t, lines, "+;", Name(3), 10*time.Second)
		t.Logf("avahi-browse lists %s again %v after the join", Name(3), at.Sub(t0).Round(time.Millisecond))
	})

	t.Run("same-name", func(t *testing.T) {
		twins := startTwins(t, k)
		var hosts []string
		for _, vm := range twins {
			hosts = append(hosts, waitClaimed(t, vm))
		}
		slices.Sort(hosts)
		if !slices.Equal(hosts, []string{"twin-2.local", "twin.local"}) {
			t.Fatalf("claimed %q, want twin.local and twin-2.local", hosts)
		}
		lost := 0
		for i, vm := range twins {
			c := command(t, vm, "cat /mdns/conflicts")
			host := strings.TrimSpace(command(t, vm, "cat /mdns/host"))
			km := command(t, vm, "cat /dev/kmesg")
			if c == "" {
				continue
			}
			lost++
			other := twinAddr(1 - i)
			if !strings.Contains(c, " twin.local "+other+" ") || !strings.HasSuffix(c, " twin-2.local\n") || host != "twin-2.local" {
				t.Errorf("%s: /mdns/conflicts %q, /mdns/host %q", twinAddr(i), c, host)
			}
			if !strings.Contains(km, "mdns: twin.local is taken by "+other) {
				t.Errorf("%s: kmesg does not tell the clash:\n%s", twinAddr(i), km)
			}
			t.Logf("%s: /mdns/conflicts %q", twinAddr(i), c)
		}
		if lost != 1 {
			t.Errorf("%d VMs list a conflict in /mdns/conflicts, want 1", lost)
		}
		// The cluster reports the clash of two of its own too: two ids
		// going by one name (protocol §8).
		for i, vm := range twins {
			_, c := poll(t, vm, "cat /cluster/conflicts", 10*time.Second, 200*time.Millisecond, contains("twin "))
			if f := strings.Fields(c); len(f) != 3 || f[0] != "twin" {
				t.Errorf("%s: /cluster/conflicts %q, want twin and two ids", twinAddr(i), c)
			}
		}
		for _, h := range hosts {
			a, err := avahi.resolve(h)
			if err != nil || (a != twinAddr(0) && a != twinAddr(1)) {
				t.Errorf("avahi-resolve %s: %s, %v", h, a, err)
			}
			if a, err := avahi.getent(h); err != nil || (a != twinAddr(0) && a != twinAddr(1)) {
				t.Errorf("getent hosts %s: %s, %v", h, a, err)
			}
		}
		if a1, _ := avahi.resolve("twin.local"); a1 != "" {
			if a2, _ := avahi.resolve("twin-2.local"); a1 == a2 {
				t.Errorf("twin.local and twin-2.local both resolve to %s", a1)
			}
		}

		// halt: the goodbye goes out before the machine stops.
		lines := avahi.watch(t, "_fornax._udp")
		waitLine(t, lines, "+;", "twin-2", 10*time.Second)
		loser := twins[0]
		if strings.TrimSpace(command(t, twins[1], "cat /mdns/host")) == "twin-2.local" {
			loser = twins[1]
		}
		t0 := time.Now()
		if err := loser.Type("halt\r"); err != nil {
			t.Fatal(err)
		}
		at := waitLine(t, lines, "-;", "twin-2", 10*time.Second)
		t.Logf("avahi-browse removed twin-2 %v after halt", at.Sub(t0).Round(time.Millisecond))
		if at.Sub(t0) > goodbyeBound {
			t.Errorf("removed %v after halt, want within %v", at.Sub(t0).Round(time.Millisecond), goodbyeBound)
		}
	})
}

// twinAddr is the address of the i-th VM startTwins boots.
func twinAddr(i int) string { return fmt.Sprintf("10.0.0.%d", 30+i) }

// startTwins boots two cluster VMs both named twin on the LAN's bridge,
// on taps of their own (fxtwin0, fxtwin1), and waits for their prompts.
func startTwins(t *testing.T, k string) []*VM {
	t.Helper()
	var vms []*VM
	for i := range 2 {
		tap := fmt.Sprintf("fxtwin%d", i)
		for _, args := range [][]string{
			{"-n", Namespace, "tuntap", "add", "dev", tap, "mode", "tap"},
			{"-n", Namespace, "link", "set", tap, "master", "fxbr0", "up"},
		} {
			if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
				t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		}
		t.Cleanup(func() { exec.Command("ip", "-n", Namespace, "link", "del", tap).Run() })
		vms = append(vms, startVM(t, Config{
			Kernel: k,
			Name:   "twin",
			Append: []string{"ip=" + twinAddr(i) + "/24", "gw=10.0.0.1"},
			Netns:  Namespace,
			Args: []string{"-netdev", "tap,id=net0,ifname=" + tap + ",script=no,downscript=no",
				"-device", fmt.Sprintf("virtio-net-device,netdev=net0,mac=52:54:00:f0:01:%02x", i)},
		}))
	}
	for _, vm := range vms {
		if _, err := vm.WaitReady(60 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	return vms
}

// joinFields puts avahi-browse's lines back together, for the log.
func joinFields(lines [][]string) string {
	var b strings.Builder
	for _, f := range lines {
		b.WriteString(strings.Join(f, ";") + "\n")
	}
	return b.String()
}
