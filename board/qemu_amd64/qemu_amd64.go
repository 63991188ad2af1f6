//go:build tamago

// Package qemu_amd64 supports QEMU's x86_64 microvm machine for Fornax,
// under software emulation (TCG) as well as KVM.
//
// It differs from tamago's board/qemu/microvm where TCG needs it to: time is
// kept by a TSC calibrated against the 8254 PIT instead of kvmclock (used
// when present), the runtime fits in -m 128M, the kernel command line is
// read through fw_cfg, and the idle governor sleeps on a one-shot LAPIC
// timer rather than spinning, since TCG offers no TSC-deadline timer.
//
// Build with GOOS=tamago GOARCH=amd64, `-tags linkramstart` and
// `-ldflags "-T 0x01010000 -R 0x1000"`.
package qemu_amd64

import (
	"runtime"
	"runtime/goos"
	"sync/atomic"
	"time"
	_ "unsafe"

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

//go:linkname nanotime runtime/goos.Nanotime
func nanotime() int64 {
	return AMD64.GetTime()
}

// Init runs early in runtime setup (goos.Hwinit1): no heap allocation here.
//
//go:linkname Init runtime/goos.Hwinit1
func Init() {
	AMD64.Init()
	IOAPIC0.Init()
	IOAPIC1.Init()
	UART0.Init()

	lapicEnable()

	hz, lhz := calibrate()
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

	if err := dma.Init(DMAStart, DMASize); err != nil {
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

// Uptime returns the time since the machine was reset: the TSC starts
// from zero at reset on QEMU, TCG and KVM alike.
func Uptime() time.Duration {
	return time.Duration(float64(AMD64.Counter()) * AMD64.TimerMultiplier)
}

// ClockInfo describes the time source: its kind, the TSC and LAPIC timer
// rates in Hz, and whether the wall clock was read from the RTC.
func ClockInfo() (kind string, tsc, lapic uint64, rtc bool) {
	return clockKind, tscHz, lapicHz, wallFromRTC
}

// NumCPU returns the number of CPUs the kernel runs on.
func NumCPU() int { return 1 }

// Device interrupts use vectors DeviceVectorBase to ConsoleIRQ: one LAPIC
// priority class (SDM Vol. 3A, 11.8.3), so that no device interrupt is
// taken while another is in service: tamago's service goroutine handles
// one interrupt at a time and reads its vector from a global, which a
// nested interrupt would overwrite.
const DeviceVectorBase = 0x30

var interruptsOn atomic.Bool

// ServiceInterrupts installs the interrupt vectors and services them on
// the calling goroutine, passing device vectors to isr; it does not
// return. Once the vectors are in place it calls ready, on another
// goroutine: devices must not be routed (EnableInterrupt) before, as a
// vector without its IDT entry faults. Until then the idle governor cannot
// arm the LAPIC timer (vector 255) and spins instead.
func ServiceInterrupts(isr func(vector int), ready func()) {
	go func() {
		// tamago's ServiceInterrupts fills the IDT, then sleeps: wait
		// for the sleep, as tamago's own ClearInterrupt does (the IDT
		// fill allocates, so it may yield to us half way).
		for irqHandlerG == 0 || !runtime.Asleep(irqHandlerG) {
			runtime.Gosched()
		}
		interruptsOn.Store(true)
		Serial.enableInterrupt()
		if ready != nil {
			ready()
		}
	}()
	AMD64.ServiceInterrupts(func(vector int) {
		// Vector 255 (LAPIC timer) never gets here: tamago's entry
		// for it only acknowledges it.
		if vector == ConsoleIRQ {
			Serial.interrupt()
			return
		}
		if isr != nil {
			isr(vector)
		}
	})
}

// irqHandlerG is the goroutine tamago services interrupts on.
//
//go:linkname irqHandlerG github.com/usbarmory/tamago/amd64.irqHandlerG
var irqHandlerG uint

// EnableInterrupt routes a global system interrupt to vector.
func EnableInterrupt(gsi, vector int) {
	if gsi < IOAPIC1.GSIBase {
		IOAPIC0.EnableInterrupt(gsi, vector)
	} else {
		IOAPIC1.EnableInterrupt(gsi, vector)
	}
}

// Halt stops the machine: with -no-reboot QEMU exits.
func Halt() {
	goos.Exit(0)
}
