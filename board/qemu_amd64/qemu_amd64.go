//go:build tamago

// Package qemu_amd64 supports QEMU's x86_64 microvm machine for Fornax,
// under software emulation (TCG) as well as KVM.
//
// It differs from tamago's board/qemu/microvm where TCG needs it to: time is
// kept by a TSC calibrated against the 8254 PIT instead of kvmclock (used
// when present), the runtime's memory follows the RAM QEMU gives (-m, see
// layout.go), the kernel command line is read through fw_cfg, and the idle governor sleeps on a one-shot LAPIC
// timer rather than spinning, since TCG offers no TSC-deadline timer.
//
// Build with GOOS=tamago GOARCH=amd64, `-tags linkramstart` and
// `-ldflags "-T 0x00410000 -R 0x1000 -E fornax/board/qemu_amd64.entry"`.
package qemu_amd64

import (
	"runtime/goos"
	"time"

	"github.com/usbarmory/tamago/amd64"
	"github.com/usbarmory/tamago/dma"
	"github.com/usbarmory/tamago/kvm/pvclock"
	"github.com/usbarmory/tamago/soc/intel/ioapic"
	"github.com/usbarmory/tamago/soc/intel/uart"
)

// Peripheral addresses of QEMU microvm (hw/i386/microvm.c).
const (
	COM1 = 0x3f8

	IOAPIC0_BASE = 0xfec00000
	IOAPIC1_BASE = 0xfec10000

	// virtio-mmio slots, 512 bytes apart; QEMU fills them from the top,
	// so the first -device lands in the last slot, on GSI 47.
	VIRTIO_MMIO_BASE = 0xfeb00000
	VIRTIO_NET0_BASE = VIRTIO_MMIO_BASE + 0x2e00
	VIRTIO_NET0_GSI  = 47
)

var (
	AMD64 = &amd64.CPU{TimerMultiplier: 1}

	IOAPIC0 = &ioapic.IOAPIC{Index: 0, Base: IOAPIC0_BASE, GSIBase: 0}
	IOAPIC1 = &ioapic.IOAPIC{Index: 1, Base: IOAPIC1_BASE, GSIBase: 24}

	UART0 = &uart.UART{Index: 1, Base: COM1}

	// Serial is the console, readable once interrupts are serviced.
	Serial = newConsole()
)

// Clock facts measured at boot.
var (
	tscHz       uint64 // TSC frequency used for time keeping
	lapicHz     uint64 // LAPIC timer frequency (divide by 1)
	clockKind   = "tsc/pit"
	bootWall    time.Time
	wallFromRTC bool
)

// Init runs early in runtime setup (goos.Hwinit1, see tamago_internals.go):
// no heap allocation here.
func Init() {
	initTSC = AMD64.Counter()
	AMD64.Init()
	IOAPIC0.Init()
	IOAPIC1.Init()
	UART0.Init()
	checkLayout()

	lapicEnable()

	calibrateTSC = AMD64.Counter()
	hz, lhz := calibrate()
	calibratedTSC = AMD64.Counter()
	lapicHz = lhz
	if f := AMD64.Features(); f.KVM && f.KVMClockMSR > 0 && AMD64.Freq() > 1 {
		// KVM reports the TSC rate and kvmclock corrects it (see init).
		tscHz = uint64(AMD64.Freq())
		clockKind = "tsc/kvmclock"
	} else if hz != 0 {
		tscHz = hz
		AMD64.TimerMultiplier = 1e9 / float64(hz)
	}

	setWallClock()

	goos.Exit = func(_ int32) {
		// On microvm a guest ends itself by a triple fault; QEMU
		// started with -no-reboot then exits.
		amd64.Fault()
	}
	goos.Idle = idle
}

func init() {
	AMD64.EnableExceptions()

	if err := dma.Init(uint(mem.DMAStart), int(mem.DMASize)); err != nil {
		panic(err)
	}

	if f := AMD64.Features(); f.KVM && f.KVMClockMSR > 0 {
		pvclock.Init(AMD64)
		// With an invariant TSC, kvmclock adjusted the clock once, to
		// its own epoch: put the wall clock back. Without one it keeps
		// adjusting every second and its epoch stands (untested here:
		// KVM hangs guests on this project's machines).
		if f.TSCInvariant {
			setWallClock()
		}
	}
}

// setWallClock sets the system time from the RTC.
func setWallClock() {
	if t, ok := rtcTime(); ok {
		AMD64.SetTime(t.UnixNano())
		wallFromRTC = true
	}
}

// TSC counts at the board's boot stages (Init runs before the heap
// exists: it stores counts, BootStages turns them into times).
var initTSC, calibrateTSC, calibratedTSC uint64

// A Stage is a boot stage and the uptime when it ended.
type Stage struct {
	Name string
	At   time.Duration
}

// BootStages returns the board's stages: "firmware" (QEMU's reset to
// the board's Init, the runtime's start included), "devices" (CPU,
// interrupt controllers, UART) and "clock" (the TSC and LAPIC timer
// calibrated against the PIT, pit.go).
func BootStages() []Stage {
	at := func(c uint64) time.Duration { return time.Duration(float64(c) * AMD64.TimerMultiplier) }
	return []Stage{{"firmware", at(initTSC)}, {"devices", at(calibrateTSC)}, {"clock", at(calibratedTSC)}}
}

// ClockInfo describes the time source: its kind, the TSC and LAPIC timer
// rates in Hz, and whether the wall clock was read from the RTC.
func ClockInfo() (kind string, tsc, lapic uint64, rtc bool) {
	return clockKind, tscHz, lapicHz, wallFromRTC
}

// NumCPU returns the number of CPUs the kernel runs on.
func NumCPU() int { return 1 }

// Halt stops the machine: with -no-reboot QEMU exits.
func Halt() {
	goos.Exit(0)
}
