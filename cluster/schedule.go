package cluster

import "time"

// announceEvery makes every third periodic message an ANNOUNCE
// (docs/protocol.md §4.2).
const announceEvery = 3

// schedule is the node's periodic messages (docs/protocol.md §4.2):
// message k is due at base + k*interval, every announceEvery-th one an
// ANNOUNCE, the rest HEARTBEATs. It is pure, like table: the caller
// passes the time.
type schedule struct {
	interval time.Duration
	base     time.Time // start of the schedule: the join
	seq      int64     // number of the next message; 0 was the join ANNOUNCE
	next     time.Time // when it is due; zero while not sending
}

// begin starts the schedule at now. Message 0, the join ANNOUNCE, is
// the caller's to send at once.
func (s *schedule) begin(now time.Time) {
	s.base, s.seq = now, 1
	s.next = now.Add(s.interval)
}

// stop makes nothing due until begin.
func (s *schedule) stop() { s.next = time.Time{} }

// due returns the message due at now, Announce or Heartbeat, or 0 if
// none, and moves the schedule past now. The schedule is exact: ticks
// missed while late are not sent in a burst; one message goes out, an
// ANNOUNCE if any missed tick was one.
func (s *schedule) due(now time.Time) Kind {
	if !reached(now, s.next) {
		return 0
	}
	last := int64(now.Sub(s.base) / s.interval)
	announce := false
	for k := s.seq; k <= last && k < s.seq+announceEvery; k++ {
		announce = announce || k%announceEvery == 0
	}
	s.seq = last + 1
	s.next = s.base.Add(time.Duration(s.seq) * s.interval)
	if announce {
		return Announce
	}
	return Heartbeat
}

// reached reports whether a pending time t (zero: none) has come.
func reached(now, t time.Time) bool { return !t.IsZero() && !now.Before(t) }

// earliest is the earlier of two pending times, zero being none.
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || !b.IsZero() && b.Before(a) {
		return b
	}
	return a
}

// later is the later of two times.
func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
