package cluster

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"
)

// maxUnicastAnswers is how many nodes one reply answers one by one; more
// are answered by one broadcast (docs/protocol.md §4.1).
const maxUnicastAnswers = 4

// replier decides the ANNOUNCEs that answer others: fast-join replies to
// nodes that may not know us (docs/protocol.md §4.1) and refutations of
// a claim of our node_id from elsewhere (§5). Refutation is here because
// the two share one ANNOUNCE: a refutation due with a reply answers it
// too, and a periodic ANNOUNCE answers both. It is pure, like table: the
// caller passes the time; rng draws the reply jitter.
type replier struct {
	every    time.Duration // AnswerEvery: least time from an ANNOUNCE to a reply, and between refutations
	interval time.Duration // least time between broadcast replies
	jitter   time.Duration // ReplyJitter: bound of a reply's random delay
	rng      *rand.Rand

	at time.Time // when the pending reply is due; zero if none
	// to is whom the pending reply answers, one datagram each; all,
	// that they are too many, so one ANNOUNCE goes to the broadcast
	// address instead.
	to  []netip.Addr
	all bool

	lastAnnounce  time.Time // when our last ANNOUNCE was sent
	lastBroadcast time.Time // when the last broadcast reply was sent
	prompt        time.Time // last reply prompted by an unknown HEARTBEAT

	refute     time.Time // a pending refutation; zero if none
	lastRefute time.Time

	// far are the nodes off our subnet to answer (§4.6): a broadcast
	// does not reach them, so each gets its own ANNOUNCE however many
	// there are (at most maxFar), on a timer of its own that a broadcast
	// ANNOUNCE does not cancel, at most one answer per every.
	far     []netip.Addr
	farAt   time.Time
	lastFar time.Time
	maxFar  int
}

// replyFar schedules a fast-join reply to the node at to, off our
// subnet, by unicast: after every since the last reply to such nodes,
// plus the jitter (docs/protocol.md §4.1, §4.6).
func (r *replier) replyFar(now time.Time, to netip.Addr) {
	if slices.Contains(r.far, to) || len(r.far) >= r.maxFar {
		return
	}
	r.far = append(r.far, to)
	if r.farAt.IsZero() {
		at := now
		if !r.lastFar.IsZero() {
			at = later(at, r.lastFar.Add(r.every))
		}
		r.farAt = at.Add(time.Duration(r.rng.Int64N(int64(r.jitter) + 1)))
	}
}

// dueFar returns the nodes off our subnet to answer at now, and
// forgets them.
func (r *replier) dueFar(now time.Time) []netip.Addr {
	if !reached(now, r.farAt) {
		return nil
	}
	to := slices.Clone(r.far)
	r.far, r.farAt, r.lastFar = r.far[:0], time.Time{}, now
	return to
}

// drop forgets everything pending, far answers included: the node
// leaves or stops.
func (r *replier) drop() {
	r.cancel()
	r.far, r.farAt = r.far[:0], time.Time{}
}

// reply schedules a fast-join reply to the node at addr to, no sooner
// than every after our last ANNOUNCE, plus a random jitter, sent to it
// alone. A reply that would answer more than maxUnicastAnswers nodes
// goes to the broadcast address instead, at most once per interval.
func (r *replier) reply(now time.Time, to netip.Addr) {
	if r.at.IsZero() {
		r.to, r.all = r.to[:0], false
		at := now
		if !r.lastAnnounce.IsZero() {
			at = later(at, r.lastAnnounce.Add(r.every))
		}
		r.at = at.Add(time.Duration(r.rng.Int64N(int64(r.jitter) + 1)))
	}
	switch {
	case r.all || slices.Contains(r.to, to):
	case len(r.to) < maxUnicastAnswers:
		r.to = append(r.to, to)
	default:
		r.all = true
		if !r.lastBroadcast.IsZero() {
			r.at = later(r.at, r.lastBroadcast.Add(r.interval))
		}
	}
}

// prompted reports whether a HEARTBEAT from an unknown peer, heard at
// now, should draw a reply: at most one per interval
// (docs/protocol.md §4.1).
func (r *replier) prompted(now time.Time) bool {
	if !r.prompt.IsZero() && now.Sub(r.prompt) < r.interval {
		return false
	}
	r.prompt = now
	return true
}

// claim takes a claim of our node_id heard at now. It reports whether
// a refutation is now pending, at once: one at most per every, and none
// while one is pending (docs/protocol.md §5).
func (r *replier) claim(now time.Time) bool {
	if !r.refute.IsZero() || !r.lastRefute.IsZero() && now.Sub(r.lastRefute) < r.every {
		return false
	}
	r.refute, r.lastRefute = now, now
	return true
}

// announced records that we sent an ANNOUNCE at now.
func (r *replier) announced(now time.Time) { r.lastAnnounce = now }

// cancel forgets the pending reply and refutation: an ANNOUNCE to all,
// the node leaving or stopping.
func (r *replier) cancel() { r.at, r.refute = time.Time{}, time.Time{} }

// cancelReply forgets the pending reply only.
func (r *replier) cancelReply() { r.at = time.Time{} }

// next is when due has work next, or the zero time.
func (r *replier) next() time.Time { return earliest(earliest(r.at, r.refute), r.farAt) }

// answer is an ANNOUNCE the replier has due.
type answer struct {
	to      []netip.Addr // the nodes to send it to, one by one; nil: the broadcast address
	refutes bool         // it refutes a claim; else it is a fast-join reply
}

// due returns the ANNOUNCE due at now, if any, and forgets it. A
// refutation goes to all and answers a reply due with it.
func (r *replier) due(now time.Time) (answer, bool) {
	var a answer
	switch {
	case reached(now, r.refute):
		a.refutes = true
	case reached(now, r.at):
		if r.all {
			r.lastBroadcast = now
		} else {
			a.to = slices.Clone(r.to)
		}
	default:
		return answer{}, false
	}
	r.cancel()
	return a, true
}
