package vmtest

import (
	"fmt"
	"net"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	"9fans.net/go/plan9"
)

// BenchmarkRTT: round trips from the namespace host into one cluster VM,
// one layer at a time, and the QEMU CPU each costs: ICMP (spaced 20 ms,
// so the VM halts between them, and flooded), a 1-byte TCP echo (back to
// back, and spaced 5 ms), a 9P Tstat and a Twalk with its Tclunk. Every
// round trip is checked (bytes echoed, no Rerror) before it is timed.
func BenchmarkRTT(b *testing.B) {
	k := kernelB(b, "FORNAX_KERNEL_CLUSTER")
	lan := startLANB(b, k, 1)
	pid := lan.VMs[0].Pid()
	cpu := func() float64 {
		c, err := cpuSeconds(pid)
		if err != nil {
			b.Fatal(err)
		}
		return c
	}
	b.ReportMetric(0, "ns/op")
	for range b.N {
		for _, args := range [][]string{{"-c", "100", "-i", "0.02"}, {"-f", "-c", "1000"}} {
			c0 := cpu()
			out, err := InNamespace(60*time.Second, "ping", append(args, "-q", Addr(1))...)
			m := regexp.MustCompile(`(\d+) received.*\n.*= ([\d.]+)/([\d.]+)/`).FindStringSubmatch(out)
			if err != nil || m == nil || m[1] != args[1+slices.Index(args, "-c")] {
				b.Fatalf("ping %v: %v\n%s", args, err, out)
			}
			n, _ := strconv.Atoi(m[1])
			b.Logf("ping %v: rtt min %s ms, avg %s ms; QEMU CPU %.0f µs a ping", args, m[2], m[3], (cpu()-c0)*1e6/float64(n))
		}

		var tc net.Conn
		if err := InNetns(Namespace, func() (err error) { tc, err = net.Dial("tcp4", Addr(1)+":7"); return }); err != nil {
			b.Fatal(err)
		}
		echo := func() {
			buf := make([]byte, 8)
			tc.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := tc.Write([]byte("x")); err != nil {
				b.Fatal(err)
			}
			if n, err := tc.Read(buf); err != nil || n != 1 || buf[0] != 'x' {
				b.Fatalf("echo: %q %v", buf[:n], err)
			}
		}
		for _, pace := range []time.Duration{0, 5 * time.Millisecond} {
			rtt(b, fmt.Sprintf("tcp echo, 1 byte, %v apart", pace), 300, pace, cpu, echo)
		}
		tc.Close()

		c := Dial9P(b, Namespace, Addr(1)+":564")
		rpc := func(f *plan9.Fcall) {
			if err := plan9.WriteFcall(c, f); err != nil {
				b.Fatal(err)
			}
			r, err := plan9.ReadFcall(c)
			if err != nil || r.Type != f.Type+1 {
				b.Fatalf("%v: %v %v", f, r, err)
			}
		}
		rpc(&plan9.Fcall{Type: plan9.Tversion, Tag: plan9.NOTAG, Msize: 8192, Version: "9P2000"})
		rpc(&plan9.Fcall{Type: plan9.Tattach, Tag: 1, Fid: 0, Afid: plan9.NOFID, Uname: "none"})
		rtt(b, "9P Tstat of /", 300, 0, cpu, func() { rpc(&plan9.Fcall{Type: plan9.Tstat, Tag: 1, Fid: 0}) })
		rtt(b, "9P Twalk to cluster, then Tclunk (two round trips)", 300, 0, cpu, func() {
			rpc(&plan9.Fcall{Type: plan9.Twalk, Tag: 1, Fid: 0, Newfid: 1, Wname: []string{"cluster"}})
			rpc(&plan9.Fcall{Type: plan9.Tclunk, Tag: 1, Fid: 1})
		})
	}
}

// rtt runs op n times, gap apart, and logs its time's spread and the
// QEMU CPU each took (the gaps included: a VM halted costs little).
func rtt(b *testing.B, what string, n int, gap time.Duration, cpu func() float64, op func()) {
	d := make([]time.Duration, n)
	c0 := cpu()
	for i := range d {
		t0 := time.Now()
		op()
		d[i] = time.Since(t0)
		time.Sleep(gap)
	}
	used := cpu() - c0
	slices.Sort(d)
	b.Logf("%s: p50 %v p99 %v (n=%d); QEMU CPU %.0f µs each", what, pct(d, 0.5).Round(time.Microsecond), pct(d, 0.99).Round(time.Microsecond), n, used*1e6/float64(n))
}
