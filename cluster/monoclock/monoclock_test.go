package monoclock

import (
	"context"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"fornax/cluster"
)

// machine imitates what a Clock runs on under tamago, one CPU: a raw
// counter (the TSC); the runtime's clock, nanotime, the raw counter plus
// an offset that setting the wall clock moves; the one runtime timer of
// Run's nap, kept as a nanotime deadline as the runtime keeps it; and the
// scheduler's idle loop, which asks the hook (Clock.Idle) before it halts.
type machine struct {
	raw    atomic.Int64 // ns
	offset atomic.Int64 // nanotime - raw
	// idle is the idle hook (Clock.Idle), or nil: not installed.
	idle func(now, until int64) (int64, bool)

	mu      sync.Mutex
	cond    *sync.Cond
	napping *nap // Run's pending nap; nil while Run runs
}

type nap struct {
	until int64 // nanotime
	wake  chan struct{}
}

// t0 is the wall clock when the machine boots.
var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// start boots a machine that has been up for 10 s and starts a Clock's Run
// on it; the test's end stops it.
func start(t *testing.T, hook bool) (*machine, *Clock) {
	m := &machine{}
	m.cond = sync.NewCond(&m.mu)
	m.raw.Store(int64(10 * time.Second))
	m.offset.Store(t0.UnixNano() - m.raw.Load())
	c := New(m.uptime, m.wall())
	if hook {
		m.idle = c.Idle
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		c.Run(ctx, m.sleep)
		close(done)
	}()
	t.Cleanup(func() {
		cancel()
		m.wakeRun()
		<-done
	})
	m.settle()
	return m, c
}

func (m *machine) uptime() time.Duration { return time.Duration(m.raw.Load()) }
func (m *machine) nanotime() int64       { return m.raw.Load() + m.offset.Load() }
func (m *machine) wall() time.Time       { return time.Unix(0, m.nanotime()).UTC() }

// sleep is Run's time.Sleep: a runtime timer at a nanotime deadline.
func (m *machine) sleep(d time.Duration) {
	n := &nap{until: m.nanotime() + int64(d), wake: make(chan struct{})}
	m.mu.Lock()
	m.napping = n
	m.cond.Broadcast()
	m.mu.Unlock()
	<-n.wake
}

// settle waits until Run naps again: what it does on waking is done.
func (m *machine) settle() *nap {
	m.mu.Lock()
	defer m.mu.Unlock()
	for m.napping == nil {
		m.cond.Wait()
	}
	return m.napping
}

// wakeRun ends Run's nap (its runtime timer fired, or runtime.Wake).
func (m *machine) wakeRun() {
	m.mu.Lock()
	n := m.napping
	m.napping = nil
	m.mu.Unlock()
	if n != nil {
		close(n.wake)
	}
}

// step sets the wall clock d ahead (or back): nanotime jumps, the raw
// counter does not. A nap due by the new nanotime ends at once.
func (m *machine) step(d time.Duration) {
	m.offset.Add(int64(d))
	if n := m.settle(); n.until <= m.nanotime() {
		m.wakeRun()
		m.settle()
	}
}

// run lets d pass with nothing to do but Run: the CPU halts until the
// runtime's earliest timer (the nap), or until the hook says, and each
// time it wakes the runtime fires what is due by nanotime, or the hook
// wakes Run. Nothing caps a halt, unlike the board's one-second LAPIC
// timer: a wrong Idle shows as a late timer here.
func (m *machine) run(d time.Duration) {
	end := m.raw.Load() + int64(d)
	for {
		n := m.settle()
		now := m.nanotime()
		if n.until <= now {
			m.wakeRun()
			continue
		}
		wakeAt := n.until
		if m.idle != nil {
			var wake bool
			wakeAt, wake = m.idle(now, n.until)
			if wake {
				m.wakeRun()
				continue
			}
		}
		left := end - m.raw.Load()
		if left <= 0 {
			return
		}
		m.raw.Add(min(wakeAt-now, left))
	}
}

// fired returns the time a timer sent, if it did.
func fired(tm cluster.Timer) (time.Time, bool) {
	select {
	case at := <-tm.C():
		return at, true
	default:
		return time.Time{}, false
	}
}

func TestNowIgnoresSteps(t *testing.T) {
	m, c := start(t, true)
	if got := c.Now(); !got.Equal(t0) {
		t.Fatalf("Now %v, want the wall clock at New, %v", got, t0)
	}
	for _, d := range []time.Duration{time.Hour, -2 * time.Hour, 30 * time.Second} {
		m.step(d)
		if got := c.Now(); !got.Equal(t0) {
			t.Errorf("after a step of %v: Now %v, want %v (the wall clock says %v)", d, got, t0, m.wall())
		}
	}
	m.run(5 * time.Second)
	if got, want := c.Now(), t0.Add(5*time.Second); !got.Equal(want) {
		t.Errorf("5 s later: Now %v, want %v", got, want)
	}
}

func TestTimersFireInOrderOnTime(t *testing.T) {
	m, c := start(t, true)
	now := c.Now()
	offsets := []time.Duration{3 * time.Second, time.Second + 7*time.Millisecond, 2 * time.Second}
	var timers []cluster.Timer
	for _, d := range offsets {
		timers = append(timers, c.TimerAt(now.Add(d)))
	}
	for _, i := range []int{1, 2, 0} {
		at := now.Add(offsets[i])
		m.run(at.Sub(c.Now()) - time.Nanosecond)
		for j, tm := range timers {
			if got, ok := fired(tm); ok {
				t.Errorf("a nanosecond before timer %d's deadline: timer %d fired, at %v", i, j, got.Sub(now))
			}
		}
		m.run(time.Nanosecond)
		if got, ok := fired(timers[i]); !ok || !got.Equal(at) {
			t.Errorf("timer %d (+%v): fired %v at +%v", i, offsets[i], ok, got.Sub(now))
		}
	}
}

// The point of the package: a step of the wall clock, either way, while a
// timer is pending does not move the timer.
func TestStepsDoNotMoveTimers(t *testing.T) {
	for _, step := range []time.Duration{-time.Hour, time.Hour} {
		m, c := start(t, true)
		at := c.Now().Add(5 * time.Second)
		tm := c.TimerAt(at)
		m.run(2 * time.Second)
		m.step(step)
		m.run(3*time.Second - time.Nanosecond)
		if got, ok := fired(tm); ok {
			t.Errorf("step %v: fired early, %v before its deadline", step, at.Sub(got))
		}
		m.run(time.Nanosecond)
		if got, ok := fired(tm); !ok || !got.Equal(at) {
			t.Errorf("step %v: fired %v, %v after its deadline", step, ok, got.Sub(at))
		}
	}
}

// Without the idle hook a step back delays Run's nap, and the timer, by
// the step: the machine above reproduces the runtime's timers (else the
// test before would prove nothing).
func TestStepBackDelaysTimersWithoutHook(t *testing.T) {
	m, c := start(t, false)
	at := c.Now().Add(5 * time.Second)
	tm := c.TimerAt(at)
	m.run(2 * time.Second)
	m.step(-time.Hour)
	m.run(3 * time.Second)
	if got, ok := fired(tm); ok {
		t.Fatalf("fired %v after its deadline without the hook: the machine does not imitate the runtime", got.Sub(at))
	}
	m.run(time.Hour)
	// The nap pending at the step, due at the deadline (or at Nap if
	// that is sooner), ends an hour after that.
	got, ok := fired(tm)
	if late, want := got.Sub(at), time.Hour+min(Nap, 5*time.Second)-5*time.Second; !ok || late != want {
		t.Errorf("fired %v, %v late; want %v", ok, late, want)
	}
}

// A timer made while Run naps fires on time when the CPU idles (the hook
// wakes Run), and at most one nap late when the hook never runs.
func TestTimerMadeDuringNap(t *testing.T) {
	for _, c := range []struct {
		hook bool
		late time.Duration
	}{{true, 0}, {false, Nap - 100*time.Millisecond}} {
		m, clk := start(t, c.hook)
		at := clk.Now().Add(100 * time.Millisecond)
		tm := clk.TimerAt(at)
		m.run(Nap)
		if got, ok := fired(tm); !ok || got.Sub(at) != c.late {
			t.Errorf("hook %v: fired %v, %v late; want %v", c.hook, ok, got.Sub(at), c.late)
		}
	}
}

// With a waker (tamago's runtime.Wake), a timer made while Run naps ends
// the nap when it is due before the nap would end: on time even when the
// hook never runs (a CPU busy throughout). A later timer does not wake
// Run.
func TestWakerEndsNap(t *testing.T) {
	m, clk := start(t, false)
	var pokes atomic.Int32
	clk.SetWaker(func() bool { pokes.Add(1); m.wakeRun(); return true })
	m.run(time.Second) // Run naps until Nap, with no timer
	late := clk.TimerAt(clk.Now().Add(Nap))
	if n := pokes.Load(); n != 0 {
		t.Errorf("a timer after the nap's end woke Run %d times", n)
	}
	at := clk.Now().Add(100 * time.Millisecond)
	tm := clk.TimerAt(at)
	if n := pokes.Load(); n != 1 {
		t.Errorf("a timer before the nap's end woke Run %d times, want 1", n)
	}
	m.run(time.Second)
	if got, ok := fired(tm); !ok || got != at {
		t.Errorf("fired %v, %v late; want on time", ok, got.Sub(at))
	}
	if _, ok := fired(late); ok {
		t.Error("the later timer fired early")
	}
}

func TestStop(t *testing.T) {
	m, c := start(t, true)
	now := c.Now()
	a, b := c.TimerAt(now.Add(time.Second)), c.TimerAt(now.Add(2*time.Second))
	if !a.Stop() {
		t.Error("Stop of a pending timer: false")
	}
	if a.Stop() {
		t.Error("second Stop: true")
	}
	m.run(1500 * time.Millisecond)
	if _, ok := fired(a); ok {
		t.Error("a stopped timer fired")
	}
	if _, ok := fired(b); ok {
		t.Error("the timer after a stopped one fired at the stopped one's time")
	}
	m.run(500 * time.Millisecond)
	if _, ok := fired(b); !ok {
		t.Error("did not fire")
	}
	if b.Stop() {
		t.Error("Stop of a fired timer: true")
	}
}

func TestTimerInThePastFiresAtOnce(t *testing.T) {
	_, c := start(t, true)
	now := c.Now()
	for _, at := range []time.Time{now, now.Add(-time.Hour)} {
		tm := c.TimerAt(at)
		if got, ok := fired(tm); !ok || !got.Equal(now) {
			t.Errorf("TimerAt(now%+v): fired %v, at %v", at.Sub(now), ok, got)
		}
		if tm.Stop() {
			t.Error("Stop of a fired timer: true")
		}
	}
}

func TestIdle(t *testing.T) {
	var raw atomic.Int64
	c := New(func() time.Duration { return time.Duration(raw.Load()) }, t0)
	const now = int64(1e18)
	for _, until := range []int64{0, now + 7, math.MaxInt64} {
		if at, wake := c.Idle(now, until); at != until || wake {
			t.Errorf("no timers, until %d: (%d, %v)", until, at, wake)
		}
	}
	c.TimerAt(c.Now().Add(5 * time.Second))
	for _, tc := range []struct {
		now, until, at int64
	}{
		{now, math.MaxInt64, now + 5e9},
		{now, 0, now + 5e9},
		{now, now + 1e9, now + 1e9},        // the runtime wakes first anyway
		{-now, now, -now + 5e9},            // a clock set before 1970
		{math.MaxInt64 - 10, 0, 0},         // now+left overflows: never
		{now, now - 3600e9, now - 3600e9},  // a nap left behind by a step forward
		{now, now + 3600e9 + 1, now + 5e9}, // ... and by a step back
	} {
		if at, wake := c.Idle(tc.now, tc.until); at != tc.at || wake {
			t.Errorf("Idle(%d, %d) = (%d, %v), want (%d, false)", tc.now, tc.until, at, wake, tc.at)
		}
	}
	raw.Store(5e9 - 1)
	if at, wake := c.Idle(now, math.MaxInt64); at != now+1 || wake {
		t.Errorf("1 ns before the deadline: (%d, %v)", at, wake)
	}
	raw.Store(5e9)
	if at, wake := c.Idle(now, 42); at != 42 || !wake {
		t.Errorf("at the deadline: (%d, %v), want (42, true)", at, wake)
	}
}
