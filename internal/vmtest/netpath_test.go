package vmtest

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// netpathSize is what each transfer of BenchmarkNetpath moves.
const netpathSize = 200_000_000

// BenchmarkNetpath boots a Fornax VM and the Debian Linux guest on the
// same bridge, in one run, and moves 200 MB over TCP into each (from
// socat on the namespace host into Fornax's discard port and into the
// guest's busybox nc) and out of each (Fornax's chargen port, the guest's
// nc fed from /dev/zero, into socat on the host). It prints MB/s and
// QEMU's CPU seconds per GB moved for both, and the ratios. Run it with
// `make bench-net` (`make bench-net BENCH_APPEND=offload=off` for Fornax
// without the virtio-net offloads, `offload=csum,mrg` with some).
func BenchmarkNetpath(b *testing.B) {
	k := kernelB(b, "FORNAX_KERNEL")
	if os.Geteuid() != 0 {
		b.Skip("needs root (network namespaces)")
	}
	lk, li := linuxGuest(b)
	// FORNAX_APPEND adds to the Fornax VM's command line: offload=off
	// gives the figures without the virtio-net offloads, offload=csum
	// with checksums only, and so on.
	lan := startLANB(b, k, 1, Options{Append: strings.Fields(os.Getenv("FORNAX_APPEND"))})
	g, _ := bootLinux(b, lk, li)
	fx := lan.VMs[0]
	if out, err := fx.Command("cat /net/virtio", 10*time.Second); err == nil {
		b.Logf("fornax: %s", lastLine(out, 1))
	}

	type result struct{ rate, cpuPerGB float64 }
	measure := func(pid int, move func() float64) result {
		c0, err := cpuSeconds(pid)
		if err != nil {
			b.Fatal(err)
		}
		rate := move()
		c1, _ := cpuSeconds(pid)
		return result{rate, (c1 - c0) / (netpathSize / 1e9)}
	}
	var fxRx, fxTx, lxRx, lxTx result
	for range b.N {
		fxRx = measure(fx.Pid(), func() float64 {
			r, _ := pushTCP(b, netpathSize, Addr(1)+":9")
			return r
		})
		fxTx = measure(fx.Pid(), func() float64 { return pullTCP(b, Addr(1)+":19") })
		lxRx = measure(g.Pid(), func() float64 { return linuxReceive(b, g) })
		lxTx = measure(g.Pid(), func() float64 { return linuxSend(b, g) })
	}
	b.Logf("\n| %-22s | %9s | %9s | %7s |\n|---|---|---|---|\n"+
		"| TCP receive MB/s      | %9.1f | %9.1f | %7.2f |\n"+
		"| receive CPU s/GB      | %9.2f | %9.2f | %7.2f |\n"+
		"| TCP transmit MB/s     | %9.1f | %9.1f | %7.2f |\n"+
		"| transmit CPU s/GB     | %9.2f | %9.2f | %7.2f |",
		"200 MB over TCP", "Fornax", "Linux", "ratio",
		fxRx.rate, lxRx.rate, fxRx.rate/lxRx.rate,
		fxRx.cpuPerGB, lxRx.cpuPerGB, fxRx.cpuPerGB/lxRx.cpuPerGB,
		fxTx.rate, lxTx.rate, fxTx.rate/lxTx.rate,
		fxTx.cpuPerGB, lxTx.cpuPerGB, fxTx.cpuPerGB/lxTx.cpuPerGB)
	b.ReportMetric(fxRx.rate, "fornax-rx-MB/s")
	b.ReportMetric(lxRx.rate, "linux-rx-MB/s")
	b.ReportMetric(fxTx.rate, "fornax-tx-MB/s")
	b.ReportMetric(lxTx.rate, "linux-tx-MB/s")
	b.ReportMetric(0, "ns/op")
}

// pullTCP reads netpathSize bytes from addr with socat on the namespace
// host and returns MB/s.
func pullTCP(b testing.TB, addr string) float64 {
	cmd := fmt.Sprintf("socat -u TCP4:%s,readbytes=%d /dev/null", addr, netpathSize)
	t0 := time.Now()
	if out, err := InNamespace(120*time.Second, "sh", "-c", cmd); err != nil {
		b.Fatalf("%s: %v\n%s", cmd, err, out)
	}
	return netpathSize / 1e6 / time.Since(t0).Seconds()
}

// linuxReceive pushes netpathSize bytes into the guest's nc.
func linuxReceive(b testing.TB, g *Linux) float64 {
	if err := g.Type("nc -l -p 5001 >/dev/null; echo nc-exit=$?\r"); err != nil {
		b.Fatal(err)
	}
	if _, err := g.Expect("echo nc-exit=$?\n", 5*time.Second); err != nil {
		b.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	rate, _ := pushTCP(b, netpathSize, LinuxAddr+":5001")
	if out, err := g.Expect("\n"+g.Prompt(), 30*time.Second); err != nil || !strings.Contains(out, "nc-exit=0") {
		b.Fatalf("nc in the guest: %v %q", err, out)
	}
	return rate
}

// linuxSend has the guest's nc send zeros from /dev/zero (no pipe, so
// that the guest's shell tools do not set the pace) to socat on the
// namespace host, which takes netpathSize bytes and closes, ending nc;
// timed on the host, from the command to socat's end.
func linuxSend(b testing.TB, g *Linux) float64 {
	done := make(chan error, 1)
	var end time.Time
	go func() {
		cmd := fmt.Sprintf("socat -u TCP4-LISTEN:5002,reuseaddr,readbytes=%d /dev/null", netpathSize)
		_, err := InNamespace(120*time.Second, "sh", "-c", cmd)
		end = time.Now()
		done <- err
	}()
	time.Sleep(300 * time.Millisecond)
	t0 := time.Now()
	if _, err := g.Command("nc 10.0.0.1 5002 </dev/zero", 120*time.Second); err != nil {
		b.Fatal(err)
	}
	if err := <-done; err != nil {
		b.Fatalf("socat listener: %v", err)
	}
	return netpathSize / 1e6 / end.Sub(t0).Seconds()
}

// BenchmarkNetpathSoak pushes zeros into a Fornax VM's discard port for
// FORNAX_SOAK (a Go duration, default 2m; the issue asks 10m) and
// samples the runtime's memory in use (/proc/meminfo "used") every 15 s:
// it must stay flat. It prints the samples, the rate, and the device's
// interrupts per MB. Run it with `make bench-net-soak`.
func BenchmarkNetpathSoak(b *testing.B) {
	k := kernelB(b, "FORNAX_KERNEL")
	if os.Geteuid() != 0 {
		b.Skip("needs root (network namespaces)")
	}
	soak := 2 * time.Minute
	if v := os.Getenv("FORNAX_SOAK"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatalf("FORNAX_SOAK=%q: %v (want e.g. 10m)", v, err)
		}
		soak = d
	}
	lan := startLANB(b, k, 1)
	vm := lan.VMs[0]
	used := func() int64 {
		out, err := vm.Command("cat /proc/meminfo", 10*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		var u int64
		for _, l := range strings.Split(out, "\n") {
			fmt.Sscanf(l, "used %d", &u)
		}
		return u
	}
	irqs := func() (n int64) {
		out, _ := vm.Command("cat /net/virtio", 10*time.Second)
		for _, l := range strings.Split(out, "\n") {
			fmt.Sscanf(l, "virtio interrupts %d", &n)
		}
		return
	}
	i0 := irqs()
	samples := []int64{used()}
	done := make(chan float64, 1)
	go func() {
		t0 := time.Now()
		cmd := fmt.Sprintf("timeout %d socat -u /dev/zero TCP4:%s:9 2>&1; true", int(soak.Seconds()), Addr(1))
		InNamespace(soak+time.Minute, "sh", "-c", cmd)
		done <- time.Since(t0).Seconds()
	}()
	tick := time.NewTicker(15 * time.Second)
	defer tick.Stop()
	var secs float64
wait:
	for {
		select {
		case secs = <-done:
			break wait
		case <-tick.C:
			samples = append(samples, used())
		}
	}
	samples = append(samples, used())
	out, _ := vm.Command("cat /net/services", 10*time.Second)
	var bytes int64
	for _, l := range strings.Split(out, "\n") {
		fmt.Sscanf(l, "discard_bytes %d", &bytes)
	}
	mb := float64(bytes) / 1e6
	b.Logf("soak %v: %.0f MB into discard, %.1f MB/s, %.2f interrupts per MB; runtime memory used, every 15 s (MiB): %v",
		soak, mb, mb/secs, float64(irqs()-i0)/mb, mib(samples))
	b.ReportMetric(mb/secs, "MB/s")
	b.ReportMetric(float64(slices.Max(samples)-samples[0])/(1<<20), "growth-MiB")
	b.ReportMetric(0, "ns/op")
}

func mib(v []int64) []string {
	var s []string
	for _, x := range v {
		s = append(s, fmt.Sprintf("%.1f", float64(x)/(1<<20)))
	}
	return s
}
