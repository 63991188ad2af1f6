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
	// prevInc and prevLast are the incarnation before inc and the last
	// seq signed under it (prevLast 0: none): a replay of its messages is
	// still ours, not a claim (docs/protocol.md §9.2).
	prevInc, prevLast uint64
}

// newSequencer starts the first incarnation at wall, the time of day
// the node was made.
func newSequencer(wall int64, window time.Duration) sequencer {
	return sequencer{window: window, inc: max(uint64(wall), 1)}
}

// next returns the incarnation and seq of a message signed at wall. A
// clock set back by more than half the window starts a new incarnation,
// so that seq follows the clock again; one that leaves our incarnation
// more than twice the window ahead of it (we started with the clock
// far ahead) starts it at wall instead, since no receiver within the
// window of our clock can have accepted the old one (§9.2).
func (q *sequencer) next(wall int64) (inc, seq uint64) {
	w := uint64(max(wall, 0))
	win := uint64(q.window.Milliseconds())
	switch {
	case w > 0 && q.inc > w+2*win:
		q.become(w, true)
	case w+win/2 < q.last:
		q.become(q.inc+1, true)
	}
	q.last = max(w, q.last+1)
	return q.inc, q.last
}

// become makes inc our incarnation, remembering the one before if we
// signed under it; fresh restarts seq from the clock.
func (q *sequencer) become(inc uint64, fresh bool) {
	if q.last > 0 {
		q.prevInc, q.prevLast = q.inc, q.last
	}
	q.inc = inc
	if fresh {
		q.last = 0
	}
}

// restart starts the incarnation of a refutation: max(ours, claimed) + 1,
// so that it outranks the claim it answers (docs/protocol.md §5).
func (q *sequencer) restart(claimed uint64) { q.become(max(q.inc, claimed)+1, false) }

// outrank takes a claim of our node_id under incarnation claimed that
// is not refuted at once (the refutation budget is spent): our next
// message outranks it all the same.
func (q *sequencer) outrank(claimed uint64) {
	if claimed >= q.inc {
		q.become(claimed+1, false)
	}
}

// replayed reports whether one of our own messages numbered (inc, seq)
// is one we signed: of our current incarnation or the one before, and
// not newer than the last we signed under it. Then it is ours,
// replayed, not a claim to refute; anything else of our id is a claim
// (docs/protocol.md §9.2).
func (q *sequencer) replayed(inc, seq uint64) bool {
	return q.last > 0 && inc == q.inc && seq <= q.last ||
		q.prevLast > 0 && inc == q.prevInc && seq <= q.prevLast
}

// sentNewer reports whether (inc, seq) is newer than anything we
// signed: a message of our id we cannot have sent, even from our own
// address (docs/protocol.md §6 step 5).
func (q *sequencer) sentNewer(inc, seq uint64) bool {
	return (seenMsg{inc: q.inc, seq: q.last}).newer(inc, seq)
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

// early reports whether an incarnation, a start time, lies more than
// the window after wall, our clock in ms: nobody started then
// (docs/protocol.md §9.2). off is how many seconds ahead.
func early(inc uint64, wall int64, window time.Duration) (off float64, bad bool) {
	if wall <= 0 || inc <= uint64(wall) || inc-uint64(wall) <= uint64(window.Milliseconds()) {
		return 0, false
	}
	return float64(inc-uint64(wall)) / 1000, true
}
