package vmtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// diodPort is where the namespace's diod (Linux's 9P server) listens.
const diodPort = 5640

// TestLinux9PRead: how long a `cat` of a peer's status file takes from
// the Linux guest, through Fornax's 9P server (fornax-01, reading
// fornax-02's entry) and, in the same run, through diod serving a file
// of the same bytes from the namespace's host side; and how many 9P
// requests each cat costs Fornax. Every read is checked (failures
// counted, bytes compared); a figure is reported only when all
// succeeded.
func TestLinux9PRead(t *testing.T) {
	k := kernel(t, "FORNAX_KERNEL_CLUSTER")
	lk, li := linuxGuest(t)
	lan := startLANOpts(t, k, 2, Options{})
	g, _ := bootLinux(t, lk, li)
	vm2 := lan.VMs[1]
	id2 := strings.TrimSpace(command(t, vm2, "cat /cluster/self/id"))
	if out := command(t, g.VM, "mount -t 9p -o trans=tcp,port=564 "+Addr(1)+" /mnt && echo mounted"); !strings.Contains(out, "mounted") {
		t.Fatalf("mount 9p: %q", out)
	}
	status := "/mnt/cluster/nodes/" + id2 + "/status"
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if out := command(t, g.VM, "cat "+status+" >/dev/null && echo readable"); strings.Contains(out, "readable") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not readable in the guest", status)
		}
	}
	command(t, g.VM, "echo on > /proc/sys/kernel/printk_devkmsg; dmesg -c >/dev/null")
	size := guestSize(t, g, status)

	const reads = 200
	before := ninepRequests(t, Addr(1))
	fornax := catLoop(t, g, "ninep", status, reads, size)
	perCat := float64(ninepRequests(t, Addr(1))-before) / reads
	local := catLoop(t, g, "local", "/proc/version", reads, guestSize(t, g, "/proc/version"))
	t.Logf("cat of a peer's %s (%d bytes) from the Linux guest, %d times, all read in full: Fornax 9P p50 %v p99 %v max %v, %.1f 9P requests per cat; a local file (/proc/version): p50 %v p99 %v",
		status, size, reads, pct(fornax, 0.5), pct(fornax, 0.99), fornax[len(fornax)-1], perCat, pct(local, 0.5), pct(local, 0.99))

	if _, err := exec.LookPath("diod"); err != nil {
		t.Logf("DIOD MISSING: no comparison with Linux's 9P server (Debian: apt-get install diod; make deps installs it)")
		return
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	body := strings.TrimSpace(command(t, g.VM, "cat "+status)) + "\n"
	if len(body) != size {
		t.Fatalf("%s read as %q, %d bytes, not %d", status, body, len(body), size)
	}
	if err := os.WriteFile(filepath.Join(dir, "status"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	startDiod(t, dir)
	mount := fmt.Sprintf("mount -t 9p -o trans=tcp,port=%d,aname=%s,version=9p2000.L,uname=root,access=user %s /mnt2", diodPort, dir, hostAddr)
	if out := command(t, g.VM, "mkdir -p /mnt2; "+mount+" && echo mounted"); !strings.Contains(out, "mounted") {
		t.Fatalf("mount diod's export: %q", out)
	}
	diodFile := "/mnt2/status"
	diod := catLoop(t, g, "diod", diodFile, reads, guestSize(t, g, diodFile))
	t.Logf("cat of diod's %s (%d bytes, the same status) from the Linux guest, %d times, all read in full: p50 %v p99 %v max %v",
		diodFile, len(body), reads, pct(diod, 0.5), pct(diod, 0.99), diod[len(diod)-1])
	t.Logf("Fornax/diod, median cat: %.2f", float64(pct(fornax, 0.5))/float64(pct(diod, 0.5)))
}

// hostAddr is the namespace's host side, the bridge's address.
const hostAddr = "10.0.0.1"

// startDiod runs diod in the namespace on hostAddr:diodPort, exporting
// dir to anyone (no authentication), until the test ends. diod names
// each client with getnameinfo, which fails where the namespace has no
// DNS: it runs with its own /etc/hosts, bind-mounted in a mount
// namespace of its own, that names the guest.
func startDiod(t *testing.T, dir string) {
	hosts := filepath.Join(t.TempDir(), "hosts")
	if err := os.WriteFile(hosts, []byte("127.0.0.1 localhost\n"+LinuxAddr+" linux-50\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	diod := fmt.Sprintf("mount --bind %s /etc/hosts && exec diod -f -n -N -S -U root -e %s -l %s:%d -L stderr", hosts, dir, hostAddr, diodPort)
	cmd := exec.Command("ip", "netns", "exec", Namespace, "unshare", "-m", "sh", "-c", diod)
	log := NewLogBuffer()
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("diod: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("diod's log:\n%s", log.String())
		}
	})
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		out, _ := InNamespace(5*time.Second, "ss", "-Htln", fmt.Sprintf("sport = :%d", diodPort))
		if strings.Contains(out, "LISTEN") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("diod does not listen on %s:%d: %s", hostAddr, diodPort, log.String())
		}
	}
}

// guestSize returns the size of file in the guest, as wc counts what
// cat reads; it fails the test if the file is empty or unreadable.
func guestSize(t *testing.T, g *Linux, file string) int {
	m := regexp.MustCompile(`size=(\d+)`).FindStringSubmatch(command(t, g.VM, "echo size=$(cat "+file+" | wc -c)"))
	if m == nil || m[1] == "0" {
		t.Fatalf("size of %s in the guest: %v", file, m)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// catLoop runs reads cats of file in the guest, each by its own
// process with a kernel-log mark before it, and returns the sorted
// intervals. Each cat appends to a file whose size is checked at the
// end (reads × size), and a cat that fails is counted: either fails the
// test.
func catLoop(t *testing.T, g *Linux, kind, file string, reads, size int) []time.Duration {
	out := guestCommand(t, g, fmt.Sprintf("rm -f /tmp/acc; i=0; f=0; while [ $i -lt %d ]; do echo fxlat %s > /dev/kmsg; cat %s >> /tmp/acc || f=$((f+1)); i=$((i+1)); done; echo fxlat %s > /dev/kmsg; echo failed=$f bytes=$(wc -c < /tmp/acc)",
		reads, kind, file, kind), 2*time.Minute)
	if !regexp.MustCompile(fmt.Sprintf(`(?m)^failed=0 bytes=%d\r?$`, reads*size)).MatchString(out) {
		t.Fatalf("%d cats of %s (%d bytes each): %q", reads, file, size, lastLine(out, 1))
	}
	d := intervals(kmsgMarks(t, g)[kind])
	if len(d) != reads {
		t.Fatalf("%s: %d intervals", kind, len(d))
	}
	return d
}

var ninepRequestsRE = regexp.MustCompile(`(?m)^fornax_9p_requests_total (\d+)`)

// ninepRequests reads the 9P requests a VM has served from its face.
func ninepRequests(t *testing.T, addr string) int {
	body, err := HTTPGet(Namespace, addr+":9711", "/metrics")
	if err != nil {
		t.Fatalf("/metrics of %s: %v", addr, err)
	}
	m := ninepRequestsRE.FindSubmatch(body)
	if m == nil {
		t.Fatalf("/metrics of %s has no fornax_9p_requests_total", addr)
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}
