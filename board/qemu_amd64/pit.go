//go:build tamago

package qemu_amd64

// Boot-time calibration of the TSC and the LAPIC timer against the 8254
// PIT (Init calls calibrate).

import "math"

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
	pitMode0   = 0x30 // channel 0, lobyte/hibyte, mode 0 (interrupt on terminal count)
	pitLatch   = 0x00 // counter latch command, channel 0

	calibrationTicks   = pitHz / 500 // 2 ms windows,
	calibrationWindows = 5           // of which the median counts
	maxSampleSkew      = 12          // PIT ticks (10 µs) between paired reads

	// A guard so a missing PIT cannot hang the boot.
	calibrationSpin = 1 << 24
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
// returns zeros if the PIT does not count. It takes the median of
// several short windows: a vCPU descheduled for longer than a PIT period
// (54.9 ms) within a window misses a wrap and makes that window's rates
// about twice too high (seen once in a dozen boots on a loaded host: the
// guest clock ran at 0.48x); the median ignores up to two such windows.
func calibrate() (tscHz, lapicHz uint64) {
	outb(pitCommand, pitMode2)
	outb(pitCh0, 0) // reload 65536: one period is 54.9 ms
	outb(pitCh0, 0)
	lapicWrite(lapicInitCount, math.MaxUint32)
	defer lapicWrite(lapicInitCount, 0)
	defer pitStop()

	var ws [calibrationWindows]window
	var rates [calibrationWindows]uint64
	for i := range ws {
		var ok bool
		if ws[i], ok = calibrateWindow(); !ok {
			return 0, 0
		}
		rates[i] = ws[i].tsc * pitHz / ws[i].pit
	}
	return agree(ws[:], median(rates[:]), pitHz)
}

// calibrateWindow measures the counts over one window of calibrationTicks.
func calibrateWindow() (w window, ok bool) {
	p0, t0, l0 := pitSample()
	prev, elapsed := p0, uint64(0)
	for spin := 0; elapsed < calibrationTicks; spin++ {
		if spin > calibrationSpin {
			return w, false
		}
		p := pitCount()
		elapsed += uint64(prev - p) // counts down, wraps at 0
		prev = p
	}
	p1, t1, l1 := pitSample()
	elapsed += uint64(prev - p1)
	return window{pit: elapsed, tsc: t1 - t0, lapic: uint64(l0 - l1)}, true
}

// pitStop leaves the PIT silent once calibration is done. In mode 2 it
// would go on raising IRQ 0 every 54.9 ms: masked at the IOAPIC, but
// QEMU still runs a host timer for each edge, which woke an idle VM's
// main loop 18 times a second. Mode 0 with a count of 1 reaches its
// terminal count once and then schedules nothing (QEMU's
// pit_get_next_transition_time returns -1).
func pitStop() {
	outb(pitCommand, pitMode0)
	outb(pitCh0, 1)
	outb(pitCh0, 0)
}
