//go:build tamago

package qemu_amd64

// TamaGo internals: every go:linkname of Fornax is in this file, and
// nothing else reads or writes the symbols named here.
//
// They were checked against tamago v1.26.0 and its Go distribution
// tamago-go1.26.0 (checkedTamago below). The linker does not catch every
// change: a go:linkname to a variable tamago no longer has links anyway,
// to a fresh zero variable, and the kernel hangs at boot. So a host test
// (tamago_internals_test.go) fails when go.mod requires another tamago;
// docs/tamago.md says what to recheck before updating checkedTamago.

import (
	"runtime"
	_ "unsafe" // go:linkname
)

// checkedTamago is the tamago version the symbols below were checked
// against.
const checkedTamago = "v1.26.0"

// The runtime/goos hooks. With GOOSPKG=github.com/usbarmory/tamago, tamago's
// goos package declares them without a body or value and the board
// supplies them. A hook tamago renames no longer links (missing body); a
// variable it renames links to nothing and the runtime sees zero.

// ramStart and ramSize are the memory the runtime owns (layout.go).
// Without them the heap would land on tamago's defaults, not where the
// linker (-T) and the DMA region expect it. ramSize follows the RAM QEMU
// gives: the kernel's entry (entry_amd64.s) writes it, as
// runtime∕goos·RamSize, before tamago's cpuinit reads it; the value here
// is only what a kernel linked without that entry would use, and Init
// stops such a kernel (checkLayout).
//
//go:linkname ramStart runtime/goos.RamStart
var ramStart uint64 = RamStart

//go:linkname ramSize runtime/goos.RamSize
var ramSize uint64 = 128<<20 - DMASize - RamStart

// printk is the runtime's console output (print, panics, crashes): to
// COM1. Without it a panic says nothing.
//
//go:linkname printk runtime/goos.Printk
func printk(c byte) {
	UART0.Tx(c)
}

// nanotime is the runtime's clock (time.Now, timers, the scheduler): the
// calibrated TSC. Without it time stands still.
//
//go:linkname nanotime runtime/goos.Nanotime
func nanotime() int64 {
	return AMD64.GetTime()
}

// hwinit1 is the board's early setup, run by the runtime before main
// (Init). Without it neither the CPU, the I/O APICs, the UART nor the
// clock are set up.
//
//go:linkname hwinit1 runtime/goos.Hwinit1
func hwinit1() {
	Init()
}

// Interrupt state private to tamago's amd64 package (amd64/irq.go, irq.s).

// irqHandlerG is the goroutine tamago services interrupts on, set by
// amd64.CPU.ServiceInterrupts. tamago v1.26.2 removed it (the service
// goroutine waits on os/signal since); linked to nothing, it stays 0 and
// serviceAsleep never reports true: interrupts are never unmasked, the
// console is polled and the network never starts.
//
//go:linkname irqHandlerG github.com/usbarmory/tamago/amd64.irqHandlerG
var irqHandlerG uint

// serviceAsleep reports whether tamago's interrupt service goroutine
// sleeps in time.Sleep, ready to be woken by an interrupt: runtime.Asleep
// is tamago-go's, and tamago's own ClearInterrupt waits the same way.
func serviceAsleep() bool {
	return irqHandlerG != 0 && runtime.Asleep(irqHandlerG)
}

// irqLock is set by tamago's interrupt entry when it wakes the service
// goroutine, and cleared once the interrupt is acknowledged. Linked to
// nothing, it stays false: the idle governor may then halt through a
// wake-up until its timer, and interrupts are served late.
//
//go:linkname irqLock github.com/usbarmory/tamago/amd64.irqLock
var irqLock bool

// irqPending reports whether an interrupt has woken the service goroutine
// and is not acknowledged yet. Call it with interrupts off.
func irqPending() bool {
	return irqLock
}
