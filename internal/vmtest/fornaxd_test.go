package vmtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"9fans.net/go/plan9"

	"fornax/cluster"
)

// fornaxdAddr is the Linux host's address on the VMs' LAN, beside the
// bridge (10.0.0.1), the VMs (10.0.0.2, ...) and the Linux guest
// (LinuxAddr).
const fornaxdAddr = "10.0.0.60"

// buildFornaxd builds cmd/fornaxd into a temporary directory.
func buildFornaxd(t *testing.T) string {
	t.Helper()
	goCmd := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goCmd); err != nil {
		if goCmd, err = exec.LookPath("go"); err != nil {
			t.Fatal("no go command to build cmd/fornaxd with")
		}
	}
	bin := filepath.Join(t.TempDir(), "fornaxd")
	cmd := exec.Command(goCmd, "build", "-o", bin, "./cmd/fornaxd")
	cmd.Dir = repoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/fornaxd: %v\n%s", err, out)
	}
	return bin
}

// linuxHost is a network namespace of the test's own on the VMs' LAN: a
// veth pair from it to the bridge, its end fxd0 at fornaxdAddr/24. It is
// a Linux host beside the VMs, with a MAC and an address of its own; the
// test deletes it (and so the veth pair) when it ends.
type linuxHost struct {
	ns, iface string
}

func attachLinuxHost(t *testing.T) linuxHost {
	t.Helper()
	h := linuxHost{ns: fmt.Sprintf("fxd%d", os.Getpid()), iface: "fxd0"}
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	exec.Command("ip", "netns", "del", h.ns).Run() // left by a crashed run
	run("netns", "add", h.ns)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", h.ns).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v %s", h.ns, err, out)
		}
	})
	run("link", "add", h.iface, "netns", h.ns, "type", "veth", "peer", "name", "fxdbr0", "netns", Namespace)
	run("-n", Namespace, "link", "set", "fxdbr0", "master", "fxbr0", "up")
	run("-n", h.ns, "addr", "add", fornaxdAddr+"/24", "dev", h.iface)
	run("-n", h.ns, "link", "set", h.iface, "up")
	run("-n", h.ns, "link", "set", "lo", "up")
	return h
}

// id is the node id fornaxd derives from the host's MAC.
func (h linuxHost) id(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("ip", "-n", h.ns, "-br", "link", "show", h.iface).Output()
	f := strings.Fields(string(out))
	if err != nil || len(f) < 3 {
		t.Fatalf("ip -br link show %s: %v %q", h.iface, err, out)
	}
	mac, err := net.ParseMAC(f[2])
	if err != nil {
		t.Fatal(err)
	}
	return cluster.IDFromMAC(mac)
}

// TestFornaxd: a Linux host running fornaxd and two Fornax VMs form one
// cluster. Each VM lists fornaxd and the other VM, fornaxd lists both
// VMs over its 9P server, /cluster/events streams over that 9P, and
// SIGTERM makes fornaxd send LEAVE, which the VMs act on at once. Plain
// with the default profile and fornaxd's default 9P (read-only), then
// keyed with the fast profile and -9p-rw.
func TestFornaxd(t *testing.T) {
	k := kernel(t, "FORNAX_KERNEL_CLUSTER")
	if os.Geteuid() != 0 {
		t.Skip("VM TEST SKIPPED: the virtual LAN needs root (network namespaces)")
	}
	bin := buildFornaxd(t)
	t.Run("plain", func(t *testing.T) {
		testFornaxd(t, k, bin, Options{}, []string{"-name", "linux-01"}, false)
	})
	t.Run("keyed-fast", func(t *testing.T) {
		key := newClusterKey(t)
		testFornaxd(t, k, bin, Options{KeyFile: key.path, Append: []string{"profile=fast"}},
			[]string{"-name", "linux-01", "-key-file", key.path, "-profile", "fast", "-9p-rw"}, true)
	})
}

func testFornaxd(t *testing.T, kernel, bin string, opts Options, args []string, rw bool) {
	lan := startLANOpts(t, kernel, 2, opts)
	host := attachLinuxHost(t)
	hostID := host.id(t)
	ids := vmNodeIDs(t, lan)

	fd := startFornaxd(t, bin, host, args...)
	cmd, log, exited, started := fd.cmd, fd.log, fd.exited, fd.started
	log.Wait(t, "cluster: joined as "+hostID+" (linux-01) at "+fornaxdAddr, 10*time.Second)

	// Each VM lists fornaxd and the other VM.
	for i, vm := range lan.VMs {
		at, _ := poll(t, vm, "ls /cluster/nodes/", 10*time.Second, 50*time.Millisecond, func(s string) bool {
			return strings.Contains(s, hostID+"/") && strings.Contains(s, ids[1-i]+"/")
		})
		t.Logf("%s lists fornaxd and %s %v after fornaxd started", vm.Name, Name(2-i), at.Sub(started).Round(time.Millisecond))
		dir := "/cluster/nodes/" + hostID + "/"
		for file, want := range map[string]string{"name": "linux-01\n", "addr": fornaxdAddr + "\n", "status": "online\n"} {
			if got := command(t, vm, "cat "+dir+file); got != want {
				t.Errorf("%s: %s%s = %q, want %q", vm.Name, dir, file, got, want)
			}
		}
		want := fmt.Sprintf("cpus %d\n", hostCPUs(t))
		if got := command(t, vm, "cat "+dir+"resources"); !strings.HasPrefix(got, want) {
			t.Errorf("%s: %sresources = %q, want the host's %q first", vm.Name, dir, got, want)
		}
	}

	// fornaxd lists both VMs: its /cluster over 9P.
	fsys := Mount9P(t, Namespace, fornaxdAddr+":564")
	var listed time.Time
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		got := Ls9P(t, fsys, "/cluster/nodes")
		if slices.Equal(got, sorted(ids)) {
			listed = time.Now()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("fornaxd's /cluster/nodes: %q, want %q", got, sorted(ids))
		}
	}
	t.Logf("fornaxd lists both VMs %v after it started", listed.Sub(started).Round(time.Millisecond))
	for i, id := range ids {
		if got := Read9P(t, fsys, "/cluster/nodes/"+id+"/name"); got != Name(i+1)+"\n" {
			t.Errorf("fornaxd: %s's name %q, want %s", id, got, Name(i+1))
		}
		if got := Read9P(t, fsys, "/cluster/nodes/"+id+"/addr"); got != Addr(i+1)+"\n" {
			t.Errorf("fornaxd: %s's addr %q, want %s", id, got, Addr(i+1))
		}
	}
	if got := Read9P(t, fsys, "/dev/sysname"); got != "linux-01\n" {
		t.Errorf("fornaxd's /dev/sysname: %q", got)
	}
	// The layout is a VM's: the same paths on both.
	if got, want := Read9P(t, fsys, "/cluster/self/id"), hostID+"\n"; got != want {
		t.Errorf("fornaxd's /cluster/self/id: %q, want %q", got, want)
	}

	// /cluster/events over fornaxd's 9P: VM 2 leaves and joins again.
	events, err := fsys.Open("/cluster/events", plan9.OREAD)
	if err != nil {
		t.Fatal(err)
	}
	defer events.Close()
	command(t, lan.VMs[1], "echo leave > /cluster/ctl")
	command(t, lan.VMs[1], "echo join > /cluster/ctl")
	got := ReadStream(t, events, 2, 10*time.Second)
	want := []string{ids[1] + " left", ids[1] + " joined " + Name(2) + " " + Addr(2)}
	if len(got) != 2 || !strings.HasSuffix(got[0], want[0]) || !strings.HasSuffix(got[1], want[1]) {
		t.Errorf("fornaxd's /cluster/events: %q, want lines ending in %q", got, want)
	}
	// VM 2 emptied its table when it left: it lists the others again
	// once they answer its join ANNOUNCE (§4.1: within 1.2 s).
	t0 := time.Now()
	at, _ := poll(t, lan.VMs[1], "ls /cluster/nodes/", 5*time.Second, 20*time.Millisecond, func(s string) bool {
		return strings.Contains(s, hostID+"/") && strings.Contains(s, ids[0]+"/")
	})
	t.Logf("%s, back, lists fornaxd and %s %v after its join", lan.VMs[1].Name, Name(1), at.Sub(t0).Round(time.Millisecond))

	// Writes over 9P: refused by default, taken with -9p-rw.
	ctl, err := fsys.Open("/cluster/ctl", plan9.OWRITE)
	if !rw {
		if err == nil {
			ctl.Close()
			t.Error("fornaxd's /cluster/ctl opened for writing without -9p-rw")
		}
	} else {
		if err != nil {
			t.Fatalf("open /cluster/ctl with -9p-rw: %v", err)
		}
		_, err := ctl.Write([]byte("name linux-02\n"))
		ctl.Close()
		if err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		at, _ := poll(t, lan.VMs[0], "cat /cluster/nodes/"+hostID+"/name", 5*time.Second, 20*time.Millisecond, equals("linux-02\n"))
		t.Logf("a rename written over 9P shows on %s after %v", lan.VMs[0].Name, at.Sub(t0).Round(time.Millisecond))
	}
	name, _ := strings.CutSuffix(Read9P(t, fsys, "/cluster/self/name"), "\n")

	// SIGTERM: fornaxd sends LEAVE and exits 0; the VMs drop it at once,
	// without waiting to find it suspect.
	t0 = time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatal("fornaxd still runs 10 s after SIGTERM")
	}
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("fornaxd exited %d after SIGTERM, want 0", code)
	}
	for _, s := range []string{"fornaxd: SIGTERM: leaving the cluster\n", "cluster: left\n", "fornaxd: stopped\n"} {
		if !strings.Contains(log.String(), s) {
			t.Errorf("fornaxd's log lacks %q", s)
		}
	}
	for _, vm := range lan.VMs {
		at, _ := poll(t, vm, "ls /cluster/nodes/", 3*time.Second, 20*time.Millisecond, lacks(hostID))
		t.Logf("%s dropped fornaxd %v after the SIGTERM", vm.Name, at.Sub(t0).Round(time.Millisecond))
		if got, want := command(t, vm, "cat /dev/kmesg"), fmt.Sprintf("cluster: %s (%s) left", hostID, name); !strings.Contains(got, want) {
			t.Errorf("%s: /dev/kmesg lacks %q", vm.Name, want)
		}
	}
	// The VMs' own membership is untouched.
	for i, vm := range lan.VMs {
		if got := command(t, vm, "ls /cluster/nodes/"); got != ids[1-i]+"/\n" {
			t.Errorf("%s lists %q after fornaxd left, want %s/", vm.Name, got, ids[1-i])
		}
	}
	t.Logf("fornaxd's log:\n%s", log.String())
}

// fornaxd is a running fornaxd.
type fornaxd struct {
	cmd     *exec.Cmd
	log     *LogBuffer
	exited  chan struct{}
	started time.Time
}

// startFornaxd runs fornaxd on host's interface, killed when the test
// ends.
func startFornaxd(t *testing.T, bin string, host linuxHost, args ...string) *fornaxd {
	t.Helper()
	fd := &fornaxd{log: NewLogBuffer(), exited: make(chan struct{})}
	fd.cmd = exec.Command("ip", append([]string{"netns", "exec", host.ns, bin, "-iface", host.iface}, args...)...)
	fd.cmd.Stdout, fd.cmd.Stderr = fd.log, fd.log
	fd.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	fd.started = time.Now()
	if err := fd.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { fd.cmd.Wait(); close(fd.exited) }()
	t.Cleanup(func() {
		fd.cmd.Process.Kill()
		<-fd.exited
		if t.Failed() {
			t.Logf("fornaxd's log:\n%s", fd.log.String())
		}
	})
	return fd
}

// TestFornaxdLinuxMount: Linux mounts fornaxd's name space over 9P as
// docs/guide.md says, and reads the cluster there as from a VM.
func TestFornaxdLinuxMount(t *testing.T) {
	k := kernel(t, "FORNAX_KERNEL_CLUSTER")
	if os.Geteuid() != 0 {
		t.Skip("VM TEST SKIPPED: the virtual LAN needs root (network namespaces)")
	}
	bin := buildFornaxd(t)
	lk, li := linuxGuest(t)
	lan := startLANOpts(t, k, 1, Options{})
	host := attachLinuxHost(t)
	fd := startFornaxd(t, bin, host, "-name", "linux-01")
	id := vmNodeIDs(t, lan)[0]
	fd.log.Wait(t, "cluster: "+id+" (fornax-01) joined", 10*time.Second)

	g, _ := bootLinux(t, lk, li)
	mount := "mkdir -p /mnt/fornaxd && mount -t 9p -o trans=tcp,port=564 " + fornaxdAddr + " /mnt/fornaxd && echo mounted"
	if out := command(t, g.VM, mount); !strings.Contains(out, "mounted") {
		t.Fatalf("%s: %q", mount, out)
	}
	for line, want := range map[string]string{
		"ls -1 /mnt/fornaxd/":                   "cluster\ndev\nmdns\n",
		"ls -1 /mnt/fornaxd/cluster/nodes/":     id + "\n",
		"cat /mnt/fornaxd/cluster/nodes/*/name": "fornax-01\n",
		"cat /mnt/fornaxd/dev/sysname":          "linux-01\n",
	} {
		if got := command(t, g.VM, line); got != want {
			t.Errorf("guest: %s: %q, want %q", line, got, want)
		}
	}
	// Read-only without -9p-rw: the write fails, the name stays.
	if got := command(t, g.VM, "echo name x > /mnt/fornaxd/cluster/ctl; cat /mnt/fornaxd/cluster/self/name"); !strings.HasSuffix(got, "linux-01\n") || !strings.Contains(got, "ermission denied") {
		t.Errorf("guest: write to a read-only ctl: %q", got)
	}
	t.Logf("guest: cat /mnt/fornaxd/cluster/view:\n%s", command(t, g.VM, "cat /mnt/fornaxd/cluster/view"))
	command(t, g.VM, "umount /mnt/fornaxd")
}

// hostCPUs counts the cpuN lines of /proc/stat, as fornaxd does.
func hostCPUs(t *testing.T) int {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for line := range strings.Lines(string(b)) {
		if strings.HasPrefix(line, "cpu") && !strings.HasPrefix(line, "cpu ") {
			n++
		}
	}
	return n
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
