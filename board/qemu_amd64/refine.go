//go:build tamago

package qemu_amd64

// The clock after boot. The PIT calibration (pit.go) is short and its
// rate a few hundred ppm off; the RTC set the wall clock to the second.
// RefineClock times turns of the RTC's seconds, which QEMU keeps by the
// host's clock, with the TSC, and sets the rate and the wall clock from
// them: a VM's clock then keeps the host's to a few µs a second, which
// signed messages need (their window is 30 s, docs/protocol.md §9.2) and
// a drift of 300 ppm would use up in a day.

import (
	"sync/atomic"
	"time"
)

// base is the uptime's rate and origin once RefineClock has changed the
// rate; nil before, when uptime is the counter at the boot's rate.
var base atomic.Pointer[clockBase]

// Uptime returns the time since the machine was reset: the TSC starts
// from zero at reset on QEMU, TCG and KVM alike. A change of rate
// (RefineClock) leaves it continuous.
func Uptime() time.Duration {
	if b := base.Load(); b != nil {
		return b.uptime(AMD64.Counter())
	}
	return time.Duration(float64(AMD64.Counter()) * AMD64.TimerMultiplier)
}

const (
	refineFirst = 10 * time.Second // the first measure's span
	refineEvery = 10 * time.Minute // then: the span grows, the rate and wall clock are set again
	edgePoll    = 5 * time.Millisecond
	edgeSlack   = 15 * time.Millisecond // spun on either side of a predicted turn
)

// RefineClock measures the TSC against the RTC 10 s after it starts, then
// every 10 minutes over the whole span since its first turn, and each
// time sets the clock's rate and the wall clock; logf says what changed.
// It runs for ever (start it in a goroutine) unless the clock is
// kvmclock's or the wall clock did not come from the RTC.
func RefineClock(logf func(format string, args ...any)) {
	if clockKind != "tsc/pit" || !wallFromRTC {
		return
	}
	first := findEdge()
	pit := AMD64.TimerMultiplier
	span := refineFirst // from first to the turn measured next
	for n := 0; ; n++ {
		e, ok := catchEdge(first, span)
		if !ok {
			// Missed the turn (a long stall): start again.
			first, span = findEdge(), refineFirst
			continue
		}
		m, ok := rateBetween(first, e, AMD64.TimerMultiplier)
		if !ok {
			logf("clock: the RTC and TSC disagree over %v: the RTC was set, or the host stalled; measuring again", span)
			first, span = e, refineFirst
			continue
		}
		step := apply(e, m)
		if n == 0 {
			logf("clock: tsc %.0f Hz by the RTC over %v, %+.0f ppm from the PIT's; wall clock stepped %v",
				1e9/m, span, (pit/m-1)*1e6, step.Round(time.Microsecond))
		}
		span += refineEvery
	}
}

// findEdge waits for a turn of the RTC's seconds by polling: its count is
// known to within edgePoll, its time exactly.
func findEdge() edge {
	s0 := cmosRead(0x00)
	for {
		time.Sleep(edgePoll)
		if cmosRead(0x00) != s0 {
			if t, ok := rtcTime(); ok {
				return edge{count: AMD64.Counter(), at: t}
			}
			s0 = cmosRead(0x00)
		}
	}
}

// catchEdge sleeps until shortly before the turn d after the whole
// second of e, then spins for it: its count is then known to a read of
// the RTC (a few µs). It fails if the turn does not come within
// edgeSlack of when the counter says.
func catchEdge(e edge, d time.Duration) (edge, bool) {
	mult := AMD64.TimerMultiplier
	want := e.count + uint64(float64((d-edgeSlack).Nanoseconds())/mult)
	time.Sleep(time.Duration(float64(want-min(want, AMD64.Counter())) * mult))
	deadline := want + uint64(float64(2*edgeSlack)/mult)
	s0 := cmosRead(0x00)
	before := AMD64.Counter()
	for {
		s := cmosRead(0x00)
		now := AMD64.Counter()
		if s != s0 {
			t, ok := rtcTime()
			return edge{count: before/2 + now/2, at: t}, ok && t.Sub(e.at) == d
		}
		if now > deadline {
			return edge{}, false
		}
		before = now
	}
}

// apply makes mult the clock's rate and sets the wall clock by edge e,
// with interrupts off: nothing reads the clock half changed. It returns
// the step of the wall clock.
func apply(e edge, mult float64) time.Duration {
	cli()
	defer sti()
	c := AMD64.Counter()
	old := AMD64.GetTime()
	b := base.Load()
	if b == nil {
		b = &clockBase{mult: AMD64.TimerMultiplier}
	}
	base.Store(b.rebase(c, mult))
	AMD64.TimerMultiplier = mult
	tscHz = uint64(1e9/mult + 0.5)
	wall := e.at.Add(time.Duration(float64(c-e.count) * mult)).UnixNano()
	AMD64.SetTime(wall)
	return time.Duration(wall - old)
}
