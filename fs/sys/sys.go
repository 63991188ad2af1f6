// Package sys serves the kernel's own files, /dev and /proc, and the
// figures behind them (the console's commands, package commands, show
// them too). It is plain Go: the machine-dependent figures come in
// through Machine.
//
// sys.go holds the kernel's state and log (/dev/kmesg), tree.go the /dev
// and /proc files, format.go the formatting of figures, load.go the load
// meter.
package sys

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Machine supplies what only the board knows.
type Machine struct {
	Version  string
	CmdLine  string
	MemTotal uint64               // bytes of RAM the runtime may use
	NumCPU   int                  // CPUs the kernel runs on
	Uptime   func() time.Duration // time since reset
	Now      func() time.Time     // wall clock
	Clock    func() string        // time source, for /proc/clock (nil: none)
	// Idle reports the time the CPU has spent halted and how many
	// times it woke from a halt, for /proc/idle; nil: no such file.
	Idle func() (halted time.Duration, wakes uint64)
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

// Now returns the wall-clock time.
func (k *Kernel) Now() time.Time { return k.m.Now() }

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
