// Package monoclock is a cluster.Clock on a raw monotonic counter (on
// Fornax the TSC, board.Uptime): setting the wall clock moves neither its
// time nor its timers. It sits under cluster, whose Clock it implements,
// in a package of its own: only the kernel needs it (fornaxd's runtime
// clock is Linux's monotonic one), so only the kernel links it.
//
// Why not package time: under tamago the runtime's clock (nanotime) is
// the board's wall clock, AMD64.GetTime = TSC·multiplier + TimerOffset,
// and AMD64.SetTime moves TimerOffset (tamago amd64/timer.go). time.Now,
// its monotonic reading included, and every runtime timer follow it:
// timers are kept as absolute nanotime deadlines, so after a step of the
// clock by -1 h a pending time.Sleep or time.Timer ends 1 h late, and
// after +1 h it ends at once. Such steps happen: kvmclock (tamago
// kvm/pvclock) sets the clock every second on a KVM host without an
// invariant TSC, its first setting moving it back from the RTC's date to
// kvmclock's own epoch, decades.
//
// So a Clock keeps its timers on the raw counter, and one goroutine (Run)
// fires them. Run waits with the runtime's sleep, in naps of at most Nap:
// a step forward only wakes it early, and it naps again. A step back
// makes the pending nap late by the step, and no nap length can help:
// the nap is itself a runtime timer. What does not follow nanotime is
// the idle loop: the board halts for at most a second of the LAPIC timer
// and asks the runtime again. Idle is for that hook: it says when the CPU
// must wake for the earliest timer and when the sleeping Run must be
// woken (tamago's runtime.Wake). A step back can then delay a timer only
// while the CPU never idles.
package monoclock

import (
	"container/heap"
	"context"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"fornax/cluster"
)

// Nap bounds each wait of Run. A timer made while Run naps, earlier than
// the nap's end, ends the nap through the Clock's waker (SetWaker), and
// when the CPU idles the idle hook fires it on time anyway; Nap is what a
// timer can be late by without either, when the CPU is busy throughout.
// Each nap is a wake-up of an idle VM: they were 4 a second at 250 ms,
// most of an idle VM's wake-ups (docs/bench.md).
const Nap = 5 * time.Second

// noTimer is Clock.next when no timer is pending.
const noTimer = math.MaxInt64

// Clock is a cluster.Clock whose time is its raw counter's. It needs Run.
type Clock struct {
	raw   func() time.Duration
	epoch time.Time // wall time at raw 0, without a monotonic reading

	mu     sync.Mutex
	timers timerHeap
	// next is the raw deadline (ns) of the earliest pending timer, or
	// noTimer: Idle reads it without the lock.
	next atomic.Int64
	// napEnd is the raw time (ns) Run's nap ends, or noTimer while Run
	// is deciding it; napping is false while Run fires.
	napEnd  atomic.Int64
	napping atomic.Bool
	// wake ends Run's nap (SetWaker); nil: none.
	wake atomic.Pointer[func() bool]
}

var _ cluster.Clock = (*Clock)(nil)

// New returns a Clock that reads raw, a monotonic counter, and reads wall
// now. Its time is wall moved on by raw since: a wall-clock time to show,
// which later settings of the wall clock leave alone.
func New(raw func() time.Duration, wall time.Time) *Clock {
	c := &Clock{raw: raw, epoch: wall.Round(0).Add(-raw())}
	c.next.Store(noTimer)
	return c
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time { return c.at(c.raw()) }

func (c *Clock) at(raw time.Duration) time.Time { return c.epoch.Add(raw) }

// TimerAt returns a timer that fires once the clock reaches at (at once
// if it has), sending the clock's time then.
func (c *Clock) TimerAt(at time.Time) cluster.Timer {
	t := &timer{c: c, at: at.Sub(c.epoch), ch: make(chan time.Time, 1), index: -1}
	c.mu.Lock()
	defer c.mu.Unlock()
	if now := c.raw(); t.at <= now {
		t.ch <- c.at(now)
		return t
	}
	heap.Push(&c.timers, t)
	c.storeNext()
	c.poke(t.at)
	return t
}

// SetWaker gives the Clock a way to end Run's nap early, as tamago's
// runtime.Wake ends a time.Sleep: it reports whether it did. TimerAt calls
// it for a timer due before the nap ends, so that a timer made while the
// CPU is busy is not late by up to Nap.
func (c *Clock) SetWaker(wake func() bool) { c.wake.Store(&wake) }

// poke ends Run's nap if a timer at raw time at is due before it ends.
// c.mu is held; wake only marks a runtime timer, it does not block.
func (c *Clock) poke(at time.Duration) {
	w := c.wake.Load()
	if w == nil || !c.napping.Load() || int64(at) >= c.napEnd.Load() {
		return
	}
	(*w)()
}

// Run fires the timers until ctx is done, waiting with sleep (time.Sleep:
// a runtime timer, which may end early or, after a step back, late). It
// notices ctx only when a nap ends.
func (c *Clock) Run(ctx context.Context, sleep func(time.Duration)) {
	for ctx.Err() == nil {
		now := c.raw()
		c.fire(now)
		// Published before the nap is worked out, so a timer made
		// meanwhile either shortens it or pokes it (poke). On one CPU
		// without preemption nothing runs between here and sleep.
		c.napEnd.Store(noTimer)
		c.napping.Store(true)
		d := c.nap(now)
		c.napEnd.Store(int64(now + d))
		if d = c.nap(now); int64(now+d) < c.napEnd.Load() {
			c.napEnd.Store(int64(now + d))
		}
		sleep(d)
		c.napping.Store(false)
	}
}

// fire fires the timers due at raw time now.
func (c *Clock) fire(now time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.timers) > 0 && c.timers[0].at <= now {
		t := heap.Pop(&c.timers).(*timer)
		t.ch <- c.at(now) // buffered, and a timer fires once
	}
	c.storeNext()
}

// nap is how long Run waits from raw time now: until the earliest timer,
// at most Nap.
func (c *Clock) nap(now time.Duration) time.Duration {
	d := Nap
	if next := c.next.Load(); next != noTimer && time.Duration(next)-now < d {
		d = time.Duration(next) - now
	}
	return d
}

// storeNext publishes the earliest deadline; c.mu is held.
func (c *Clock) storeNext() {
	if len(c.timers) == 0 {
		c.next.Store(noTimer)
		return
	}
	c.next.Store(int64(c.timers[0].at))
}

// Idle is the idle hook's arithmetic. The runtime, about to halt the CPU
// at its time now, means to wake at its time until (0 or math.MaxInt64:
// not at all); both are nanotime, the settable clock. Idle returns when
// it should wake instead, so as to be up for the earliest timer by the
// raw counter, and wake true if that timer is due: Run must be woken now,
// as its nap may end an hour late. It takes no lock and allocates
// nothing: the runtime calls the hook from its scheduler.
func (c *Clock) Idle(now, until int64) (wakeAt int64, wake bool) {
	next := c.next.Load()
	if next == noTimer {
		return until, false
	}
	left := next - int64(c.raw())
	if left <= 0 {
		return until, true
	}
	end := until // 0 is never, as math.MaxInt64 is
	if end == 0 {
		end = math.MaxInt64
	}
	if now < 0 || left < math.MaxInt64-now { // else now+left overflows: never
		if at := now + left; at < end {
			return at, false
		}
	}
	return until, false
}

// timer is a Clock's timer.
type timer struct {
	c     *Clock
	at    time.Duration // raw deadline
	ch    chan time.Time
	index int // in c.timers; -1 when not pending
}

func (t *timer) C() <-chan time.Time { return t.ch }

// Stop prevents the timer from firing; it reports whether it did.
func (t *timer) Stop() bool {
	c := t.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.index < 0 {
		return false
	}
	heap.Remove(&c.timers, t.index)
	c.storeNext()
	return true
}

// timerHeap orders pending timers by deadline (container/heap).
type timerHeap []*timer

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}

func (h *timerHeap) Push(x any) {
	t := x.(*timer)
	t.index = len(*h)
	*h = append(*h, t)
}

func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	t.index = -1
	return t
}
