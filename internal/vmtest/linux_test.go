package vmtest

import (
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// linuxGuest builds (or finds in the cache) the Linux guest's kernel and
// initramfs. It needs apt-get and dpkg-deb (Debian), so it runs with the
// VM tests only.
func linuxGuest(t testing.TB) (kernel, initrd string) {
	t.Helper()
	for _, tool := range []string{"apt-get", "apt-cache", "dpkg-deb"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("VM TEST SKIPPED: the Linux guest is built from Debian packages; %s is missing", tool)
		}
	}
	dir, err := LinuxCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	kernel, initrd, err = BuildLinuxGuest(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Linux guest: %s, %s (%v)", kernel, initrd, time.Since(t0).Round(time.Millisecond))
	return kernel, initrd
}

// TestBuildLinuxGuest builds the Linux guest outside any VM: the
// initramfs holds /init, busybox and the modules, dependencies first.
func TestBuildLinuxGuest(t *testing.T) {
	kernel(t, "FORNAX_KERNEL_CLUSTER")
	_, initrd := linuxGuest(t)
	f, err := os.Open(initrd)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	files := readNewc(t, b)
	for _, name := range []string{"init", "bin/busybox", "dev/console", "lib/modules/order"} {
		if _, ok := files[name]; !ok {
			t.Errorf("initramfs has no %s", name)
		}
	}
	mods := strings.Fields(files["lib/modules/order"])
	for _, m := range mods {
		if _, ok := files["lib/modules/"+m+".ko"]; !ok {
			t.Errorf("initramfs has no module %s", m)
		}
	}
	t.Logf("modules: %v", mods)
	pos := map[string]int{}
	for k, m := range mods {
		pos[m] = k
	}
	for _, p := range [][2]string{{"virtio", "virtio_mmio"}, {"virtio_ring", "virtio_net"}, {"failover", "net_failover"},
		{"net_failover", "virtio_net"}, {"9pnet", "9pnet_fd"}, {"netfs", "9p"}, {"9pnet", "9p"}} {
		a, okA := pos[p[0]]
		c, okC := pos[p[1]]
		if !okA || !okC || a > c {
			t.Errorf("module order: %s must come before %s in %v", p[0], p[1], mods)
		}
	}
}

// readNewc returns the files of a newc cpio archive by name, their
// contents (symbolic links: their targets) as strings.
func readNewc(t *testing.T, b []byte) map[string]string {
	files := map[string]string{}
	align := func(n int) int { return (n + 3) &^ 3 }
	for off := 0; ; {
		if off+110 > len(b) || string(b[off:off+6]) != "070701" {
			t.Fatalf("initramfs: no newc header at %d", off)
		}
		field := func(i int) int {
			n, err := strconv.ParseUint(string(b[off+6+8*i:off+14+8*i]), 16, 32)
			if err != nil {
				t.Fatalf("initramfs: header at %d: %v", off, err)
			}
			return int(n)
		}
		size, namesize := field(6), field(11)
		name := string(b[off+110 : off+110+namesize-1])
		data := align(off + 110 + namesize)
		if name == "TRAILER!!!" {
			return files
		}
		files[name] = string(b[data : data+size])
		off = align(data + size)
	}
}

// pushTCP sends size bytes of zeros with socat from the namespace host
// side to addr (retrying while nothing listens yet) and returns MB/s
// (10^6 bytes) and the time taken.
func pushTCP(t testing.TB, size int, addr string) (float64, time.Duration) {
	t.Helper()
	cmd := fmt.Sprintf("socat -u /dev/zero,readbytes=%d TCP4:%s", size, addr)
	for try := 0; ; try++ {
		t0 := time.Now()
		out, err := InNamespace(90*time.Second, "sh", "-c", cmd)
		d := time.Since(t0)
		if err == nil {
			return float64(size) / 1e6 / d.Seconds(), d
		}
		if try >= 20 || !strings.Contains(out, "refused") {
			t.Fatalf("%s: %v\n%s", cmd, err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestLinuxGuest boots two Fornax cluster VMs and a Debian Linux guest on
// the same bridge, compares their boot times and TCP receive throughput,
// and checks the guest reaches Fornax.
func TestLinuxGuest(t *testing.T) {
	k := kernel(t, "FORNAX_KERNEL_CLUSTER")
	if os.Geteuid() != 0 {
		t.Skip("VM TEST SKIPPED: the virtual LAN needs root (network namespaces)")
	}
	lk, li := linuxGuest(t)

	// Fornax's boot, QEMU start to prompt, on its own (the LAN's VMs are
	// started by the launcher, in the background).
	vm := startVM(t, Config{Kernel: k, Name: "fornax-09"})
	banner, err := vm.WaitReady(30 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	fornaxBoot := time.Since(vm.Started)
	vm.Kill()

	lan := startLANOpts(t, k, 2, Options{Append: []string{"9p=rw"}})
	g, linuxBoot := bootLinux(t, lk, li)
	t.Logf("boot, QEMU start to prompt: Linux guest %v, Fornax %v (%s)",
		linuxBoot.Round(time.Millisecond), fornaxBoot.Round(time.Millisecond), banner)
	if out := command(t, g.VM, "cat /proc/version"); !strings.HasPrefix(out, "Linux version") {
		t.Errorf("/proc/version: %q", out)
	}
	if strings.Contains(g.Log(), "init: insmod") {
		t.Errorf("the guest could not load its modules")
	}
	if out := command(t, g.VM, "grep -w 9p /proc/filesystems"); !strings.Contains(out, "9p") {
		t.Errorf("no 9p in the guest's /proc/filesystems: %q", out)
	}
	if out := command(t, g.VM, "ip -4 addr show eth0"); !strings.Contains(out, LinuxAddr+"/24") {
		t.Fatalf("guest address: %q", out)
	}

	out, err := g.Command("ping -c 3 "+Addr(1), 30*time.Second)
	if err != nil || !strings.Contains(out, "3 packets received") {
		t.Errorf("ping %s from the guest: %v\n%s", Addr(1), err, out)
	}
	t.Logf("guest ping: %s", lastLine(out, 1))

	// TCP receive throughput: the guest's busybox nc into /dev/null, then
	// Fornax's discard port, the same 200 MB from the same sender.
	const size = 200_000_000
	if err := g.Type("nc -l -p 5001 >/dev/null; echo nc-exit=$?\r"); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Expect("echo nc-exit=$?\n", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	linuxRate, d := pushTCP(t, size, LinuxAddr+":5001")
	if out, err := g.Expect("\n"+g.Prompt(), 30*time.Second); err != nil || !strings.Contains(out, "nc-exit=0") {
		t.Fatalf("nc in the guest: %v %q", err, out)
	}
	t.Logf("TCP receive, 200 MB from the namespace host: Linux guest (busybox nc) %.1f MB/s (%v)", linuxRate, d.Round(time.Millisecond))
	fornaxRate, d := pushTCP(t, size, Addr(1)+":9")
	t.Logf("TCP receive, 200 MB from the namespace host: Fornax discard %.1f MB/s (%v)", fornaxRate, d.Round(time.Millisecond))
	t.Logf("TCP receive, Fornax/Linux: %.2f", fornaxRate/linuxRate)

	linux9P(t, lan, g)
}

// guestCommand runs line in the Linux guest's shell and fails the test
// when the shell does not come back within timeout.
func guestCommand(t *testing.T, g *Linux, line string, timeout time.Duration) string {
	t.Helper()
	out, err := g.Command(line, timeout)
	if err != nil {
		t.Fatalf("guest: %q: %v", line, err)
	}
	return out
}

var kmsgRE = regexp.MustCompile(`(?m)^\[ *(\d+)\.(\d{6})\] fxlat (\w+)`)

// kmsgMarks returns the times of the guest's "fxlat KIND" kernel log
// lines (written with the shell's builtin echo to /dev/kmsg), by kind.
func kmsgMarks(t *testing.T, g *Linux) map[string][]time.Duration {
	out, err := g.Command("dmesg -c | grep fxlat", 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	marks := map[string][]time.Duration{}
	for _, m := range kmsgRE.FindAllStringSubmatch(out, -1) {
		sec, _ := strconv.Atoi(m[1])
		usec, _ := strconv.Atoi(m[2])
		marks[m[3]] = append(marks[m[3]], time.Duration(sec)*time.Second+time.Duration(usec)*time.Microsecond)
	}
	return marks
}

// intervals returns the sorted gaps between consecutive marks.
func intervals(marks []time.Duration) []time.Duration {
	var d []time.Duration
	for i := 1; i < len(marks); i++ {
		d = append(d, marks[i]-marks[i-1])
	}
	slices.Sort(d)
	return d
}

func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	return d[min(len(d)-1, int(float64(len(d))*p))]
}

// linux9P mounts fornax-01's name space in the Linux guest over 9P/TCP:
// the cluster's nodes, a rename seen through it, events, and a leave
// written from Linux.
func linux9P(t *testing.T, lan *LAN, g *Linux) {
	vm1, vm2 := lan.VMs[0], lan.VMs[1]
	id2 := strings.TrimSpace(command(t, vm2, "cat /cluster/self/id"))
	if out := command(t, g.VM, "mount -t 9p -o trans=tcp,port=564 "+Addr(1)+" /mnt && echo mounted"); !strings.Contains(out, "mounted") {
		t.Fatalf("mount 9p: %q", out)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		out := command(t, g.VM, "ls /mnt/cluster/nodes/")
		if strings.Contains(out, id2) {
			t.Logf("guest: ls /mnt/cluster/nodes/: %s", strings.Join(strings.Fields(out), " "))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ls /mnt/cluster/nodes/ in the guest has no %s: %q", id2, out)
		}
	}

	// A rename on fornax-02 shows through 9P within a second.
	// (The prompt is the node's name.)
	t0 := time.Now()
	if err := vm2.Type("echo name renamed-02 > /cluster/ctl\r"); err != nil {
		t.Fatal(err)
	}
	vm2.Name = "renamed-02"
	if out, err := vm2.Expect("\n"+vm2.Prompt(), 10*time.Second); err != nil {
		t.Fatalf("rename on fornax-02: %v %q", err, out)
	}
	for {
		out := command(t, g.VM, "cat /mnt/cluster/nodes/"+id2+"/name")
		if strings.TrimSpace(out) == "renamed-02" {
			t.Logf("rename on fornax-02 seen in the guest after %v", time.Since(t0).Round(time.Millisecond))
			break
		}
		if time.Since(t0) > time.Second {
			t.Fatalf("rename not seen in the guest after 1 s: %q", out)
		}
	}

	// The read latency of a peer's file: TestLinux9PRead.

	linuxEvents(t, vm2, id2, g)

	// A leave written from Linux makes fornax-01 leave, with the shell's
	// ">": its O_TRUNC makes v9fs send a Twstat of length 0 that also
	// sets the times, which the server ignores on a writable file.
	if out := command(t, g.VM, "echo leave > /mnt/cluster/ctl && echo written"); !strings.Contains(out, "written") {
		t.Errorf("writing leave to /mnt/cluster/ctl: %q", out)
	}
	if out := command(t, vm1, "cat /cluster/ctl"); !strings.HasPrefix(out, "left") {
		t.Errorf("fornax-01's /cluster/ctl after a leave written over 9P: %q", out)
	}
}

// linuxEvents measures how soon a rename on fornax-02 reaches a `cat`
// of fornax-01's /cluster/events in the guest, and checks that the cat
// goes on to print the next event too.
//
// v9fs (cache=none) sends Tread after Tread until cat's buffer is full
// or an Rread is empty. Mounted without version=, it asks for 9P2000.L
// (and goes on in the 9P2000 the server answers), which the server
// takes as v9fs: its stream rule (fs/ninep doc.go, "Streams") then
// answers the Tread after data with 0 bytes when nothing more has come,
// so cat's read(2) returns each line as it comes. A
// shell loop polls cat's output every millisecond (usleep 1000 and a
// grep) and prints a marker on the console.
func linuxEvents(t *testing.T, vm2 *VM, id2 string, g *Linux) {
	out := command(t, g.VM, "cat /mnt/cluster/events > /tmp/ev & echo evpid=$!")
	m := regexp.MustCompile(`evpid=(\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("background cat of /mnt/cluster/events: %q", out)
	}
	cat := m[1]
	defer func() {
		out := command(t, g.VM, "kill "+cat+" 2>/dev/null; wait; cat /tmp/ev")
		t.Logf("guest: what the background cat printed: %q", out)
	}()
	// cat has the file open (its read is then pending at the server).
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		out := command(t, g.VM, "ls -l /proc/"+cat+"/fd/ | grep -c events")
		if strings.TrimSpace(out) == "1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the guest's cat has not opened /mnt/cluster/events: %q", out)
		}
	}
	time.Sleep(100 * time.Millisecond)
	for i, name := range []string{"ev-02", "ev-03"} {
		seen, polls := linuxEventSeen(t, vm2, g, name)
		vm2.Name = name
		res := "n/a"
		if polls > 0 {
			res = (seen / time.Duration(polls)).Round(10 * time.Microsecond).String()
		}
		t.Logf("event latency %d: rename typed on fornax-02's console -> \"%s renamed %s\" line printed by the guest's cat of fornax-01's /cluster/events over 9P: %v; polled every ~%s (%d polls of usleep 1000 + grep)",
			i+1, id2, name, seen.Round(100*time.Microsecond), res, polls)
	}
}

// linuxEventSeen renames fornax-02 to name and waits for the guest's
// cat to have printed the event.
func linuxEventSeen(t *testing.T, vm2 *VM, g *Linux, name string) (time.Duration, int) {
	// The marker is spelled apart so its echo does not match.
	if err := g.Type("n=0; until grep -q ' renamed " + name + "' /tmp/ev; do usleep 1000; n=$((n+1)); done; echo EV''SEEN $n\r"); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Expect("\n", 5*time.Second); err != nil { // the echo of the line
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	t0 := time.Now()
	if err := vm2.Type("echo name " + name + " > /cluster/ctl\r"); err != nil {
		t.Fatal(err)
	}
	_, err := g.Expect("EVSEEN", 5*time.Second)
	seen := time.Since(t0)
	if err != nil {
		g.Type("\x03")
		g.Expect("\n"+g.Prompt(), 5*time.Second)
		t.Fatalf("the rename to %s never reached the guest's cat of /mnt/cluster/events: %v", name, err)
	}
	out, err := g.Expect("\n"+g.Prompt(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vm2.Expect("\n"+name+"% ", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`^ (\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("polling loop: %q", out)
	}
	polls, _ := strconv.Atoi(m[1])
	return seen, polls
}
