package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"fornax/cluster"
)

// BenchmarkDaemonJoinLeave measures, between two fornaxd on two hosts
// of one LAN (network namespaces): how long after b starts a lists b
// (its join ANNOUNCE), how long b takes to list a (a's fast-join
// answer, §4.1: 1 s after a's last ANNOUNCE, plus up to 200 ms), and how
// long after SIGTERM a drops b (its LEAVE). Run it under
// flock /tmp/fornax-vm.lock: it measures time.
func BenchmarkDaemonJoinLeave(b *testing.B) {
	p := newPair(b)
	idA := cluster.IDFromMAC(p.mac(b, 0))
	a := startDaemon(b, p.ns[0], "-iface", p.iface, "-name", "a", "-listen", "none")
	a.log.Wait(b, "cluster: joined as", 10*time.Second)
	var join, answer, leave time.Duration
	for i := 0; b.Loop(); i++ {
		// A new id each time: a's log budget allows 4 lines about one
		// peer at once (§8.3), and a restarted id would be "online again".
		id := fmt.Sprintf("b%07x", i)
		d := startDaemon(b, p.ns[1], "-iface", p.iface, "-name", "b", "-id", id, "-listen", "none")
		seen := a.log.Wait(b, fmt.Sprintf("cluster: %s (b) joined", id), 10*time.Second)
		answered := d.log.Wait(b, fmt.Sprintf("cluster: %s (a) joined", idA), 10*time.Second)
		join += seen.Sub(d.started)
		answer += answered.Sub(d.started)
		t0 := time.Now()
		if code := d.stop(b); code != 0 {
			b.Fatalf("b exited %d", code)
		}
		left := a.log.Wait(b, fmt.Sprintf("cluster: %s (b) left", id), 10*time.Second)
		leave += left.Sub(t0)
	}
	n := float64(b.N)
	b.ReportMetric(float64(join.Microseconds())/n/1000, "join-ms")
	b.ReportMetric(float64(answer.Microseconds())/n/1000, "answer-ms")
	b.ReportMetric(float64(leave.Microseconds())/n/1000, "leave-ms")
}

// BenchmarkDaemonIdle measures what a joined fornaxd costs its host
// while its cluster is quiet: CPU time and resident memory over 10 s,
// with the fast profile (a message a second) beside a second fornaxd.
func BenchmarkDaemonIdle(b *testing.B) {
	p := newPair(b)
	for b.Loop() {
		a := startDaemon(b, p.ns[0], "-iface", p.iface, "-name", "a", "-profile", "fast")
		c := startDaemon(b, p.ns[1], "-iface", p.iface, "-name", "c", "-profile", "fast")
		a.log.Wait(b, "(c) joined", 10*time.Second)
		cpu0 := cpuTime(b, a.cmd.Process.Pid)
		const d = 10 * time.Second
		time.Sleep(d)
		cpu := cpuTime(b, a.cmd.Process.Pid) - cpu0
		b.ReportMetric(100*cpu.Seconds()/d.Seconds(), "cpu-%")
		b.ReportMetric(float64(cpu.Microseconds())/d.Seconds()/1000, "cpu-ms/s")
		b.ReportMetric(float64(rssKB(b, a.cmd.Process.Pid))/1024, "rss-MiB")
		a.stop(b)
		c.stop(b)
	}
}

// cpuTime is the CPU time of process pid's threads, in nanoseconds:
// the first field of each /proc/pid/task/*/schedstat. (/proc/pid/stat
// counts 10 ms ticks, too coarse for an idle daemon.)
func cpuTime(b testing.TB, pid int) time.Duration {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(tasks) == 0 {
		b.Fatalf("no threads of %d: %v", pid, err)
	}
	var sum time.Duration
	for _, f := range tasks {
		s, err := os.ReadFile(f)
		if err != nil {
			continue // a thread that ended
		}
		ns, _ := strconv.ParseInt(strings.Fields(string(s))[0], 10, 64)
		sum += time.Duration(ns)
	}
	return sum
}

// rssKB is VmRSS of process pid.
func rssKB(b testing.TB, pid int) int {
	s, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.Lines(string(s)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.Fields(v)[0])
			return n
		}
	}
	b.Fatal("no VmRSS")
	return 0
}
