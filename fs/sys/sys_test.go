package sys

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
)

func testKernel() *Kernel {
	boot := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	up := 90*time.Minute + 1500*time.Millisecond
	return New(Machine{
		Version:  "v1",
		CmdLine:  "name=n1",
		MemTotal: 96 << 20,
		NumCPU:   1,
		Uptime:   func() time.Duration { return up },
		Now:      func() time.Time { return boot.Add(up) },
		Clock:    func() string { return "tsc/pit" },
	}, "n1")
}

func TestFormatUptime(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{0, "00:00:00"}, {59 * time.Second, "00:00:59"}, {3661 * time.Second, "01:01:01"},
		{49 * time.Hour, "2d 01:00:00"},
	} {
		if got := FormatUptime(tc.d); got != tc.want {
			t.Errorf("FormatUptime(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
}

func TestFiles(t *testing.T) {
	k := testKernel()
	dev, proc := k.Dev(), k.Proc()
	read := func(d interface {
		ReadFile(string) ([]byte, error)
	}, name string) string {
		b, err := d.ReadFile(name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return string(b)
	}
	if got := read(dev, "sysname"); got != "n1\n" {
		t.Errorf("sysname = %q", got)
	}
	k.SetName("n2")
	if got := read(dev, "sysname"); got != "n2\n" {
		t.Errorf("sysname after rename = %q", got)
	}
	// cons(3): 11- and 21-column fields, each followed by a space
	tm := read(dev, "time")
	if len(tm) != 12+22*3 || !regexp.MustCompile(`^ *1795613401 +1795613401500000000 +5401500000000 +1000000000 $`).MatchString(tm) {
		t.Errorf("time = %q", tm)
	}
	if got := read(proc, "uptime"); got != "5401.500\n" {
		t.Errorf("uptime = %q", got)
	}
	if got := read(proc, "meminfo"); !strings.HasPrefix(got, "total 100663296\nused ") {
		t.Errorf("meminfo = %q", got)
	}
	if _, err := proc.ReadFile("idle"); err == nil {
		t.Error("/proc/idle without Machine.Idle")
	}
	k.m.Idle = func() (time.Duration, uint64) { return 5400 * time.Second, 1234 }
	if got := read(k.Proc(), "idle"); got != "uptime 5401.500\nhalted 5400.000\nwakes 1234\n" {
		t.Errorf("idle = %q", got)
	}
	k.Logf("hello %d", 1)
	for i := 0; i < maxLog+5; i++ {
		k.Logf("line %d\n", i)
	}
	km := strings.Split(strings.TrimSpace(read(dev, "kmesg")), "\n")
	if len(km) != maxLog || !strings.HasSuffix(km[0], " line 5") || !strings.HasSuffix(km[maxLog-1], fmt.Sprintf(" line %d", maxLog+4)) {
		t.Errorf("kmesg: %d lines, first %q", len(km), km[0])
	}
	if err := dev.WriteFile("sysname", []byte("x")); err == nil {
		t.Error("sysname is writable")
	}
}

func TestLoadMeter(t *testing.T) {
	var idle, now time.Duration
	m := NewLoadMeter(func() time.Duration { return idle }, func() time.Duration { return now }, 1, time.Second)
	now, idle = 5*time.Second, 4*time.Second // busy 1 s of 5
	if got := m.Load(); got < 0.199 || got > 0.201 {
		t.Errorf("load = %v, want 0.2", got)
	}
	now += 500 * time.Millisecond // too short: same figure
	if got := m.Load(); got < 0.199 || got > 0.201 {
		t.Errorf("load after a short interval = %v", got)
	}
	now += 4500 * time.Millisecond // idle throughout
	idle += 5 * time.Second
	if got := m.Load(); got != 0 {
		t.Errorf("idle load = %v", got)
	}
}
