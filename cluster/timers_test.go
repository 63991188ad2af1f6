package cluster

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// TestTimers checks the heap against a map after each of many random
// sets and removes, times repeating so that ties occur.
func TestTimers(t *testing.T) {
	var tm timers
	model := map[string]time.Time{}
	rng := rand.New(rand.NewPCG(1, 2))
	t0 := time.Unix(1000, 0)
	for step := range 20000 {
		key := fmt.Sprintf("%08x", rng.IntN(200))
		switch rng.IntN(3) {
		case 0, 1:
			at := t0.Add(time.Duration(rng.IntN(50)) * time.Second)
			tm.set(key, at)
			model[key] = at
		case 2:
			tm.remove(key)
			delete(model, key)
		}
		if step%1000 == 999 {
			tm.reset()
			clear(model)
		}
		var wantKey string
		var wantAt time.Time
		for k, at := range model {
			if wantKey == "" || at.Before(wantAt) || at.Equal(wantAt) && k < wantKey {
				wantKey, wantAt = k, at
			}
		}
		key, at, ok := tm.min()
		if ok != (len(model) > 0) || key != wantKey || !at.Equal(wantAt) || tm.len() != len(model) {
			t.Fatalf("step %d: min %q %v %v len %d; want %q %v, len %d", step, key, at, ok, tm.len(), wantKey, wantAt, len(model))
		}
		for k, e := range tm.pos {
			if e.key != k || tm.h[e.i] != e {
				t.Fatalf("step %d: %q is not where its index says", step, k)
			}
			if at, _ := tm.get(k); !at.Equal(model[k]) {
				t.Fatalf("step %d: get %q = %v, want %v", step, k, at, model[k])
			}
		}
	}
	if !(&timers{}).next().IsZero() {
		t.Error("empty timers: next is not the zero time")
	}
}
