package main

// The host's figures for ANNOUNCE and HEARTBEAT (docs/protocol.md §3),
// from /proc.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"fornax/cluster"
)

// meminfo is what fornaxd reads of /proc/meminfo, in bytes.
type meminfo struct {
	total, available uint64
}

// parseMeminfo reads MemTotal and MemAvailable ("MemTotal:  16318276 kB").
// MemAvailable, the kernel's estimate of what can be had without
// swapping, is the node's mem_free: MemFree leaves out the page cache,
// which Linux hands back on demand.
func parseMeminfo(b []byte) (meminfo, error) {
	var m meminfo
	var seen int
	for line := range bytes.Lines(b) {
		name, rest, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		var dst *uint64
		switch string(name) {
		case "MemTotal":
			dst = &m.total
		case "MemAvailable":
			dst = &m.available
		default:
			continue
		}
		f := strings.Fields(string(rest))
		if len(f) != 2 || f[1] != "kB" {
			return meminfo{}, fmt.Errorf("/proc/meminfo: %s: want a number of kB, got %q", name, bytes.TrimSpace(rest))
		}
		kb, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil || kb > math.MaxUint64/1024 {
			return meminfo{}, fmt.Errorf("/proc/meminfo: %s: bad number %q", name, f[0])
		}
		*dst = kb * 1024
		seen++
	}
	if seen != 2 {
		return meminfo{}, errors.New("/proc/meminfo: no MemTotal or MemAvailable line (Linux before 3.14?)")
	}
	return m, nil
}

// cpuTimes are the counters of /proc/stat's "cpu" line, in clock ticks,
// summed over CPUs.
type cpuTimes struct {
	busy, total uint64
}

// parseStat reads the aggregate "cpu" line of /proc/stat and counts the
// "cpuN" lines, the online CPUs. Idle time is idle plus iowait (a CPU
// waiting for a disk could run something else); total is user, nice,
// system, idle, iowait, irq, softirq and steal (guest time is already in
// user and nice).
func parseStat(b []byte) (cpus int, t cpuTimes, err error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20) // the intr line is long
	found := false
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || !strings.HasPrefix(f[0], "cpu") {
			continue
		}
		if f[0] != "cpu" {
			if _, err := strconv.Atoi(f[0][3:]); err == nil {
				cpus++
			}
			continue
		}
		if len(f) < 9 {
			return 0, cpuTimes{}, fmt.Errorf("/proc/stat: cpu line has %d fields, want at least 9", len(f))
		}
		var v [8]uint64
		for i := range v {
			if v[i], err = strconv.ParseUint(f[i+1], 10, 64); err != nil {
				return 0, cpuTimes{}, fmt.Errorf("/proc/stat: cpu line: bad number %q", f[i+1])
			}
			t.total += v[i]
		}
		t.busy = t.total - v[3] - v[4]
		found = true
	}
	if err := sc.Err(); err != nil {
		return 0, cpuTimes{}, fmt.Errorf("/proc/stat: %w", err)
	}
	if !found || cpus == 0 {
		return 0, cpuTimes{}, errors.New("/proc/stat: no cpu lines")
	}
	return cpus, t, nil
}

// loadOf is the busy CPU fraction between two samples, summed over cpus
// CPUs (2 busy CPUs of 4 is 2.00, §3). Counters that went back (a
// hotplugged CPU) give 0 rather than nonsense.
func loadOf(prev, cur cpuTimes, cpus int) float64 {
	if cur.total <= prev.total || cur.busy < prev.busy {
		return 0
	}
	f := float64(cur.busy-prev.busy) / float64(cur.total-prev.total)
	return min(max(f, 0), 1) * float64(cpus)
}

// procFiles reads the host's figures; tests swap the reader.
type procFiles struct {
	read func(name string) ([]byte, error)
	now  func() time.Time // monotonic
	// min is the shortest interval a load is measured over: samples
	// closer together keep the previous figure, as the kernel's meter.
	min time.Duration

	// logf reports the start and the end of a spell of errors.
	logf func(format string, args ...any)

	mu      sync.Mutex
	last    cluster.Resources // last good figures, kept when /proc fails
	lastCPU cpuTimes
	lastAt  time.Time
	failing bool
}

func newProcFiles(logf func(format string, args ...any)) *procFiles {
	return &procFiles{read: os.ReadFile, now: time.Now, min: time.Second, logf: logf}
}

// sample reads /proc/meminfo and /proc/stat and updates the figures.
func (p *procFiles) sample() error {
	mb, err := p.read("/proc/meminfo")
	if err != nil {
		return err
	}
	m, err := parseMeminfo(mb)
	if err != nil {
		return err
	}
	sb, err := p.read("/proc/stat")
	if err != nil {
		return err
	}
	cpus, t, err := parseStat(sb)
	if err != nil {
		return err
	}
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.last.CPUs, p.last.MemTotal, p.last.MemFree = cpus, m.total, min(m.available, m.total)
	switch {
	case p.lastAt.IsZero():
		p.lastCPU, p.lastAt = t, now
	case now.Sub(p.lastAt) >= p.min:
		p.last.Load = loadOf(p.lastCPU, t, cpus)
		p.lastCPU, p.lastAt = t, now
	}
	if p.failing {
		p.failing = false
		p.logf("fornaxd: /proc is readable again")
	}
	return nil
}

// Resources is cluster.Config.Resources: the figures now, or the last
// good ones while /proc cannot be read (logged once per spell).
func (p *procFiles) Resources() cluster.Resources {
	err := p.sample()
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil && !p.failing {
		p.failing = true
		p.logf("fornaxd: %v: advertising the last figures read", err)
	}
	return p.last
}
