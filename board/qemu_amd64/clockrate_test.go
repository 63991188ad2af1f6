package qemu_amd64

import (
	"testing"
	"time"
)

func TestRateBetween(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 7, 0, 0, 0, time.UTC)
	const hz = 2_095_992_000
	mult := 1e9 / hz
	for _, c := range []struct {
		name   string
		a, b   edge
		mult   float64
		want   float64
		wantOK bool
	}{
		{"10 s", edge{1000, t0}, edge{1000 + 10*hz, t0.Add(10 * time.Second)}, mult * 1.0003, mult, true},
		{"slower by 500 ppm", edge{0, t0}, edge{10 * hz, t0.Add(10*time.Second + 5*time.Millisecond)}, mult, mult * 1.0005, true},
		{"an edge a second off", edge{0, t0}, edge{10 * hz, t0.Add(11 * time.Second)}, mult, 0, false},
		{"too close", edge{0, t0}, edge{hz / 2, t0.Add(500 * time.Millisecond)}, mult, 0, false},
		{"counter back", edge{10 * hz, t0}, edge{hz, t0.Add(10 * time.Second)}, mult, 0, false},
		{"no rate yet", edge{0, t0}, edge{10 * hz, t0.Add(10 * time.Second)}, 0, 0, false},
	} {
		got, ok := rateBetween(c.a, c.b, c.mult)
		if ok != c.wantOK || (ok && (got/c.want-1 > 1e-9 || c.want/got-1 > 1e-9)) {
			t.Errorf("%s: rate %v, %v; want %v, %v", c.name, got, ok, c.want, c.wantOK)
		}
	}
}

// A change of rate keeps uptime continuous and monotonic.
func TestRebase(t *testing.T) {
	b := &clockBase{mult: 0.5}
	at := uint64(2_000_000_000) // 1 s
	before := b.uptime(at)
	for _, m := range []float64{0.4999, 0.5001} {
		nb := b.rebase(at, m)
		if got := nb.uptime(at); got != before {
			t.Errorf("mult %v: uptime %v at the rebase, was %v", m, got, before)
		}
		if got, want := nb.uptime(at+2e9), before+time.Duration(2e9*m); got != want {
			t.Errorf("mult %v: uptime %v 2e9 counts on, want %v", m, got, want)
		}
	}
}
