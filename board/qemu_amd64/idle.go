//go:build tamago

package qemu_amd64

// The idle governor (goos.Idle): it halts the CPU until the next timer,
// on a one-shot LAPIC timer, or an interrupt, and counts the time halted.

import (
	"math"
	"sync/atomic"
	"time"

	"github.com/usbarmory/tamago/amd64"
)

// Below this the idle governor spins: a timer interrupt and halt cost
// more than they save.
const minSleep = 20_000 // ns

// One arming covers at most this long (the 32-bit count lasts ~4 s at
// QEMU's 1 GHz); the runtime calls idle again if nothing woke it.
const maxSleep = 1_000_000_000 // ns

// idle is the runtime's idle hook (goos.Idle): it halts until the next
// timer, armed as a one-shot LAPIC timer, or an interrupt. TCG has no
// TSC-deadline mode, so tamago's SetAlarm cannot be used here.
func idle(until int64) {
	if !interruptsOn.Load() {
		return
	}
	// The scheduler chose until before it called us: an interrupt taken
	// since has woken the service goroutine, and halting now would sleep
	// through that wake-up until the old timer.
	cli()
	if irqPending() {
		sti()
		return
	}
	if until == 0 || until == math.MaxInt64 {
		halt()
		return
	}
	d := until - nanotime()
	if d < minSleep {
		sti()
		return
	}
	if d > maxSleep {
		d = maxSleep
	}
	count := uint64(d) * lapicHz / 1e9
	if count == 0 {
		sti()
		return
	}
	if count > math.MaxUint32 {
		count = math.MaxUint32
	}
	// Armed with interrupts off, an early expiry stays pending and wakes
	// the HLT instead of being taken before it.
	lapicWrite(lapicLVTTimer, amd64.IRQ_WAKEUP) // one-shot, unmasked
	lapicWrite(lapicInitCount, uint32(count))
	halt()
	lapicWrite(lapicInitCount, 0)
}

var idleNs, wakes atomic.Int64

// halt enables interrupts and halts, counting the time spent halted
// and the wake-ups.
func halt() {
	t := nanotime()
	stihlt()
	idleNs.Add(nanotime() - t)
	wakes.Add(1)
}

// IdleTime returns how long the CPU has spent halted since boot.
func IdleTime() time.Duration { return time.Duration(idleNs.Load()) }

// Wakes returns how many times the CPU has woken from a halt since boot.
func Wakes() uint64 { return uint64(wakes.Load()) }
