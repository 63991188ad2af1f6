//go:build tamago

package main

import (
	"time"

	board "fornax/board/qemu_amd64"
)

// haltDrain bounds the wait at halt for the NIC to take the frames sent
// last: QEMU ends with the guest, dropping what it has not yet sent.
const haltDrain = 200 * time.Millisecond

// atHalt has f run when the machine halts (the halt command, or the
// console's end), for what must reach the network first: mDNS's
// goodbye. Services call it as they start.
func (s *system) atHalt(f func()) { s.halting = append(s.halting, f) }

// halt runs the atHalt functions, waits up to haltDrain for the device
// to take every frame handed to it, and stops the machine.
func (s *system) halt() {
	for _, f := range s.halting {
		f()
	}
	if s.nic != nil {
		for end := time.Now().Add(haltDrain); s.nic.Stats().TX.InFlight > 0 && time.Now().Before(end); {
			time.Sleep(time.Millisecond)
		}
	}
	board.Halt()
}
