package cluster

import (
	"net/netip"
	"slices"
	"time"
)

// The state exchange and seeds (docs/protocol.md §4.6): what a node
// asks for, whom it answers, the seeds it introduces itself to, and the
// addresses off its subnet it has learned. Like table, spanner is pure:
// the caller passes the time and does the sending.
const (
	// seedBackoff caps the wait between two tries of a seed that is not
	// a live peer: Interval, doubling to seedBackoff × Interval.
	seedBackoff = 8
	// joinRetries is how many times a newcomer whose join SYNC drew no
	// answer asks one peer it lists instead: ReplyJitter after the join,
	// then every Interval.
	joinRetries = 3
	// maxAsked bounds the unicast SYNCs remembered as awaiting answers.
	maxAsked = 64
	// syncEvery: a node with seeds asks one live peer off its subnet for
	// its state every syncEvery intervals (after 1, 2 and 4 intervals
	// first), so that what one node learns of another subnet reaches
	// all in time, whatever was lost or came in an order that left a
	// gap (memberlist's push/pull does this every 30 s).
	syncEvery = 6
)

// spanner is the part of the node that decides the state exchange and
// the seeds (docs/protocol.md §4.6).
type spanner struct {
	interval   time.Duration // Interval
	wait       time.Duration // ReplyJitter: how long a join waits for an answer
	window     time.Duration // AnswerEvery: how long after a SYNC its answer counts
	maxAnswers int           // MaxSyncAnswers: answers at once, then per Interval
	maxRemote  int           // MaxRemotePeers: bounds candidates and introductions
	spans      bool          // the node has seeds (some perhaps on its subnet)

	seeds []seed // the seeds off our subnet
	// syncAt is when we next ask a peer off our subnet for its state,
	// syncGap after the last time: one interval after the join, then
	// doubling up to syncEvery intervals; zero: not due.
	syncAt  time.Time
	syncGap time.Duration

	// Our requests: a STATE answer counts only if we asked its sender,
	// less than window ago (§4.6).
	askedAll time.Time                // our join's broadcast SYNC; zero: none
	asked    map[netip.Addr]time.Time // unicast SYNCs, by address
	answered bool                     // an answer came since the join
	retryAt  time.Time                // when the join asks one peer; zero: not due
	retries  int

	// Answers to others' SYNCs, within budgets: one per requester per
	// Interval, maxAnswers node-wide at once and per Interval.
	answerAll bucket
	answerPer map[string]*bucket
	answers   []answerTo
	// Our ANNOUNCE, by unicast, to addresses off our subnet that may not
	// know us: peers and candidates learned from a STATE. maxRemote at
	// once and per Interval.
	intros     []netip.Addr
	introSpent bucket
	// Introductions (STATE part 0) to send.
	pushes []push
	dueAt  time.Time // when answers, intros and pushes are due; zero: none

	// cand are addresses off our subnet learned from a STATE but not yet
	// heard from: plain messages from them pass §6 step 2a until then.
	cand map[netip.Addr]time.Time
}

// seed is one seed off our subnet and when to try it next.
type seed struct {
	addr netip.Addr
	next time.Time     // zero: not due (the node has left)
	wait time.Duration // the wait after the next try
	// got: an answer of it came since it was last found not live. A
	// live seed that reached us first (it lists us) still owes us its
	// state if no one else has answered us since our join.
	got bool
}

// answerTo is a SYNC to answer with our state.
type answerTo struct {
	id   string
	addr netip.Addr
}

// push is an introduction to send: entries to one address, or to the
// broadcast address (invalid to).
type push struct {
	to      netip.Addr
	entries []Entry
}

// begin starts the exchange at our join at now: every seed is due at
// once, or, if all is set (the join's broadcast SYNC is sent now), once
// its answer has had time to come.
func (sp *spanner) begin(now time.Time, all bool) {
	first := now
	if all {
		// The answer to the broadcast SYNC lists the seeds that are
		// peers already: no need to ask them too.
		first = now.Add(sp.wait)
	}
	for i := range sp.seeds {
		sp.seeds[i].next, sp.seeds[i].wait, sp.seeds[i].got = first, sp.interval, false
	}
	if len(sp.seeds) > 0 || sp.spans {
		sp.syncGap = sp.interval
		sp.syncAt = now.Add(sp.syncGap)
	}
	sp.answered, sp.retries, sp.retryAt, sp.askedAll = false, 0, time.Time{}, time.Time{}
	if all {
		sp.askedAll, sp.retryAt = now, now.Add(sp.wait)
	}
}

// stop forgets what was due: the node left or stopped.
func (sp *spanner) stop() {
	for i := range sp.seeds {
		sp.seeds[i].next = time.Time{}
	}
	sp.retryAt, sp.syncAt = time.Time{}, time.Time{}
	sp.answers, sp.intros, sp.pushes, sp.dueAt = sp.answers[:0], sp.intros[:0], sp.pushes[:0], time.Time{}
}

// dueSeeds returns the seeds to try at now, ANNOUNCE and SYNC each:
// those due that live does not report as live peers. A live seed is
// checked again an Interval later and its wait starts over.
func (sp *spanner) dueSeeds(now time.Time, live func(netip.Addr) bool) []netip.Addr {
	var due []netip.Addr
	for i := range sp.seeds {
		s := &sp.seeds[i]
		if !reached(now, s.next) {
			continue
		}
		if live(s.addr) {
			if s.got || sp.answered {
				s.next, s.wait = now.Add(sp.interval), sp.interval
				continue
			}
		} else {
			s.got = false
		}
		due = append(due, s.addr)
		s.next = now.Add(s.wait)
		s.wait = min(2*s.wait, seedBackoff*sp.interval)
	}
	return due
}

// isSeed reports whether a is one of our seeds.
func (sp *spanner) isSeed(a netip.Addr) bool {
	return slices.ContainsFunc(sp.seeds, func(s seed) bool { return s.addr == a })
}

// gotFrom records an answer from a, if a is a seed.
func (sp *spanner) gotFrom(a netip.Addr) {
	for i := range sp.seeds {
		if sp.seeds[i].addr == a {
			sp.seeds[i].got = true
		}
	}
}

// syncDue reports whether the periodic SYNC to a peer off our subnet is
// due at now, and schedules the next one.
func (sp *spanner) syncDue(now time.Time) bool {
	if !reached(now, sp.syncAt) {
		return false
	}
	sp.syncGap = min(2*sp.syncGap, syncEvery*sp.interval)
	sp.syncAt = now.Add(sp.syncGap)
	return true
}

// asking records a unicast SYNC to a at now.
func (sp *spanner) asking(a netip.Addr, now time.Time) {
	if sp.asked == nil {
		sp.asked = make(map[netip.Addr]time.Time)
	}
	if len(sp.asked) >= maxAsked {
		for x, at := range sp.asked {
			if now.Sub(at) >= sp.interval {
				delete(sp.asked, x)
			}
		}
	}
	if len(sp.asked) < maxAsked {
		sp.asked[a] = now
	}
}

// askedFrom reports whether a STATE answer from a (onSeg: a host of our
// subnet) received at now is one we asked for: a unicast SYNC to a, or
// our join's broadcast one, less than window ago.
func (sp *spanner) askedFrom(a netip.Addr, onSeg bool, now time.Time) bool {
	if at, ok := sp.asked[a]; ok && now.Sub(at) < sp.window {
		return true
	}
	return onSeg && !sp.askedAll.IsZero() && now.Sub(sp.askedAll) < sp.window
}

// gotAnswer records an answer: the join asks no one else.
func (sp *spanner) gotAnswer() { sp.answered, sp.retryAt = true, time.Time{} }

// retry reports whether the join, unanswered at now, should ask one
// peer by unicast, and schedules the next try.
func (sp *spanner) retry(now time.Time) bool {
	if !reached(now, sp.retryAt) || sp.answered {
		return false
	}
	sp.retries++
	sp.retryAt = time.Time{}
	if sp.retries < joinRetries {
		sp.retryAt = now.Add(sp.interval)
	}
	return true
}

// answer takes a valid SYNC from req at addr, received at now, that we
// answer unless the budgets say no; it reports whether they did.
func (sp *spanner) answer(req string, addr netip.Addr, now time.Time) (held bool) {
	if len(sp.answerPer) > 2*sp.maxRemote+1024 {
		clear(sp.answerPer) // bounded: forget the budgets
	}
	pb := sp.answerPer[req]
	if pb == nil {
		if sp.answerPer == nil {
			sp.answerPer = make(map[string]*bucket)
		}
		pb = new(bucket)
		sp.answerPer[req] = pb
	}
	if slices.ContainsFunc(sp.answers, func(a answerTo) bool { return a.id == req }) ||
		!pb.take(now, 1, sp.interval) ||
		!sp.answerAll.take(now, sp.maxAnswers, sp.interval/time.Duration(sp.maxAnswers)) {
		return true
	}
	sp.answers = append(sp.answers, answerTo{req, addr})
	sp.due(now)
	return false
}

// introduce queues our ANNOUNCE to a, off our subnet, within the
// introductions' budget; it reports whether it did.
func (sp *spanner) introduce(a netip.Addr, now time.Time) bool {
	if slices.Contains(sp.intros, a) {
		return true
	}
	if !sp.introSpent.take(now, sp.maxRemote, sp.interval/time.Duration(sp.maxRemote)) {
		return false
	}
	sp.intros = append(sp.intros, a)
	sp.due(now)
	return true
}

// pushTo queues an introduction of entries to a (invalid: broadcast).
func (sp *spanner) pushTo(a netip.Addr, entries []Entry, now time.Time) {
	sp.pushes = append(sp.pushes, push{a, entries})
	sp.due(now)
}

func (sp *spanner) due(now time.Time) {
	if sp.dueAt.IsZero() {
		sp.dueAt = now
	}
}

// take returns the answers, introductions and pushes due at now, and
// forgets them.
func (sp *spanner) take(now time.Time) (answers []answerTo, intros []netip.Addr, pushes []push) {
	if !reached(now, sp.dueAt) {
		return nil, nil, nil
	}
	answers, intros, pushes = slices.Clone(sp.answers), slices.Clone(sp.intros), slices.Clone(sp.pushes)
	clear(sp.pushes)
	sp.answers, sp.intros, sp.pushes, sp.dueAt = sp.answers[:0], sp.intros[:0], sp.pushes[:0], time.Time{}
	return answers, intros, pushes
}

// candidate records a, off our subnet, learned from a STATE at now, for
// until; it reports whether a is new. At most maxRemote are kept.
func (sp *spanner) candidate(a netip.Addr, now, until time.Time) bool {
	if sp.cand == nil {
		sp.cand = make(map[netip.Addr]time.Time)
	}
	if at, ok := sp.cand[a]; ok && now.Before(at) {
		sp.cand[a] = later(at, until)
		return false
	}
	if len(sp.cand) >= sp.maxRemote {
		for x, at := range sp.cand {
			if !now.Before(at) {
				delete(sp.cand, x)
			}
		}
		if len(sp.cand) >= sp.maxRemote {
			return false
		}
	}
	sp.cand[a] = until
	return true
}

// isCandidate reports whether a is a candidate at now.
func (sp *spanner) isCandidate(a netip.Addr, now time.Time) bool {
	at, ok := sp.cand[a]
	return ok && now.Before(at)
}

// next is when the spanner has work next, or the zero time.
func (sp *spanner) next() time.Time {
	w := earliest(earliest(sp.dueAt, sp.retryAt), sp.syncAt)
	for _, s := range sp.seeds {
		w = earliest(w, s.next)
	}
	return w
}
