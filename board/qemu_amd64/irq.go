//go:build tamago

package qemu_amd64

// Device interrupts. Three rules keep them from being lost or mixed up,
// each enforced at one place below:
//
//  1. one LAPIC priority class for all device vectors (route);
//  2. unmask only after the service goroutine sleeps (ServiceInterrupts);
//  3. poll each device once after unmasking (ServiceInterrupts).
//
// docs/tamago.md says why they hang on tamago's interrupt handling.

import (
	"fmt"
	"runtime"
	"sync/atomic"
)

// An IRQ is a device's interrupt: global system interrupt GSI, served by
// Handle on the interrupt service goroutine. Handle must also cope with
// being called when the device has nothing to report.
type IRQ struct {
	GSI    int
	Handle func()
}

// Device vectors run from deviceVectorBase to ConsoleIRQ (0x3f, the
// console's), in the order of the IRQs given to ServiceInterrupts.
const deviceVectorBase = 0x30

// interruptsOn is set once the vectors are installed: until then the
// idle governor cannot arm the LAPIC timer (vector 255) and spins.
var interruptsOn atomic.Bool

// ServiceInterrupts installs the interrupt vectors and services the
// console's and devs' interrupts on the calling goroutine; it does not
// return. devs get vectors deviceVectorBase, deviceVectorBase+1, ...
// in order, and are unmasked once the vectors are installed.
func ServiceInterrupts(devs []IRQ) {
	go func() {
		// Rule 2: unmask only after the service goroutine sleeps.
		// tamago's ServiceInterrupts fills the IDT, then sleeps in
		// time.Sleep until an interrupt wakes it. An interrupt before
		// that finds no IDT entry (a fault) or no sleeper to wake (it
		// is lost until another comes): wait for the sleep, as tamago's
		// own ClearInterrupt does (the IDT fill allocates, so it may
		// yield to us half way).
		for !serviceAsleep() {
			runtime.Gosched()
		}
		interruptsOn.Store(true)
		Serial.enableInterrupt()
		for i, d := range devs {
			route(d.GSI, deviceVectorBase+i)
		}
		// Rule 3: poll each device once after unmasking. tamago's
		// ioapic routes inputs edge-triggered: an edge raised before
		// its input was unmasked is lost, and the device would wait
		// for a driver that waits for it.
		for _, d := range devs {
			d.Handle()
		}
	}()
	AMD64.ServiceInterrupts(func(vector int) {
		// Vector 255 (LAPIC timer) never gets here: tamago's entry
		// for it only acknowledges it.
		if vector == ConsoleIRQ {
			Serial.interrupt()
			return
		}
		if i := vector - deviceVectorBase; i >= 0 && i < len(devs) {
			devs[i].Handle()
		}
	})
}

// route routes global system interrupt gsi to vector, unmasked.
//
// Rule 1: one priority class for device vectors. tamago's service
// goroutine handles one interrupt at a time and reads its vector from a
// global, which a nested interrupt would overwrite; the interrupt is
// acknowledged (EOI) only once its handler has run. The LAPIC delivers
// no interrupt while one of the same or a higher priority class
// (vector/16) is in service (SDM Vol. 3A, 11.8.3), so with every device
// vector in class 3 (0x30-0x3f) none nests in another.
func route(gsi, vector int) {
	if vector < deviceVectorBase || vector > ConsoleIRQ {
		panic(fmt.Sprintf("qemu_amd64: GSI %d on vector %#x: device vectors must be %#x-%#x, one priority class",
			gsi, vector, deviceVectorBase, ConsoleIRQ))
	}
	if gsi < IOAPIC1.GSIBase {
		IOAPIC0.EnableInterrupt(gsi, vector)
	} else {
		IOAPIC1.EnableInterrupt(gsi, vector)
	}
}
