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
			q.restart()
		}
		inc, seq := q.next(c.wall)
		if inc != c.inc || seq != c.seq {
			t.Errorf("step %d: wall %d: inc %d seq %d, want %d %d", i, c.wall, inc, seq, c.inc, c.seq)
		}
	}
}

// TestSequencerReplayed: a message of our own id is ours, replayed, when
// it is not newer than the last we signed (docs/protocol.md §9.2).
func TestSequencerReplayed(t *testing.T) {
	q := newSequencer(5000, 30*s)
	if q.replayed(5000, 1) || q.replayed(0, 0) {
		t.Error("replayed before anything was signed")
	}
	q.next(7000)
	for _, c := range []struct {
		inc, seq uint64
		want     bool
	}{
		{5000, 7000, true}, {5000, 6999, true}, {4999, 9999, true},
		{5000, 7001, false}, {5001, 0, false},
	} {
		if got := q.replayed(c.inc, c.seq); got != c.want {
			t.Errorf("replayed(%d, %d) = %v, want %v", c.inc, c.seq, got, c.want)
		}
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
