package vmtest

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"9fans.net/go/plan9"
	"9fans.net/go/plan9/client"
)

// BenchmarkVMs boots FORNAX_BENCH_VMS cluster VMs (64 for `make
// bench-vms`) on one bridge and measures, printing a table:
//
//   - boot: from the launcher's start to the last VM's prompt, and from
//     that prompt until every VM lists all the others online (read over
//     9P from /cluster/view, docs/protocol.md §8);
//   - idle: the CPU all the QEMUs use over 30 s once converged, and the
//     resident memory of each;
//   - a crash: FORNAX_BENCH_VMS_KILL of them (8) get SIGKILL; the time
//     until every survivor lists none of them online; then they boot
//     again under the same name, address and MAC, so the same node id
//     (IDFromMAC): a rebooted machine, whose entry its peers revive
//     (§4.1, §5) rather than a new one beside a dead one. Then the time
//     from the last of their prompts until every VM lists all the others
//     online again.
//
// FORNAX_BENCH_VMS_MEM is each VM's RAM (default 64M),
// FORNAX_BENCH_VMS_APPEND extra kernel command-line words (profile=fast).
// It asserts nothing but that the cluster converges within 3 minutes.
func BenchmarkVMs(b *testing.B) {
	n := envInt(b, "FORNAX_BENCH_VMS", 0)
	if n == 0 {
		b.Skip("FORNAX_BENCH_VMS is not set: `make bench-vms` boots 64 VMs")
	}
	k := kernelB(b, "FORNAX_KERNEL_CLUSTER")
	kill := envInt(b, "FORNAX_BENCH_VMS_KILL", 8)
	if n < 2 || n > 253 || kill < 0 || kill >= n {
		b.Fatalf("FORNAX_BENCH_VMS=%d FORNAX_BENCH_VMS_KILL=%d: want 2 to 253 VMs and fewer to kill", n, kill)
	}
	mem := os.Getenv("FORNAX_BENCH_VMS_MEM")
	if mem == "" {
		mem = "64M"
	}
	opts := Options{Memory: mem, Append: strings.Fields(os.Getenv("FORNAX_BENCH_VMS_APPEND"))}
	dir := b.TempDir()
	all := make([]int, n)
	for i := range all {
		all[i] = i + 1
	}

	for range b.N {
		// Boot, watching the consoles' logs for the prompts meanwhile.
		t0 := time.Now()
		prompts := watchPrompts(dir, all, 5*time.Minute)
		lan, err := StartLANOpts(k, n, dir, opts)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { lan.Stop() })
		lastPrompt, err := latest(prompts)
		if err != nil {
			b.Fatal(err)
		}
		views := dialViews(b, all)
		full, round, err := untilAll(views, func(i int, peers map[string]string) bool { return fullView(n, peers) }, 3*time.Minute)
		if err != nil {
			b.Fatal(err)
		}
		boot, conv := lastPrompt.Sub(t0), full.Sub(lastPrompt)

		// Idle: no 9P reads, consoles quiet.
		time.Sleep(5 * time.Second)
		idleWindow := 30 * time.Second
		cpu, vmMem := idleCost(b, lan, idleWindow)
		guestMem, err := lan.VMs[0].Command("mem", 30*time.Second)
		if err != nil {
			b.Fatal(err)
		}

		// A crash of kill VMs, spread over the LAN, then their reboot.
		var victims []int
		for j := range kill {
			victims = append(victims, n*(j+1)/kill)
		}
		survivors := slices.DeleteFunc(slices.Clone(all), func(i int) bool { return slices.Contains(victims, i) })
		tKill := time.Now()
		for _, v := range victims {
			if err := lan.Kill(v); err != nil {
				b.Fatal(err)
			}
			views[v-1].close()
		}
		gone, _, err := untilAll(pick(views, survivors), func(i int, peers map[string]string) bool {
			for _, v := range victims {
				if peers[Name(v)] == "online" {
					return false
				}
			}
			return true
		}, 3*time.Minute)
		if err != nil {
			b.Fatal(err)
		}
		detect := gone.Sub(tKill)

		for _, v := range victims {
			os.Truncate(filepath.Join(dir, Name(v)+".log"), 0)
		}
		tRestart := time.Now()
		prompts = watchPrompts(dir, victims, 5*time.Minute)
		errs := make(chan error, len(victims))
		for _, v := range victims {
			go func() { errs <- lan.Restart(v) }()
		}
		for range victims {
			if err := <-errs; err != nil {
				b.Fatal(err)
			}
		}
		lastRestart, err := latest(prompts)
		if err != nil {
			b.Fatal(err)
		}
		for _, v := range victims {
			views[v-1] = dialView(b, v)
		}
		refull, reround, err := untilAll(views, func(i int, peers map[string]string) bool { return fullView(n, peers) }, 3*time.Minute)
		if err != nil {
			b.Fatal(err)
		}
		reconv := refull.Sub(lastRestart)

		printVMsTable(os.Stdout, vmsReport{
			n: n, ram: mem, opts: opts, kill: kill, victims: victims,
			boot: boot, conv: conv, round: round,
			idle: idleWindow, cpu: cpu, mem: vmMem, guestMem: guestMem,
			detect: detect, restart: lastRestart.Sub(tRestart), reconv: reconv, reround: reround,
		})
		b.ReportMetric(conv.Seconds(), "converge-s")
		b.ReportMetric(reconv.Seconds(), "reconverge-s")
		b.ReportMetric(100*cpu.Seconds()/idleWindow.Seconds(), "idle-cpu-%")
		b.ReportMetric(float64(mean(memOf(vmMem, func(m Mem) uint64 { return m.RSS })))/(1<<20), "rss-MB/vm")
		b.ReportMetric(float64(mean(memOf(vmMem, func(m Mem) uint64 { return m.PSS })))/(1<<20), "pss-MB/vm")
		b.ReportMetric(0, "ns/op")
		for _, v := range views {
			v.close()
		}
	}
}

func envInt(b *testing.B, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.Atoi(s)
	if err != nil {
		b.Fatalf("%s=%q: want a number", name, s)
	}
	return v
}

// watchPrompts polls the console logs of VMs vms in dir for their boot
// banner, and sends on the channel when each appeared (the host's clock,
// within 20 ms), or an error at the timeout.
func watchPrompts(dir string, vms []int, timeout time.Duration) chan promptSeen {
	ch := make(chan promptSeen, len(vms))
	for _, i := range vms {
		go func() {
			log := filepath.Join(dir, Name(i)+".log")
			deadline := time.Now().Add(timeout)
			for time.Now().Before(deadline) {
				if b, err := os.ReadFile(log); err == nil && bannerLine(string(b)) {
					ch <- promptSeen{i: i, at: time.Now()}
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
			ch <- promptSeen{i: i, err: fmt.Errorf("%s: no prompt in %v (see %s)", Name(i), timeout, log)}
		}()
	}
	return ch
}

type promptSeen struct {
	i   int
	at  time.Time
	err error
}

func bannerLine(log string) bool {
	for l := range strings.SplitSeq(strings.ReplaceAll(log, "\r", ""), "\n") {
		if bannerRE.MatchString(l) {
			return true
		}
	}
	return false
}

// latest waits for every VM the channel reports on and returns the
// latest time.
func latest(ch chan promptSeen) (time.Time, error) {
	var last time.Time
	for range cap(ch) {
		p := <-ch
		if p.err != nil {
			return time.Time{}, p.err
		}
		if p.at.After(last) {
			last = p.at
		}
	}
	return last, nil
}

// viewer reads one VM's /cluster/view over 9P, over one connection from
// the LAN's namespace.
type viewer struct {
	i    int
	conn net.Conn
	fsys *client.Fsys
}

func dialView(b testing.TB, i int) *viewer {
	var c net.Conn
	err := InNetns(Namespace, func() error {
		var err error
		c, err = net.DialTimeout("tcp4", Addr(i)+":564", 20*time.Second)
		return err
	})
	if err != nil {
		b.Fatalf("%s: 9P: %v", Name(i), err)
	}
	cc, err := client.NewConn(c)
	if err != nil {
		b.Fatalf("%s: 9P: %v", Name(i), err)
	}
	fsys, err := cc.Attach(nil, "glenda", "")
	if err != nil {
		b.Fatalf("%s: 9P attach: %v", Name(i), err)
	}
	return &viewer{i: i, conn: c, fsys: fsys}
}

func dialViews(b testing.TB, vms []int) []*viewer {
	vs := make([]*viewer, len(vms))
	for j, i := range vms {
		vs[j] = dialView(b, i)
	}
	return vs
}

func pick(vs []*viewer, vms []int) []*viewer {
	var out []*viewer
	for _, i := range vms {
		out = append(out, vs[i-1])
	}
	return out
}

func (v *viewer) close() { v.conn.Close() }

func (v *viewer) peers() (map[string]string, error) {
	fid, err := v.fsys.Open("/cluster/view", plan9.OREAD)
	if err != nil {
		return nil, err
	}
	defer fid.Close()
	b, err := io.ReadAll(fid)
	if err != nil {
		return nil, err
	}
	return PeerStatus(string(b))
}

// fullView reports whether a VM of a LAN of n lists all the others
// online.
func fullView(n int, peers map[string]string) bool {
	online := 0
	for _, s := range peers {
		if s == "online" {
			online++
		}
	}
	return online == n-1
}

// untilAll reads every view, all at once, round after round (a round
// every 250 ms at most), until cond holds for all of them in one round,
// and returns when that round ended and the longest round's duration (the
// resolution of the time). At the timeout it says which VMs fall short.
func untilAll(vs []*viewer, cond func(i int, peers map[string]string) bool, timeout time.Duration) (time.Time, time.Duration, error) {
	deadline := time.Now().Add(timeout)
	var longest time.Duration
	for {
		start := time.Now()
		ok := make([]bool, len(vs))
		var wg sync.WaitGroup
		var mu sync.Mutex
		var short []string
		for j, v := range vs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				peers, err := v.peers()
				ok[j] = err == nil && cond(v.i, peers)
				if !ok[j] {
					mu.Lock()
					short = append(short, fmt.Sprintf("%s (%d online, err %v)", Name(v.i), online(peers), err))
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		end := time.Now()
		longest = max(longest, end.Sub(start))
		if !slices.Contains(ok, false) {
			return end, longest, nil
		}
		if end.After(deadline) {
			slices.Sort(short)
			return end, longest, fmt.Errorf("after %v, %d VMs fall short: %s", timeout, len(short), strings.Join(short, ", "))
		}
		time.Sleep(max(0, 250*time.Millisecond-end.Sub(start)))
	}
}

func online(peers map[string]string) int {
	c := 0
	for _, s := range peers {
		if s == "online" {
			c++
		}
	}
	return c
}

// idleCost measures the CPU all the LAN's QEMUs use over window, and
// their resident memory at its end.
func idleCost(b *testing.B, lan *LAN, window time.Duration) (time.Duration, []Mem) {
	cpuAll := func() time.Duration {
		var sum time.Duration
		for _, vm := range lan.VMs {
			d, err := ProcCPU(vm.Pid())
			if err != nil {
				b.Fatalf("%s: %v", vm.Name, err)
			}
			sum += d
		}
		return sum
	}
	c0 := cpuAll()
	time.Sleep(window)
	c1 := cpuAll()
	var mem []Mem
	for _, vm := range lan.VMs {
		m, err := ProcMem(vm.Pid())
		if err != nil {
			b.Fatalf("%s: %v", vm.Name, err)
		}
		mem = append(mem, m)
	}
	return c1 - c0, mem
}

func mean(xs []uint64) uint64 {
	var s uint64
	for _, x := range xs {
		s += x
	}
	return s / uint64(max(len(xs), 1))
}

type vmsReport struct {
	n, kill                 int
	ram                     string
	opts                    Options
	victims                 []int
	boot, conv, round       time.Duration
	idle, cpu               time.Duration
	mem                     []Mem
	guestMem                string
	detect, restart, reconv time.Duration
	reround                 time.Duration
}

func printVMsTable(w io.Writer, r vmsReport) {
	mb := func(x uint64) string { return fmt.Sprintf("%.1f MB", float64(x)/(1<<20)) }
	fmt.Fprintf(w, "\n%d Fornax VMs, -m %s, kernel words %q, TCG on %d host CPUs\n", r.n, r.ram, strings.Join(r.opts.Append, " "), numCPU())
	fmt.Fprintf(w, "| measure | value |\n|---|---|\n")
	fmt.Fprintf(w, "| boot: launcher start to the last prompt | %.1f s |\n", r.boot.Seconds())
	fmt.Fprintf(w, "| last prompt to every VM listing %d online | %.1f s (rounds of 9P reads, longest %.2f s) |\n", r.n-1, r.conv.Seconds(), r.round.Seconds())
	fmt.Fprintf(w, "| idle CPU of all %d QEMUs over %v | %.1f %% of one core (%.2f %% per VM) |\n",
		r.n, r.idle, 100*r.cpu.Seconds()/r.idle.Seconds(), 100*r.cpu.Seconds()/r.idle.Seconds()/float64(r.n))
	for _, f := range []struct {
		what string
		get  func(Mem) uint64
	}{
		{"RSS (shared pages in full)", func(m Mem) uint64 { return m.RSS }},
		{"PSS (shared pages divided)", func(m Mem) uint64 { return m.PSS }},
		{"private (RssAnon: guest RAM touched, heap, TCG code)", func(m Mem) uint64 { return m.Anon }},
	} {
		xs := memOf(r.mem, f.get)
		slices.Sort(xs)
		var total uint64
		for _, x := range xs {
			total += x
		}
		fmt.Fprintf(w, "| QEMU %s per VM: min / mean / max; all VMs | %s / %s / %s; %s |\n",
			f.what, mb(xs[0]), mb(mean(xs)), mb(xs[len(xs)-1]), mb(total))
	}
	fmt.Fprintf(w, "| guest `mem` on %s | %s |\n", Name(1), strings.Join(strings.Fields(r.guestMem), " "))
	var names []string
	for _, v := range r.victims {
		names = append(names, fmt.Sprint(v))
	}
	fmt.Fprintf(w, "| SIGKILL %d VMs (%s) to no survivor listing them online | %.1f s |\n", r.kill, strings.Join(names, " "), r.detect.Seconds())
	fmt.Fprintf(w, "| restart of the %d (same ids), to the last prompt | %.1f s |\n", r.kill, r.restart.Seconds())
	fmt.Fprintf(w, "| last restarted prompt to every VM listing %d online | %.1f s (longest round %.2f s) |\n", r.n-1, r.reconv.Seconds(), r.reround.Seconds())
}

func memOf(ms []Mem, get func(Mem) uint64) []uint64 {
	var xs []uint64
	for _, m := range ms {
		xs = append(xs, get(m))
	}
	return xs
}

func numCPU() int {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return 0
	}
	return strings.Count(string(b), "\nprocessor") + 1
}
