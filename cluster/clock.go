package cluster

import "time"

// Clock is the node's source of time. Tests inject a fake one; RealClock
// is the default.
type Clock interface {
	Now() time.Time
	// TimerAt returns a timer that sends the time on its channel once the
	// clock reaches at; at once if it has. (An absolute time, so that a
	// fake clock moved while the timer is being made cannot shift it.)
	TimerAt(at time.Time) Timer
}

// Timer is a one-shot timer made by a Clock.
type Timer interface {
	C() <-chan time.Time
	// Stop prevents the timer from firing; it reports whether it did.
	Stop() bool
}

// RealClock returns the Clock of package time.
func RealClock() Clock { return realClock{} }

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) TimerAt(at time.Time) Timer { return realTimer{time.NewTimer(time.Until(at))} }

type realTimer struct{ t *time.Timer }

func (t realTimer) C() <-chan time.Time { return t.t.C }
func (t realTimer) Stop() bool          { return t.t.Stop() }
