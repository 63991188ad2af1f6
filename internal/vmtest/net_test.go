package vmtest

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// startLAN boots count VMs with the launcher and tears them down when
// the test ends, whatever happens.
func startLAN(t *testing.T, kernel string, count int) *LAN {
	t.Helper()
	return startLANOpts(t, kernel, count, Options{})
}

// startLANOpts boots count VMs with the launcher and its options, and
// tears them down when the test ends, whatever happens.
func startLANOpts(t *testing.T, kernel string, count int, opts Options) *LAN {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("VM TEST SKIPPED: the virtual LAN needs root (network namespaces)")
	}
	lan, err := StartLANOpts(kernel, count, t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for i := range lan.VMs {
				t.Logf("console of %s:\n%s", Name(i+1), lan.Log(i+1))
			}
		}
		if err := lan.Stop(); err != nil {
			t.Error(err)
		}
		out, _ := exec.Command("ip", "netns", "list").Output()
		for _, l := range strings.Split(string(out), "\n") {
			// "fornax (id: 0)"; other tests' namespaces may share the prefix.
			if f := strings.Fields(l); len(f) > 0 && f[0] == Namespace {
				t.Errorf("namespace %s left behind", Namespace)
			}
		}
	})
	return lan
}

func command(t *testing.T, vm *VM, line string) string {
	t.Helper()
	out, err := vm.Command(line, 20*time.Second)
	if err != nil {
		t.Fatalf("%s: %q: %v", vm.Name, line, err)
	}
	return out
}

var counterRE = regexp.MustCompile(`(?m)^(rx|tx) packets (\d+) bytes (\d+)`)

func packets(t *testing.T, vm *VM) (rx, tx int) {
	out := command(t, vm, "ifconfig")
	for _, m := range counterRE.FindAllStringSubmatch(out, -1) {
		n, _ := strconv.Atoi(m[2])
		if m[1] == "rx" {
			rx = n
		} else {
			tx = n
		}
	}
	return
}

func TestLAN(t *testing.T) {
	lan := startLAN(t, kernel(t, "FORNAX_KERNEL"), 2)
	vm1, vm2 := lan.VMs[0], lan.VMs[1]
	rx0, tx0 := packets(t, vm1)

	for i := 1; i <= 2; i++ {
		if out, err := InNamespace(15*time.Second, "ping", "-c", "3", "-W", "2", Addr(i)); err != nil || !strings.Contains(out, "3 received") {
			t.Errorf("ping %s: %v\n%s", Addr(i), err, out)
		}
	}

	// A broadcast from VM 1 reaches VM 2 and a listener on the host side.
	hostRecv := exec.Command("timeout", "8", "ip", "netns", "exec", Namespace,
		"socat", "-u", "UDP4-RECV:9999,reuseaddr", "STDOUT")
	var hostOut strings.Builder
	hostRecv.Stdout = &hostOut
	if err := hostRecv.Start(); err != nil {
		t.Fatal(err)
	}
	if err := vm2.Type("udprecv 9999 4\r"); err != nil {
		t.Fatal(err)
	}
	if _, err := vm2.Expect("listening on udp port 9999", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if out, _ := InNamespace(5*time.Second, "ss", "-Hlun", "sport = :9999"); strings.Contains(out, "9999") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the host listener did not start")
		}
	}
	if out := command(t, vm1, "udpsend 10.0.0.255:9999 fornax-broadcast"); !strings.HasPrefix(out, "sent 16 bytes to 10.0.0.255:9999") {
		t.Errorf("udpsend: %q", out)
	}
	got, err := vm2.Expect("\n"+vm2.Prompt(), 10*time.Second)
	if err != nil || !strings.Contains(got, `from 10.0.0.2:`) || !strings.Contains(got, `"fornax-broadcast"`) {
		t.Errorf("VM 2 did not get the broadcast: %v\n%s", err, got)
	}
	hostRecv.Wait()
	if !strings.Contains(hostOut.String(), "fornax-broadcast") {
		t.Errorf("host listener got %q", hostOut.String())
	}

	// TCP echo round trip from the host side.
	out, err := InNamespace(10*time.Second, "sh", "-c", "echo fornax-tcp-echo | socat -t3 - TCP4:10.0.0.2:7")
	if err != nil || out != "fornax-tcp-echo\n" {
		t.Errorf("tcp echo: %v %q", err, out)
	}
	// UDP echo likewise.
	out, err = InNamespace(10*time.Second, "sh", "-c", "echo fornax-udp-echo | socat -t3 - UDP4:10.0.0.3:7")
	if err != nil || out != "fornax-udp-echo\n" {
		t.Errorf("udp echo: %v %q", err, out)
	}

	rx1, tx1 := packets(t, vm1)
	t.Logf("%s counters: rx %d -> %d, tx %d -> %d", vm1.Name, rx0, rx1, tx0, tx1)
	if rx1 < rx0+5 || tx1 < tx0+5 {
		t.Errorf("ifconfig counters did not move: rx %d -> %d, tx %d -> %d", rx0, rx1, tx0, tx1)
	}
	if out := command(t, vm1, "cat /net/addr"); out != "10.0.0.2/24\n" {
		t.Errorf("/net/addr: %q", out)
	}
	if out := command(t, vm1, "cat /net/ether"); out != "52:54:00:f0:00:01\n" {
		t.Errorf("/net/ether: %q", out)
	}
	// the plain image has no cluster
	if out := command(t, vm1, "ls /cluster"); out != "ls: /cluster: file does not exist\n" {
		t.Errorf("ls /cluster on the plain image: %q", out)
	}
}

var (
	inflightRE = regexp.MustCompile(`virtio (rx|tx)q size (\d+) free (\d+) inflight (\d+)`)
	usedRE     = regexp.MustCompile(`used +(\d+)`)
)

// queues returns the descriptors the driver holds free, per queue.
func queues(t *testing.T, vm *VM) string {
	var b strings.Builder
	for _, m := range inflightRE.FindAllStringSubmatch(command(t, vm, "cat /net/virtio"), -1) {
		fmt.Fprintf(&b, "%sq free %s inflight %s; ", m[1], m[3], m[4])
	}
	return b.String()
}

// TestFlood floods a VM with pings for 10 s, twice: it keeps answering
// its console during and after, its descriptors are back where they were,
// and the second flood grows its memory no further than the first left it
// (the runtime keeps what a first burst made it take).
func TestFlood(t *testing.T) {
	lan := startLAN(t, kernel(t, "FORNAX_KERNEL"), 1)
	vm := lan.VMs[0]
	mem := func() int {
		m := usedRE.FindStringSubmatch(command(t, vm, "cat /proc/meminfo"))
		if m == nil {
			t.Fatal("no used figure in /proc/meminfo")
		}
		n, _ := strconv.Atoi(m[1])
		return n
	}
	flood := func() {
		cmd := exec.Command("ip", "netns", "exec", Namespace, "ping", "-f", "-q", "-w", "10", Addr(1))
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var worst time.Duration
		for i := 0; i < 8; i++ {
			time.Sleep(time.Second)
			t0 := time.Now()
			if got := command(t, vm, "cat /dev/sysname"); got != "fornax-01\n" {
				t.Errorf("during flood: %q", got)
			}
			worst = max(worst, time.Since(t0))
		}
		cmd.Wait()
		time.Sleep(time.Second)
		t.Logf("flood: %s; slowest console answer %v", lastLine(out.String(), 2), worst)
	}

	m0, q0 := mem(), queues(t, vm)
	flood()
	m1, q1 := mem(), queues(t, vm)
	flood()
	m2, q2 := mem(), queues(t, vm)
	t.Logf("runtime memory (bytes): before %d, after one flood %d, after two %d", m0, m1, m2)
	t.Logf("descriptors: before %s| after one %s| after two %s", q0, q1, q2)
	if q1 != q0 || q2 != q0 {
		t.Errorf("descriptors changed: %s -> %s -> %s", q0, q1, q2)
	}
	if m2 > m1+1<<20 {
		t.Errorf("memory grew by %d bytes over the second flood", m2-m1)
	}
	if out, err := InNamespace(10*time.Second, "ping", "-c", "2", "-W", "2", Addr(1)); err != nil {
		t.Errorf("ping after flood: %v\n%s", err, out)
	}
}

func lastLine(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
