package qemu_amd64

// The arithmetic of the clock's refinement (refine.go), plain Go so that
// it is tested on the host.

import (
	"math"
	"time"
)

// An edge is the moment the RTC's seconds turned: the counter (TSC) then
// and the time of day it turned to.
type edge struct {
	count uint64
	at    time.Time
}

// maxRefineChange is how far a rate measured against the RTC may be from
// the boot's calibration and be believed: the PIT's short windows are off
// by a few hundred ppm (docs/guide.md), a wrong edge by 1 s in 10.
const maxRefineChange = 0.01

// rateBetween returns the ns per count that edges a and b imply, and
// false if they are too close, out of order or imply a rate more than
// maxRefineChange from mult, the current one.
func rateBetween(a, b edge, mult float64) (float64, bool) {
	dt := b.at.Sub(a.at)
	if dt < time.Second || b.count <= a.count || mult <= 0 {
		return 0, false
	}
	m := float64(dt.Nanoseconds()) / float64(b.count-a.count)
	if math.Abs(m/mult-1) > maxRefineChange {
		return 0, false
	}
	return m, true
}

// A clockBase keeps uptime continuous across a change of rate: uptime is
// up at count cnt, and runs at mult ns per count from there.
type clockBase struct {
	cnt  uint64
	up   float64 // ns
	mult float64 // ns per count
}

func (b *clockBase) uptime(count uint64) time.Duration {
	return time.Duration(b.up + float64(int64(count-b.cnt))*b.mult)
}

// rebase returns the base that, from count on, runs at mult and reads
// what b read at count.
func (b *clockBase) rebase(count uint64, mult float64) *clockBase {
	return &clockBase{cnt: count, up: float64(b.uptime(count)), mult: mult}
}
