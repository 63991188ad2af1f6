package vmtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The benchmarks measure the timing goals and print them as metrics:
// `make bench` runs them. They assert nothing.

// BenchmarkBoot boots the reference VM and reports the guest's own
// reset-to-prompt time and the host's QEMU-start-to-prompt time.
func BenchmarkBoot(b *testing.B) {
	k := kernelB(b, "FORNAX_KERNEL")
	var guest, host float64
	for i := 0; i < b.N; i++ {
		vm, err := Start(Config{Kernel: k, Name: "fornax-01"})
		if err != nil {
			b.Fatal(err)
		}
		banner, err := vm.WaitReady(30 * time.Second)
		h := time.Since(vm.Started)
		vm.Kill()
		if err != nil {
			b.Fatal(err)
		}
		m := bannerRE.FindStringSubmatch(banner)
		if m == nil {
			b.Fatalf("banner %q", banner)
		}
		g, _ := strconv.ParseFloat(m[1], 64)
		guest += g
		host += float64(h.Milliseconds())
	}
	b.ReportMetric(guest/float64(b.N), "guest-ms")
	b.ReportMetric(host/float64(b.N), "host-ms")
	b.ReportMetric(0, "ns/op")
}

func kernelB(b *testing.B, env string) string {
	k := os.Getenv(env)
	if k == "" {
		b.Skipf("%s is not set; `make bench` builds the images and sets it", env)
	}
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	return k
}

func startLANB(b *testing.B, kernel string, count int, opts ...Options) *LAN {
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	lan, err := StartLANOpts(kernel, count, b.TempDir(), o)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { lan.Stop() })
	return lan
}

// transfer sends size bytes with socat from the namespace host to addr
// and returns MB/s.
func transfer(b *testing.B, size int, addr string) float64 {
	t0 := time.Now()
	cmd := fmt.Sprintf("head -c %d /dev/zero | socat -u - TCP4:%s", size, addr)
	if out, err := InNamespace(120*time.Second, "sh", "-c", cmd); err != nil {
		b.Fatalf("%s: %v\n%s", cmd, err, out)
	}
	return float64(size) / (1 << 20) / time.Since(t0).Seconds()
}

// BenchmarkDiscard measures TCP throughput from the namespace host into a
// VM's discard port, beside the same transfer to a Linux listener on the
// namespace's loopback for scale.
func BenchmarkDiscard(b *testing.B) {
	lan := startLANB(b, kernelB(b, "FORNAX_KERNEL"), 1)
	const size = 64 << 20
	var vm float64
	for i := 0; i < b.N; i++ {
		vm += transfer(b, size, Addr(1)+":9")
	}
	sink := exec.Command("ip", "netns", "exec", Namespace, "socat", "-u", "TCP4-LISTEN:9999,reuseaddr,fork", "OPEN:/dev/null")
	if err := sink.Start(); err != nil {
		b.Fatal(err)
	}
	defer sink.Process.Kill()
	time.Sleep(300 * time.Millisecond)
	linux := transfer(b, 1<<30, "127.0.0.1:9999")
	b.ReportMetric(vm/float64(b.N), "vm-MB/s")
	b.ReportMetric(linux, "loopback-MB/s")
	b.ReportMetric(0, "ns/op")
	_ = lan
}

// cpuSeconds returns a process's user+system CPU time.
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	u, _ := strconv.ParseFloat(f[11], 64)
	k, _ := strconv.ParseFloat(f[12], 64)
	return (u + k) / 100, nil // USER_HZ
}

// BenchmarkIdle reports the host CPU an idle VM's QEMU uses over 30 s,
// in percent of one core, with the cluster image (joined, gossiping,
// nothing else to do; else the plain image), without and with a key.
func BenchmarkIdle(b *testing.B) {
	k := os.Getenv("FORNAX_KERNEL_CLUSTER")
	if k == "" {
		k = kernelB(b, "FORNAX_KERNEL")
	}
	b.Run("plain", func(b *testing.B) { idle(b, k, Options{}) })
	b.Run("keyed", func(b *testing.B) {
		key := filepath.Join(b.TempDir(), "cluster.key")
		if err := os.WriteFile(key, []byte(strings.Repeat("5a", 32)+"\n"), 0o600); err != nil {
			b.Fatal(err)
		}
		idle(b, k, Options{KeyFile: key})
	})
}

func idle(b *testing.B, k string, opts Options) {
	lan := startLANB(b, k, 2, opts)
	time.Sleep(2 * time.Second)
	var pct float64
	for i := 0; i < b.N; i++ {
		pid := lan.VMs[0].Pid()
		c0, err := cpuSeconds(pid)
		if err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		time.Sleep(30 * time.Second)
		c1, _ := cpuSeconds(pid)
		pct += 100 * (c1 - c0) / time.Since(t0).Seconds()
	}
	b.ReportMetric(pct/float64(b.N), "%core")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkDiscovery measures how long a booting node takes to be listed
// by a running one: VM 2 leaves (so VM 1 forgets it), is killed and boots
// again; the clock runs from its prompt to its id in VM 1's nodes/.
func BenchmarkDiscovery(b *testing.B) {
	lan := startLANB(b, kernelB(b, "FORNAX_KERNEL_CLUSTER"), 2)
	vm1 := lan.VMs[0]
	cmd := func(vm *VM, line string) string {
		out, err := vm.Command(line, 10*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		return out
	}
	id2 := strings.TrimSpace(cmd(lan.VMs[1], "cat /cluster/self/id"))
	var total time.Duration
	for i := 0; i < b.N; i++ {
		cmd(lan.VMs[1], "echo leave > /cluster/ctl")
		if err := lan.Kill(2); err != nil {
			b.Fatal(err)
		}
		for strings.Contains(cmd(vm1, "ls /cluster/nodes/"), id2) {
			time.Sleep(10 * time.Millisecond)
		}
		if err := lan.Restart(2); err != nil {
			b.Fatal(err)
		}
		prompt := time.Now()
		for !strings.Contains(cmd(vm1, "ls /cluster/nodes/"), id2) {
			if time.Since(prompt) > 10*time.Second {
				b.Fatalf("%s not listed 10 s after its prompt", id2)
			}
		}
		total += time.Since(prompt)
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "discovery-ms")
	b.ReportMetric(0, "ns/op")
}
