package cluster

import (
	"testing"
	"time"
)

// TestSequencer: seq follows the wall clock in ms, raised past the last
// one while the clock stands or steps back a little; a step back of more
// than half the window (15 s) starts a new incarnation, and so does a
// refutation (docs/protocol.md §9.1, §5).
func TestSequencer(t *testing.T) {
	if q := newSequencer(0, 30*s); q.inc != 1 {
		t.Errorf("inc at wall 0: %d, want 1", q.inc)
	}
	q := newSequencer(1_000_000, 30*s)
	for i, c := range []struct {
		wall     int64
		restart  bool // refute before signing
		inc, seq uint64
	}{
		{wall: 1_000_000, inc: 1_000_000, seq: 1_000_000},
		{wall: 1_000_000, inc: 1_000_000, seq: 1_000_001},
		{wall: 990_000, inc: 1_000_000, seq: 1_000_002},
		{wall: 985_002, inc: 1_000_000, seq: 1_000_003}, // back exactly half the window
		{wall: 985_002, inc: 1_000_001, seq: 985_002},   // back more
		{wall: 990_000, inc: 1_000_001, seq: 990_000},
		{wall: 990_000, restart: true, inc: 1_000_002, seq: 990_001},
		{wall: -5, inc: 1_000_003, seq: 1}, // a clock before 1970 counts as 0
	} {
		if c.restart {
			q.restart(0)
		}
		inc, seq := q.next(c.wall)
		if inc != c.inc || seq != c.seq {
			t.Errorf("step %d: wall %d: inc %d seq %d, want %d %d", i, c.wall, inc, seq, c.inc, c.seq)
		}
	}
}

// TestSequencerReplayed: a message of our own id is ours, replayed, when
// it is of our current incarnation or the one before and not newer than
// the last we signed under it; anything else is a claim, and a claim
// newer than anything we signed is one even from our own address
// (docs/protocol.md §9.2, §6 step 5).
func TestSequencerReplayed(t *testing.T) {
	q := newSequencer(5000, 30*s)
	if q.replayed(5000, 1) || q.replayed(0, 0) || !q.sentNewer(5000, 1) {
		t.Error("replayed before anything was signed")
	}
	q.next(7000)
	check := func(step string, cases []struct {
		inc, seq        uint64
		replayed, newer bool
	}) {
		for _, c := range cases {
			if got := q.replayed(c.inc, c.seq); got != c.replayed {
				t.Errorf("%s: replayed(%d, %d) = %v, want %v", step, c.inc, c.seq, got, c.replayed)
			}
			if got := q.sentNewer(c.inc, c.seq); got != c.newer {
				t.Errorf("%s: sentNewer(%d, %d) = %v, want %v", step, c.inc, c.seq, got, c.newer)
			}
		}
	}
	check("first", []struct {
		inc, seq        uint64
		replayed, newer bool
	}{
		{5000, 7000, true, false}, {5000, 6999, true, false},
		{4999, 9999, false, false}, // never our incarnation: a key holder's claim
		{5000, 7001, false, true}, {5001, 0, false, true},
	})
	// A refutation of a claim under 6000: max(5000, 6000) + 1.
	q.restart(6000)
	q.next(8000)
	if q.inc != 6001 || q.last != 8000 {
		t.Fatalf("after restart(6000): inc %d last %d", q.inc, q.last)
	}
	check("restarted", []struct {
		inc, seq        uint64
		replayed, newer bool
	}{
		{6001, 8000, true, false}, {5000, 7000, true, false}, // the incarnation before
		{5000, 7001, false, false}, {6000, 7500, false, false}, {6001, 8001, false, true},
	})
	// A claim not refuted: the next message outranks it all the same;
	// one below us changes nothing.
	q.outrank(6500)
	if q.inc != 6501 {
		t.Errorf("outrank(6500): inc %d", q.inc)
	}
	q.outrank(100)
	if q.inc != 6501 {
		t.Errorf("outrank(100): inc %d", q.inc)
	}
}

// TestSequencerFarAhead: a node started with its clock far ahead, then
// set right, takes the clock's time as its incarnation, which receivers
// accept (docs/protocol.md §9.1).
func TestSequencerFarAhead(t *testing.T) {
	q := newSequencer(10_000_000, 30*s)
	q.next(10_000_000)
	if inc, seq := q.next(10_000_000 - 3_600_000); inc != 6_400_000 || seq != 6_400_000 {
		t.Errorf("clock set back 1 h: inc %d seq %d", inc, seq)
	}
	if q.prevInc != 10_000_000 || q.prevLast != 10_000_000 {
		t.Errorf("prev %d %d", q.prevInc, q.prevLast)
	}
}

// TestStale: a signed message is accepted within ±window of our clock,
// bounds included; a clock at or before 1970 accepts anything
// (docs/protocol.md §9.2).
func TestStale(t *testing.T) {
	for _, c := range []struct {
		seq  uint64
		wall int64
		off  float64
		bad  bool
	}{
		{seq: 100_000, wall: 100_000},
		{seq: 70_000, wall: 100_000},
		{seq: 69_999, wall: 100_000, off: -30.001, bad: true},
		{seq: 130_000, wall: 100_000},
		{seq: 130_001, wall: 100_000, off: 30.001, bad: true},
		{seq: 0, wall: 10_000},
		{seq: 40_001, wall: 10_000, off: 30.001, bad: true},
		{seq: 1 << 62, wall: 0},
		{seq: 1 << 62, wall: -1},
	} {
		off, bad := stale(c.seq, c.wall, 30*time.Second)
		if bad != c.bad || off != c.off {
			t.Errorf("stale(%d, %d) = %v %v, want %v %v", c.seq, c.wall, off, bad, c.off, c.bad)
		}
	}
}

// TestEarly: an incarnation is a start time, accepted up to the window
// after our clock (docs/protocol.md §9.2).
func TestEarly(t *testing.T) {
	for _, c := range []struct {
		inc  uint64
		wall int64
		off  float64
		bad  bool
	}{
		{inc: 100_000, wall: 100_000},
		{inc: 1, wall: 100_000},
		{inc: 130_000, wall: 100_000},
		{inc: 130_001, wall: 100_000, off: 30.001, bad: true},
		{inc: 1<<64 - 1, wall: 100_000, off: float64(1<<64-1-100_000) / 1000, bad: true},
		{inc: 1 << 62, wall: 0},
	} {
		off, bad := early(c.inc, c.wall, 30*time.Second)
		if bad != c.bad || off != c.off {
			t.Errorf("early(%d, %d) = %v %v, want %v %v", c.inc, c.wall, off, bad, c.off, c.bad)
		}
	}
}
