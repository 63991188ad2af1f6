package vmtest

import (
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// linuxGuest builds (or finds in the cache) the Linux guest's kernel and
// initramfs. It needs apt-get and dpkg-deb (Debian), so it runs with the
// VM tests only.
func linuxGuest(t *testing.T) (kernel, initrd string) {
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
func pushTCP(t *testing.T, size int, addr string) (float64, time.Duration) {
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

	lan := startLAN(t, k, 2)
	g, err := StartLinux(LinuxConfig{Kernel: lk, Initrd: li})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("console of the Linux guest:\n%s", g.Log())
		}
		if err := g.Stop(); err != nil {
			t.Error(err)
		}
	})
	if _, err := g.Expect(g.Prompt(), 90*time.Second); err != nil {
		t.Fatal(err)
	}
	linuxBoot := time.Since(g.Started)
	t.Logf("boot, QEMU start to prompt: Linux guest %v, Fornax %v (%s)",
		linuxBoot.Round(time.Millisecond), fornaxBoot.Round(time.Millisecond), banner)
	// a fresh prompt, to pair answers with prompts
	if _, err := g.Command("", 10*time.Second); err != nil {
		t.Fatal(err)
	}
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

	_ = lan
}
