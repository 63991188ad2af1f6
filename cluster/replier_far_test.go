package cluster

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
)

// TestReplierFar: answers to nodes off our subnet (docs/protocol.md
// §4.6) go by unicast, each its own however many, at most one round per
// AnswerEvery, capped at maxFar, and a broadcast ANNOUNCE does not
// cancel them (it does not reach those nodes).
func TestReplierFar(t *testing.T) {
	r := replier{every: s, interval: 5 * s, jitter: 200 * ms, rng: rand.New(&countSource{}), maxFar: 6}
	var to []netip.Addr
	for i := range 8 {
		a := netip.MustParseAddr(fmt.Sprintf("10.1.0.%d", i+1))
		to = append(to, a)
		r.replyFar(t0, a)
	}
	r.replyFar(t0, to[0]) // once each
	r.cancel()            // a periodic ANNOUNCE
	if r.next() != t0 {
		t.Fatalf("next %v", r.next().Sub(t0))
	}
	if got := r.dueFar(t0); !slices.Equal(got, to[:6]) {
		t.Errorf("due %v, want the first 6", got)
	}
	r.replyFar(t0.Add(100*ms), to[7])
	if got := r.dueFar(t0.Add(100 * ms)); got != nil {
		t.Errorf("due again at once: %v", got)
	}
	if got := r.next().Sub(t0); got != s {
		t.Errorf("next round at %v, want AnswerEvery after the last", got)
	}
	if got := r.dueFar(t0.Add(s)); !slices.Equal(got, to[7:8]) {
		t.Errorf("due %v", got)
	}
	r.replyFar(t0.Add(3*s), to[1])
	r.drop()
	if !r.next().IsZero() || r.dueFar(t0.Add(10*s)) != nil {
		t.Error("drop left an answer")
	}
}
