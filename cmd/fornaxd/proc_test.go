package main

import (
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"testing"
	"time"
)

const meminfoText = `MemTotal:       16318276 kB
MemFree:          812340 kB
MemAvailable:    9876544 kB
Buffers:          123456 kB
HugePages_Total:       0
Hugepagesize:       2048 kB
`

func TestParseMeminfo(t *testing.T) {
	m, err := parseMeminfo([]byte(meminfoText))
	if err != nil || m.total != 16318276*1024 || m.available != 9876544*1024 {
		t.Errorf("parseMeminfo = %+v, %v", m, err)
	}
	for _, c := range []struct{ text, want string }{
		{"MemTotal: 1 kB\n", "no MemTotal or MemAvailable line"},
		{"MemAvailable: 1 kB\n", "no MemTotal or MemAvailable line"},
		{"", "no MemTotal or MemAvailable line"},
		{"MemTotal: 1 MB\nMemAvailable: 1 kB\n", `MemTotal: want a number of kB, got "1 MB"`},
		{"MemTotal: -1 kB\nMemAvailable: 1 kB\n", `MemTotal: bad number "-1"`},
		{"MemTotal: 1\nMemAvailable: 1 kB\n", "want a number of kB"},
		{fmt.Sprintf("MemTotal: %d kB\nMemAvailable: 1 kB\n", uint64(math.MaxUint64/1024+1)), "bad number"},
	} {
		if _, err := parseMeminfo([]byte(c.text)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("parseMeminfo(%q): %v, want %q", c.text, err, c.want)
		}
	}
}

const statText = `cpu  100 10 50 800 40 5 5 0 7 0
cpu0 50 5 25 400 20 2 3 0 7 0
cpu1 50 5 25 400 20 3 2 0 0 0
intr 12345 1 2 3
ctxt 999
btime 1764493690
processes 42
procs_running 1
`

func TestParseStat(t *testing.T) {
	cpus, ct, err := parseStat([]byte(statText))
	// total: 100+10+50+800+40+5+5+0 (guest is in user); idle 800+40.
	if err != nil || cpus != 2 || ct != (cpuTimes{busy: 170, total: 1010}) {
		t.Errorf("parseStat = %d, %+v, %v", cpus, ct, err)
	}
	// Old kernels have fewer columns than guest_nice; 8 counters suffice.
	if cpus, ct, err := parseStat([]byte("cpu 1 2 3 4 5 6 7 8\ncpu0 1 2 3 4 5 6 7 8\n")); err != nil || cpus != 1 || ct.total != 36 || ct.busy != 27 {
		t.Errorf("8 columns: %d, %+v, %v", cpus, ct, err)
	}
	for _, c := range []struct{ text, want string }{
		{"", "no cpu lines"},
		{"cpu0 1 2 3 4 5 6 7 8\n", "no cpu lines"},
		{"cpu 1 2 3 4 5 6 7 8\n", "no cpu lines"}, // no cpuN: no CPU count
		{"cpu 1 2 3\ncpu0 1 2 3\n", "cpu line has 4 fields, want at least 9"},
		{"cpu 1 2 3 x 5 6 7 8\ncpu0 1 2 3 4 5 6 7 8\n", `cpu line: bad number "x"`},
	} {
		if _, _, err := parseStat([]byte(c.text)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("parseStat(%q): %v, want %q", c.text, err, c.want)
		}
	}
}

func TestLoadOf(t *testing.T) {
	for _, c := range []struct {
		prev, cur cpuTimes
		cpus      int
		want      float64
	}{
		{cpuTimes{100, 1000}, cpuTimes{150, 1100}, 2, 1.0}, // half of 100 ticks busy, 2 CPUs
		{cpuTimes{100, 1000}, cpuTimes{200, 1100}, 4, 4.0},
		{cpuTimes{100, 1000}, cpuTimes{100, 1100}, 4, 0},
		{cpuTimes{100, 1000}, cpuTimes{100, 1000}, 4, 0}, // no time passed
		{cpuTimes{100, 1000}, cpuTimes{90, 900}, 4, 0},   // counters went back
	} {
		if got := loadOf(c.prev, c.cur, c.cpus); got != c.want {
			t.Errorf("loadOf(%+v, %+v, %d) = %v, want %v", c.prev, c.cur, c.cpus, got, c.want)
		}
	}
}

// procFiles measures the load over at least min, and keeps the last
// figures through a spell of errors, which it logs once.
func TestProcFiles(t *testing.T) {
	files := map[string]string{"/proc/meminfo": meminfoText, "/proc/stat": statText}
	var readErr error
	now := time.Unix(1000, 0)
	var logs []string
	p := &procFiles{
		read: func(name string) ([]byte, error) {
			if readErr != nil {
				return nil, readErr
			}
			return []byte(files[name]), nil
		},
		now:  func() time.Time { return now },
		min:  time.Second,
		logf: func(f string, a ...any) { logs = append(logs, fmt.Sprintf(f, a...)) },
	}
	r := p.Resources()
	if r.CPUs != 2 || r.MemTotal != 16318276*1024 || r.MemFree != 9876544*1024 || r.Load != 0 {
		t.Errorf("first sample: %+v", r)
	}
	// 100 more ticks, 50 of them busy, but only 0.5 s later: no new load.
	files["/proc/stat"] = "cpu 150 10 50 850 40 5 5 0 0 0\ncpu0 0 0 0 0 0 0 0 0\ncpu1 0 0 0 0 0 0 0 0\n"
	now = now.Add(500 * time.Millisecond)
	if r := p.Resources(); r.Load != 0 {
		t.Errorf("load over 0.5 s: %v, want the previous 0", r.Load)
	}
	now = now.Add(500 * time.Millisecond)
	if r := p.Resources(); r.Load != 1.0 {
		t.Errorf("load over 1 s: %v, want 1.00 (half of 2 CPUs)", r.Load)
	}
	// MemAvailable above MemTotal (a racing read) is clamped.
	files["/proc/meminfo"] = "MemTotal: 10 kB\nMemAvailable: 20 kB\n"
	if r := p.Resources(); r.MemFree != r.MemTotal {
		t.Errorf("mem_free %d > mem_total %d", r.MemFree, r.MemTotal)
	}
	good := p.Resources()
	readErr = os.ErrPermission
	for range 3 {
		if r := p.Resources(); r != good {
			t.Errorf("while /proc fails: %+v, want the last good %+v", r, good)
		}
	}
	readErr = nil
	p.Resources()
	readErr = errors.New("gone")
	p.Resources()
	want := []string{
		"fornaxd: permission denied: advertising the last figures read",
		"fornaxd: /proc is readable again",
		"fornaxd: gone: advertising the last figures read",
	}
	if strings.Join(logs, "\n") != strings.Join(want, "\n") {
		t.Errorf("logs:\n%s\nwant:\n%s", strings.Join(logs, "\n"), strings.Join(want, "\n"))
	}
}

// The parsers read this machine's own files.
func TestProcFilesHere(t *testing.T) {
	p := newProcFiles(t.Logf)
	if err := p.sample(); err != nil {
		t.Fatal(err)
	}
	r := p.Resources()
	if r.CPUs < 1 || r.MemTotal == 0 || r.MemFree == 0 || r.MemFree > r.MemTotal {
		t.Errorf("this host: %+v", r)
	}
}
