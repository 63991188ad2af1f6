//go:build tamago

package qemu_amd64

import (
	"math"
	"sync/atomic"
	"time"
	"unsafe"
	_ "unsafe" // go:linkname

	"github.com/usbarmory/tamago/amd64"
)

// Local APIC registers (SDM Vol. 3A, 11.4.1 and 11.5.4).
const (
	lapicBase       = 0xfee00000
	lapicSVR        = 0x0f0
	lapicLVTTimer   = 0x320
	lapicInitCount  = 0x380
	lapicCurCount   = 0x390
	lapicDivideConf = 0x3e0

	svrEnable   = 1 << 8
	lvtMasked   = 1 << 16
	divideBy1   = 0b1011
	spuriousVec = 0xff
)

func lapicReg(off uintptr) *uint32 {
	return (*uint32)(unsafe.Pointer(uintptr(lapicBase) + off))
}

func lapicRead(off uintptr) uint32     { return atomic.LoadUint32(lapicReg(off)) }
func lapicWrite(off uintptr, v uint32) { atomic.StoreUint32(lapicReg(off), v) }

// lapicEnable software-enables the BSP's local APIC, which comes out of
// reset disabled; without it neither I/O APIC interrupts nor the LAPIC
// timer are delivered.
func lapicEnable() {
	lapicWrite(lapicSVR, svrEnable|spuriousVec)
	lapicWrite(lapicDivideConf, divideBy1)
	lapicWrite(lapicLVTTimer, lvtMasked|amd64.IRQ_WAKEUP)
}

// Intel 8254 PIT (82C54 datasheet): channel 0 counts down at 1.193182 MHz.
// QEMU computes a latched count from its virtual clock at the moment of
// the read, so it stays exact when the host is loaded; the RTC's periodic
// flag does not (late timer callbacks coalesce periods: calibrations on a
// busy host came out 5-15 % off).
const (
	pitHz      = 1193182
	pitCh0     = 0x40
	pitCommand = 0x43
	pitMode2   = 0x34 // channel 0, lobyte/hibyte, mode 2 (rate generator)
	pitLatch   = 0x00 // counter latch command, channel 0

	calibrationTicks = pitHz / 20 // 50 ms window
	maxSampleSkew    = 12         // PIT ticks (10 µs) between paired reads
)

func pitCount() uint16 {
	outb(pitCommand, pitLatch)
	lo := inb(pitCh0)
	hi := inb(pitCh0)
	return uint16(lo) | uint16(hi)<<8
}

// pitSample reads the PIT, the TSC and the LAPIC timer together, retrying
// when the vCPU was descheduled between the reads.
func pitSample() (pit uint16, tsc uint64, lapic uint32) {
	for i := 0; i < 1000; i++ {
		a := pitCount()
		tsc = AMD64.Counter()
		lapic = lapicRead(lapicCurCount)
		pit = pitCount()
		if a-pit <= maxSampleSkew {
			break
		}
	}
	return
}

// calibrate measures the TSC and LAPIC timer rates against the PIT; it
// returns zeros if the PIT does not count.
func calibrate() (tscHz, lapicHz uint64) {
	outb(pitCommand, pitMode2)
	outb(pitCh0, 0) // reload 65536: one period is 54.9 ms
	outb(pitCh0, 0)
	lapicWrite(lapicInitCount, math.MaxUint32)
	defer lapicWrite(lapicInitCount, 0)

	p0, t0, l0 := pitSample()
	prev, elapsed := p0, uint64(0)
	for spin := 0; elapsed < calibrationTicks; spin++ {
		if spin > calibrationSpin {
			return 0, 0
		}
		p := pitCount()
		elapsed += uint64(prev - p) // counts down, wraps at 0
		prev = p
	}
	p1, t1, l1 := pitSample()
	elapsed += uint64(prev - p1)

	tscHz = (t1 - t0) * pitHz / elapsed
	lapicHz = uint64(l0-l1) * pitHz / elapsed
	return
}

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
	// since has woken the service goroutine (tamago sets irqLock), and
	// halting now would sleep through that wake-up until the old timer.
	cli()
	if irqLock {
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

// irqLock is set by tamago's interrupt entry when it wakes the service
// goroutine, and cleared once the interrupt is acknowledged.
//
//go:linkname irqLock github.com/usbarmory/tamago/amd64.irqLock
var irqLock bool

var idleNs atomic.Int64

// halt enables interrupts and halts, counting the time spent halted.
func halt() {
	t := nanotime()
	stihlt()
	idleNs.Add(nanotime() - t)
}

// IdleTime returns how long the CPU has spent halted since boot.
func IdleTime() time.Duration { return time.Duration(idleNs.Load()) }
