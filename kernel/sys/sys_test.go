package sys

import (
	"bytes"
	"fmt"
	"io"
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
		Clock:    "tsc/pit",
	}, "n1")
}

func TestBytes(t *testing.T) {
	for _, tc := range []struct {
		n    uint64
		want string
	}{
		{0, "0"}, {1023, "1023"}, {1024, "1K"}, {2047, "1K"}, {1 << 20, "1M"},
		{(1 << 30) - 1, "1023M"}, {1 << 30, "1G"}, {5<<30 + 1<<29, "5G"},
	} {
		if got := Bytes(tc.n); got != tc.want {
			t.Errorf("Bytes(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
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

type registrar map[string]func(io.Writer, []string) error

func (r registrar) Register(name, usage, help string, fn func(io.Writer, []string) error) {
	r[name] = fn
}

func TestCommands(t *testing.T) {
	r := registrar{}
	testKernel().Commands(r)
	for _, tc := range []struct {
		args []string
		want string
		err  bool
	}{
		{[]string{"uptime"}, "up 01:30:01 (5401.500 s)\n", false},
		{[]string{"date"}, "Wed Nov 25 13:30:01 UTC 2026\n", false},
		{[]string{"date", "x"}, "", true},
		{[]string{"mem"}, "total 96M\nused  ", false},
		{[]string{"uptime", "-x"}, "", true},
		{[]string{"mem", "-x"}, "", true},
	} {
		var b bytes.Buffer
		err := r[tc.args[0]](&b, tc.args[1:])
		if (err != nil) != tc.err || !strings.HasPrefix(b.String(), tc.want) {
			t.Errorf("%v: got %q, %v", tc.args, b.String(), err)
		}
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
