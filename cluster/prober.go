package cluster

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Probes of quiet and suspect peers, direct and indirect, and the
// answers to them (docs/protocol.md §4.5).
const (
	// probesPerInterval: a quiet or suspect peer is probed every
	// Interval/5 until it is heard or dead.
	probesPerInterval = 5
	// quietMargin: a peer is quiet, and probed, once its age reaches two
	// intervals plus Interval/quietMargin (10.5 s; 2.1 s fast). Its
	// messages are due every interval exactly (§4.2), so one merely late
	// by up to half a second (100 ms fast) draws no probe.
	quietMargin = 10
	// probeAfter: a peer is probed only once it has been heard this
	// many times. One ANNOUNCE with a spoofed source (keyless mode)
	// draws no probe.
	probeAfter = 2
	// askHelpers is how many peers a node asks to probe a peer for it
	// when its direct probe has gone unanswered for a probe period.
	askHelpers = 3
	// probeBurst is how many probes and ASKs a node sends at once, all
	// peers together, beside one more per 4 listed peers; then as many
	// per Interval. Made-up peers that go silent (keyless mode) cannot
	// make a node send more.
	probeBurst = 10
	// answerBurst is how many probes a node answers at once, all peers
	// together, beside one more per 4 listed peers; then as many per
	// Interval. A probe flood costs at most this many HEARTBEATs, each
	// to a listed peer. The same budget, apart, bounds the ASKs a node
	// acts on.
	answerBurst = 16
	// peerAnswerBurst is how many probes (or ASKs) of one peer a node
	// answers at once; then one per Interval/probesPerInterval, the rate
	// a peer probes at.
	peerAnswerBurst = 2
	// perPeers: the node-wide budgets grow by one per perPeers listed
	// peers, as the spells of quiet peers do.
	perPeers = 4
)

// prober decides the probes of quiet and suspect peers, direct and
// through helpers (ASK), and what to do with the probes and ASKs of
// others, within token buckets (docs/protocol.md §4.5). It is pure,
// like table: the caller passes the time and the peers.
type prober struct {
	interval time.Duration // Interval
	maxPeers int           // MaxPeers: bounds the maps
	rng      *rand.Rand    // chooses helpers

	probing timers            // quiet or suspect peer -> when its next probe is due
	spells  map[string]*spell // the same peers: since when, and whom we asked
	budget  bucket            // probes and ASKs sent, node-wide

	answerAll  bucket             // answers to probes, node-wide
	answerPeer map[string]*bucket // answers to probes, per peer
	answerTo   []netip.Addr       // pending answers, one HEARTBEAT each
	answerAt   time.Time          // when they are due; zero if none

	helping helping // the ASKs of others (prober_ask.go)
}

// spell is one peer's probing, from its first probe until it is heard
// or dead.
type spell struct {
	since   time.Time
	helpers []asked // asked to probe it in this spell
}

// asked is a helper asked about a peer, and when last.
type asked struct {
	id string
	at time.Time
}

// period is the time between two probes of a peer.
func (pr *prober) period() time.Duration { return pr.interval / probesPerInterval }

// quietAfter is the age at which a peer is probed.
func (pr *prober) quietAfter() time.Duration { return 2*pr.interval + pr.interval/quietMargin }

// quiet takes p, whose age reached quietAfter (or the suspect age) at
// now: it is probed at once, then every period until heard or dead, if
// it was heard at least probeAfter times and is not probed already.
func (pr *prober) quiet(p Peer, now time.Time) {
	if p.msgs < probeAfter || pr.spells[p.ID] != nil {
		return
	}
	if pr.spells == nil {
		pr.spells = make(map[string]*spell)
	}
	pr.spells[p.ID] = &spell{since: now}
	pr.probing.set(p.ID, now)
}

// probed reports whether p is being probed.
func (pr *prober) probed(id string) bool { return pr.spells[id] != nil }

// forget stops the probes of the peer id: it is heard, or gone.
func (pr *prober) forget(id string) {
	if pr.spells[id] != nil {
		delete(pr.spells, id)
		pr.probing.remove(id)
	}
}

// ask is an ASK to send: helper, please probe target.
type ask struct {
	helper Peer
	target string
}

// probes returns the probes and ASKs due at now, each to a recorded
// address: the probed peers whose turn has come, those closest to dead
// first, within the node-wide budget (peers is how many are listed);
// held counts those left out, which wait for the next turn. A peer
// probed for a period unanswered is also asked about to askHelpers
// peers, drawn by pick. get looks a peer up; one no longer listed, dead
// or heard since its spell began is probed no more.
func (pr *prober) probes(now time.Time, peers int, get func(id string) (Peer, bool),
	pick func(k int, except string) []Peer) (due []Peer, asks []ask, held uint64) {
	var turn []Peer
	for {
		id, at, ok := pr.probing.min()
		if !ok || !reached(now, at) {
			break
		}
		p, ok := get(id)
		if sp := pr.spells[id]; !ok || p.Status == Dead || !p.LastHeard.Before(sp.since) {
			pr.forget(id)
			continue
		}
		turn = append(turn, p)
		pr.probing.set(id, now.Add(pr.period()))
	}
	// When the budget is short, the peers closest to dead go first.
	slices.SortFunc(turn, func(a, b Peer) int {
		if c := a.LastHeard.Compare(b.LastHeard); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	burst := probeBurst + peers/perPeers
	take := func() bool {
		if pr.budget.take(now, burst, pr.interval/time.Duration(burst)) {
			return true
		}
		held++
		return false
	}
	for _, p := range turn {
		if take() {
			due = append(due, p)
		}
		sp := pr.spells[p.ID]
		if now.Sub(sp.since) < pr.period() {
			continue // the first probe has had no time yet
		}
		for _, h := range pick(askHelpers, p.ID) {
			if !take() {
				break
			}
			asks = append(asks, ask{h, p.ID})
			i := slices.IndexFunc(sp.helpers, func(a asked) bool { return a.id == h.ID })
			if i < 0 {
				sp.helpers = append(sp.helpers, asked{id: h.ID})
				i = len(sp.helpers) - 1
			}
			sp.helpers[i].at = now
		}
	}
	return due, asks, held
}

// vouches reports whether a RELAY of helper about target is one we
// asked for: target is being probed and helper was asked in this spell.
// If so, at is when we last asked it: the HEARTBEAT it relays was sent
// about then or later, so the target counts as heard at at, not when
// the RELAY arrives, and a relay's delay never delays a death
// (docs/protocol.md §4.5).
func (pr *prober) vouches(target, helper string) (at time.Time, ok bool) {
	sp := pr.spells[target]
	if sp == nil {
		return time.Time{}, false
	}
	i := slices.IndexFunc(sp.helpers, func(a asked) bool { return a.id == helper })
	if i < 0 {
		return time.Time{}, false
	}
	return sp.helpers[i].at, true
}

// answer takes a valid PROBE from p, which the table has just accepted
// at now from p's recorded address, and queues our answer to that
// address within p's budget and the node's (peers listed). It reports
// whether the budgets held the answer back; a second probe from an
// address already answered is neither answered nor held.
func (pr *prober) answer(p Peer, peers int, now time.Time) (held bool) {
	if slices.Contains(pr.answerTo, p.Addr) {
		return false
	}
	if !pr.answerBudget(&pr.answerAll, &pr.answerPeer, p.ID, peers, now) {
		return true
	}
	pr.answerTo = append(pr.answerTo, p.Addr)
	if pr.answerAt.IsZero() {
		pr.answerAt = now
	}
	return false
}

// answerBudget takes a token of id's bucket in per and one of all, the
// budgets of answers (to probes or ASKs): peerAnswerBurst then one per
// period for one peer, answerBurst + peers/perPeers at once and per
// Interval for all.
func (pr *prober) answerBudget(all *bucket, per *map[string]*bucket, id string, peers int, now time.Time) bool {
	if len(*per) > 2*pr.maxPeers {
		clear(*per) // bounded: forget the budgets
	}
	pb := (*per)[id]
	if pb == nil {
		if *per == nil {
			*per = make(map[string]*bucket)
		}
		pb = new(bucket)
		(*per)[id] = pb
	}
	burst := answerBurst + peers/perPeers
	return pb.take(now, peerAnswerBurst, pr.period()) &&
		all.take(now, burst, pr.interval/time.Duration(burst))
}

// answers returns the addresses to answer at now, one HEARTBEAT each,
// and forgets them.
func (pr *prober) answers(now time.Time) []netip.Addr {
	if !reached(now, pr.answerAt) {
		return nil
	}
	to := slices.Clone(pr.answerTo)
	pr.answerTo, pr.answerAt = pr.answerTo[:0], time.Time{}
	return to
}

// next is when probes or answers have work next, or the zero time.
func (pr *prober) next() time.Time {
	return earliest(earliest(pr.answerAt, pr.probing.next()), pr.helping.next())
}

// reset forgets the probes to send, the answers to give and the ASKs
// taken; the budgets stay.
func (pr *prober) reset() {
	pr.probing.reset()
	clear(pr.spells)
	pr.answerTo, pr.answerAt = pr.answerTo[:0], time.Time{}
	pr.helping.reset()
}
