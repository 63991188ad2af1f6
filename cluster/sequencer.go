package cluster

import "time"

// sequencer numbers our signed messages (docs/protocol.md §9.1): each
// carries our incarnation and a seq, the wall clock in ms, raised past
// the last seq if the clock has not moved on. (keyring's signer makes
// the tag; this decides the numbers it signs.) It is pure, like table:
// the caller passes the wall clock, in ms since the Unix epoch.
type sequencer struct {
	window time.Duration // Window: a clock set back by more than half starts a new incarnation
	inc    uint64        // our incarnation
	last   uint64        // seq of the last signed message; 0 before the first
}

// newSequencer starts the first incarnation at wall, the time of day
// the node was made.
func newSequencer(wall int64, window time.Duration) sequencer {
	return sequencer{window: window, inc: max(uint64(wall), 1)}
}

// next returns the incarnation and seq of a message signed at wall. A
// clock set back by more than half the window starts a new incarnation,
// so that seq follows the clock again.
func (q *sequencer) next(wall int64) (inc, seq uint64) {
	w := uint64(max(wall, 0))
	if half := uint64(q.window.Milliseconds() / 2); w+half < q.last {
		q.inc++
		q.last = 0
	}
	q.last = max(w, q.last+1)
	return q.inc, q.last
}

// restart starts a new incarnation: a refutation outranks whatever
// claimed our node_id (docs/protocol.md §5).
func (q *sequencer) restart() { q.inc++ }

// replayed reports whether one of our own messages numbered (inc, seq)
// is not newer than the last we signed: then it is ours, replayed, not
// a claim to refute (docs/protocol.md §9.2).
func (q *sequencer) replayed(inc, seq uint64) bool {
	return q.last > 0 && !(seenMsg{q.inc, q.last, time.Time{}}).newer(inc, seq)
}

// stale reports whether a signed message numbered seq is outside the
// window around wall, our clock in ms (docs/protocol.md §9.2), and if
// so by how many seconds (negative: sent before wall).
func stale(seq uint64, wall int64, window time.Duration) (off float64, bad bool) {
	w := uint64(window.Milliseconds())
	if wall > 0 && (uint64(wall) > w && seq < uint64(wall)-w || seq > uint64(wall) && seq-uint64(wall) > w) {
		return float64(int64(seq-uint64(wall))) / 1000, true // two's complement: negative when old
	}
	return 0, false
}
