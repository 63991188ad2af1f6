package cluster

import (
	"testing"
	"time"
)

// TestScheduleDue drives a schedule of 5 s through on-time, early and
// late calls: message k is due at k*5 s, every third an ANNOUNCE; ticks
// missed while late make one message, an ANNOUNCE if one of them was
// (docs/protocol.md §4.2).
func TestScheduleDue(t *testing.T) {
	sc := schedule{interval: 5 * s}
	if sc.due(t0) != 0 || !sc.next.IsZero() {
		t.Fatal("a schedule not begun has a message due")
	}
	sc.begin(t0)
	for i, c := range []struct {
		at   time.Duration
		want Kind // 0: none
		next time.Duration
		stop bool // stop, then begin again at at
	}{
		{at: 4999 * ms, next: 5 * s},
		{at: 5 * s, want: Heartbeat, next: 10 * s},
		{at: 5 * s, next: 10 * s}, // sent: not again
		{at: 10*s + 300*ms, want: Heartbeat, next: 15 * s},
		{at: 15 * s, want: Announce, next: 20 * s},
		{at: 22 * s, want: Heartbeat, next: 25 * s},   // tick 4
		{at: 34 * s, want: Announce, next: 35 * s},    // ticks 5, 6
		{at: 44 * s, want: Heartbeat, next: 45 * s},   // ticks 7, 8
		{at: 61 * s, want: Announce, next: 65 * s},    // ticks 9-12
		{at: 95 * s, want: Announce, next: 100 * s},   // ticks 13-19
		{at: 104 * s, want: Heartbeat, next: 105 * s}, // tick 20
		// stopped: nothing due; begun again at 107.5 s, a new base
		{at: 107500 * ms, stop: true, next: 112500 * ms},
		{at: 112500 * ms, want: Heartbeat, next: 117500 * ms},
		{at: 122500 * ms, want: Announce, next: 127500 * ms}, // ticks 2, 3
	} {
		now := t0.Add(c.at)
		if c.stop {
			sc.stop()
			if sc.due(now) != 0 || !sc.next.IsZero() {
				t.Fatalf("step %d: stopped, and a message is due", i)
			}
			sc.begin(now)
		}
		got := sc.due(now)
		if got != c.want || !sc.next.Equal(t0.Add(c.next)) {
			t.Errorf("step %d at %v: %v, next %v; want %v, next %v", i, c.at, got, sc.next.Sub(t0), c.want, c.next)
		}
	}
}

func TestEarliestReached(t *testing.T) {
	var zero time.Time
	a, b := t0, t0.Add(s)
	for _, c := range []struct{ x, y, want time.Time }{
		{zero, zero, zero}, {a, zero, a}, {zero, a, a}, {a, b, a}, {b, a, a},
	} {
		if got := earliest(c.x, c.y); !got.Equal(c.want) {
			t.Errorf("earliest(%v, %v) = %v", c.x, c.y, got)
		}
	}
	if reached(b, zero) || reached(a, b) || !reached(b, b) || !reached(b, a) {
		t.Error("reached")
	}
	if !later(a, b).Equal(b) || !later(b, a).Equal(b) {
		t.Error("later")
	}
}
