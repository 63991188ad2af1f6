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
		if ok != (len(model) > 0) || key != wantKey || !at.Equal(wantAt) || len(tm.h) != len(model) {
			t.Fatalf("step %d: min %q %v %v len %d; want %q %v, len %d", step, key, at, ok, len(tm.h), wantKey, wantAt, len(model))
		}
		for k, e := range tm.pos {
			if e.key != k || tm.h[e.i] != e {
				t.Fatalf("step %d: %q is not where its index says", step, k)
			}
			if !e.at.Equal(model[k]) {
				t.Fatalf("step %d: %q at %v, want %v", step, k, e.at, model[k])
			}
		}
	}
	if !(&timers{}).next().IsZero() {
		t.Error("empty timers: next is not the zero time")
	}
}

// TestAges: whatever the order in which peers are heard, each list stays
// in LastHeard order, and unlinking keeps it whole.
func TestAges(t *testing.T) {
	var a ages
	rng := rand.New(rand.NewPCG(5, 6))
	peers := map[string]*Peer{}
	for step := range 5000 {
		id := fmt.Sprintf("%08x", rng.IntN(100))
		p := peers[id]
		if p == nil {
			p = &Peer{ID: id}
			peers[id] = p
		}
		a.unlink(p)
		if rng.IntN(5) == 0 {
			delete(peers, id)
		} else {
			p.Status = Status(rng.IntN(3))
			p.LastHeard = t0.Add(time.Duration(rng.IntN(1000)) * time.Millisecond)
			a.push(p)
		}
		n := 0
		for s := Online; s <= Dead; s++ {
			var prev *Peer
			for p := a.oldest(s); p != nil; prev, p = p, p.next {
				if p.prev != prev || p.Status != s || prev != nil && p.LastHeard.Before(prev.LastHeard) {
					t.Fatalf("step %d: list %v is out of order at %s", step, s, p.ID)
				}
				n++
			}
			if a.tail[s] != prev {
				t.Fatalf("step %d: list %v: tail is not its last peer", step, s)
			}
		}
		if n != len(peers) {
			t.Fatalf("step %d: %d peers in the lists, want %d", step, n, len(peers))
		}
	}
}
