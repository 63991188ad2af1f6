// Package sys serves the kernel's own files, /dev and /proc, and the
// console commands that report the same figures. It is plain Go: the
// machine-dependent figures come in through Machine.
package sys

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"fornax/kernel/ns"
)

// Machine supplies what only the board knows.
type Machine struct {
	Version  string
	CmdLine  string
	MemTotal uint64               // bytes of RAM the runtime may use
	NumCPU   int                  // CPUs the kernel runs on
	Uptime   func() time.Duration // time since reset
	Now      func() time.Time     // wall clock
	Clock    string               // time source, for /proc/clock
}

// Kernel holds the state behind /dev and /proc.
type Kernel struct {
	m        Machine
	name     atomic.Pointer[string]
	nameFunc atomic.Pointer[func() string]

	logMu sync.Mutex
	log   []string // the last maxLog lines of /dev/kmesg
}

// New returns the kernel state for machine m and node name.
func New(m Machine, name string) *Kernel {
	k := &Kernel{m: m}
	k.SetName(name)
	return k
}

// Name returns the node's name (/dev/sysname).
func (k *Kernel) Name() string {
	if f := k.nameFunc.Load(); f != nil {
		return (*f)()
	}
	return *k.name.Load()
}

// SetNameFunc makes f the source of the node's name, for a service (the
// cluster) that owns it from then on.
func (k *Kernel) SetNameFunc(f func() string) { k.nameFunc.Store(&f) }

// SetName renames the node.
func (k *Kernel) SetName(name string) { k.name.Store(&name) }

// Uptime returns the time since reset.
func (k *Kernel) Uptime() time.Duration { return k.m.Uptime() }

// Mem reports the memory figures: total RAM, bytes the Go runtime holds,
// and what is left.
func (k *Kernel) Mem() (total, used, free uint64) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	total, used = k.m.MemTotal, ms.Sys
	if used < total {
		free = total - used
	}
	return
}

// Plan 9 formats /dev/time as four numbers, right-aligned in 11 and 21
// columns, each followed by a space: seconds and nanoseconds since the
// epoch, clock ticks since boot and ticks per second (cons(3)). Our
// ticks are nanoseconds.
func (k *Kernel) timeFile() []byte {
	now := k.m.Now()
	return fmt.Appendf(nil, "%11d %21d %21d %21d ", now.Unix(), now.UnixNano(), k.m.Uptime().Nanoseconds(), int64(time.Second))
}

// maxLog is how many lines /dev/kmesg keeps.
const maxLog = 512

// Logf adds a line, stamped with the uptime, to the kernel log
// (/dev/kmesg). Services log there rather than on the console, where
// lines would land in the middle of a command's output.
func (k *Kernel) Logf(format string, args ...any) {
	line := fmt.Sprintf("%10.3f ", k.Uptime().Seconds()) + fmt.Sprintf(format, args...)
	k.logMu.Lock()
	defer k.logMu.Unlock()
	if len(k.log) == maxLog {
		k.log = append(k.log[:0], k.log[1:]...)
	}
	k.log = append(k.log, strings.TrimRight(line, "\n"))
}

func (k *Kernel) kmesg() []byte {
	k.logMu.Lock()
	defer k.logMu.Unlock()
	var b []byte
	for _, l := range k.log {
		b = append(append(b, l...), '\n')
	}
	return b
}

// Dev returns the /dev tree.
func (k *Kernel) Dev() *ns.Dir {
	d := ns.NewDir()
	d.File("kmesg", ns.File{Read: func() ([]byte, error) { return k.kmesg(), nil }})
	d.File("sysname", ns.File{Read: func() ([]byte, error) { return []byte(k.Name() + "\n"), nil }})
	d.File("time", ns.File{Read: func() ([]byte, error) { return k.timeFile(), nil }})
	return d
}

// Proc returns the /proc tree of runtime figures.
func (k *Kernel) Proc() *ns.Dir {
	d := ns.NewDir()
	d.File("version", ns.File{Read: static(k.m.Version + "\n")})
	d.File("cmdline", ns.File{Read: static(k.m.CmdLine + "\n")})
	d.File("clock", ns.File{Read: static(k.m.Clock + "\n")})
	d.File("uptime", ns.File{Read: func() ([]byte, error) {
		return fmt.Appendf(nil, "%.3f\n", k.Uptime().Seconds()), nil
	}})
	d.File("meminfo", ns.File{Read: func() ([]byte, error) {
		total, used, free := k.Mem()
		return fmt.Appendf(nil, "total %d\nused %d\nfree %d\n", total, used, free), nil
	}})
	d.File("cpus", ns.File{Read: func() ([]byte, error) {
		return fmt.Appendf(nil, "%d\n", k.m.NumCPU), nil
	}})
	d.File("goroutines", ns.File{Read: func() ([]byte, error) {
		return fmt.Appendf(nil, "%d\n", runtime.NumGoroutine()), nil
	}})
	return d
}

func static(s string) func() ([]byte, error) {
	return func() ([]byte, error) { return []byte(s), nil }
}

// Registrar is the part of the shell that takes commands.
type Registrar interface {
	Register(name, usage, help string, fn func(w io.Writer, args []string) error)
}

// Commands registers uptime, date and mem.
func (k *Kernel) Commands(r Registrar) {
	r.Register("uptime", "", "time since reset", func(w io.Writer, args []string) error {
		if len(args) > 0 {
			return errNoArgs
		}
		_, err := fmt.Fprintf(w, "up %s (%.3f s)\n", FormatUptime(k.Uptime()), k.Uptime().Seconds())
		return err
	})
	r.Register("date", "", "wall-clock time (UTC)", func(w io.Writer, args []string) error {
		if len(args) > 0 {
			return errNoArgs
		}
		_, err := fmt.Fprintln(w, k.m.Now().UTC().Format(time.UnixDate))
		return err
	})
	r.Register("mem", "", "memory: total, used by the runtime, free", func(w io.Writer, args []string) error {
		if len(args) > 0 {
			return errNoArgs
		}
		total, used, free := k.Mem()
		_, err := fmt.Fprintf(w, "total %s\nused  %s\nfree  %s\n", Bytes(total), Bytes(used), Bytes(free))
		return err
	})
}

var errNoArgs = errors.New("takes no arguments")

// FormatUptime prints a duration as [Nd ]hh:mm:ss.
func FormatUptime(d time.Duration) string {
	s := int64(d / time.Second)
	days, s := s/86400, s%86400
	var b strings.Builder
	if days > 0 {
		fmt.Fprintf(&b, "%dd ", days)
	}
	fmt.Fprintf(&b, "%02d:%02d:%02d", s/3600, s/60%60, s%60)
	return b.String()
}

// Bytes formats n in binary units, rounded down to a whole unit.
func Bytes(n uint64) string {
	const k = 1024
	switch {
	case n >= k*k*k:
		return fmt.Sprintf("%dG", n/(k*k*k))
	case n >= k*k:
		return fmt.Sprintf("%dM", n/(k*k))
	case n >= k:
		return fmt.Sprintf("%dK", n/k)
	}
	return fmt.Sprintf("%d", n)
}

// LoadMeter turns a count of idle time into the busy CPU fraction over
// the last interval, as HEARTBEAT's load field wants (docs/protocol.md).
type LoadMeter struct {
	mu       sync.Mutex
	idle     func() time.Duration // total idle time since boot
	now      func() time.Duration // monotonic time (uptime)
	cpus     int
	min      time.Duration // shortest interval worth a new sample
	lastIdle time.Duration
	lastNow  time.Duration
	load     float64
}

// NewLoadMeter returns a meter over the idle counter of cpus CPUs;
// intervals shorter than min keep the previous figure.
func NewLoadMeter(idle, now func() time.Duration, cpus int, min time.Duration) *LoadMeter {
	return &LoadMeter{idle: idle, now: now, cpus: cpus, min: min, lastIdle: idle(), lastNow: now()}
}

// Load returns the busy fraction, summed over CPUs, since the previous
// sample.
func (m *LoadMeter) Load() float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	idle, now := m.idle(), m.now()
	dt := now - m.lastNow
	if dt < m.min {
		return m.load
	}
	busy := float64(m.cpus) - float64(idle-m.lastIdle)/float64(dt)
	m.load = min(max(busy, 0), float64(m.cpus))
	m.lastIdle, m.lastNow = idle, now
	return m.load
}
