package cluster

import (
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Probes of suspect peers and their answers (docs/protocol.md §4.5).
const (
	// probesPerInterval: a suspect peer is probed every Interval/5, so
	// 15 times before it is dead; each round trip survives 10 % loss
	// per datagram with p = 0.81, so all 15 fail with p = 0.19^15 ≈ 1.5e-11.
	probesPerInterval = 5
	// probeAfter: a peer is probed only once it has been heard this
	// many times. One ANNOUNCE with a spoofed source (keyless mode)
	// draws no probe.
	probeAfter = 2
	// probeBurst is how many probes a node sends at once, all peers
	// together; then probeBurst per Interval. Made-up peers that go
	// silent (keyless mode) cannot make a node send more.
	probeBurst = 10
	// answerBurst is how many probes a node answers at once, all peers
	// together; then answerBurst per Interval. A probe flood costs at
	// most this many HEARTBEATs, each to a listed peer.
	answerBurst = 16
	// peerAnswerBurst is how many probes of one peer a node answers at
	// once; then one per Interval/probesPerInterval, the rate a peer
	// probes at.
	peerAnswerBurst = 2
)

// prober decides the probes of suspect peers and the answers to their
// probes, within three token buckets: probes node-wide, answers
// node-wide and answers per peer (docs/protocol.md §4.5). It is pure,
// like table: the caller passes the time.
type prober struct {
	interval time.Duration // Interval
	maxPeers int           // MaxPeers: bounds answerPeer

	probing    timers             // suspect peer -> when its next probe is due
	budget     bucket             // probes sent, node-wide
	answerAll  bucket             // answers to probes, node-wide
	answerPeer map[string]*bucket // answers to probes, per peer
	answerTo   []netip.Addr       // pending answers, one HEARTBEAT each
	answerAt   time.Time          // when they are due; zero if none
}

// suspected takes p, which turned suspect at now: it is probed at once,
// then every Interval/probesPerInterval while it stays suspect, if it
// was heard at least probeAfter times.
func (pr *prober) suspected(p Peer, now time.Time) {
	if p.msgs >= probeAfter {
		pr.probing.set(p.ID, now)
	}
}

// forget stops the probes of the peer id: it is back, or gone.
func (pr *prober) forget(id string) { pr.probing.remove(id) }

// probes returns the peers to probe at now, each at its recorded
// address: the suspect ones whose turn has come, within the node-wide
// budget, those closest to dead first; held counts those left out for
// the budget, which wait for their next turn. get looks a peer up in
// the table; one no longer listed or suspect is probed no more.
func (pr *prober) probes(now time.Time, get func(id string) (Peer, bool)) (due []Peer, held uint64) {
	var turn []Peer
	for {
		id, at, ok := pr.probing.min()
		if !ok || !reached(now, at) {
			break
		}
		p, ok := get(id)
		if !ok || p.Status != Suspect {
			pr.probing.remove(id)
			continue
		}
		turn = append(turn, p)
		pr.probing.set(id, now.Add(pr.interval/probesPerInterval))
	}
	// When the budget is short, the peers closest to dead go first.
	slices.SortFunc(turn, func(a, b Peer) int {
		if c := a.LastHeard.Compare(b.LastHeard); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	for _, p := range turn {
		if !pr.budget.take(now, probeBurst, pr.interval/probeBurst) {
			held++
			continue
		}
		due = append(due, p)
	}
	return due, held
}

// answer takes a valid PROBE from p, which the table has just accepted
// at now from p's recorded address, and queues our answer to that
// address within p's budget and the node's. It reports whether the
// budgets held the answer back; a second probe from an address already
// answered is neither answered nor held.
func (pr *prober) answer(p Peer, now time.Time) (held bool) {
	if slices.Contains(pr.answerTo, p.Addr) {
		return false
	}
	if len(pr.answerPeer) > 2*pr.maxPeers {
		clear(pr.answerPeer) // bounded: forget the budgets
	}
	pb := pr.answerPeer[p.ID]
	if pb == nil {
		if pr.answerPeer == nil {
			pr.answerPeer = make(map[string]*bucket)
		}
		pb = new(bucket)
		pr.answerPeer[p.ID] = pb
	}
	if !pb.take(now, peerAnswerBurst, pr.interval/probesPerInterval) ||
		!pr.answerAll.take(now, answerBurst, pr.interval/answerBurst) {
		return true
	}
	pr.answerTo = append(pr.answerTo, p.Addr)
	if pr.answerAt.IsZero() {
		pr.answerAt = now
	}
	return false
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
func (pr *prober) next() time.Time { return earliest(pr.answerAt, pr.probing.next()) }

// reset forgets the probes to send and the answers to give; the budgets
// stay.
func (pr *prober) reset() {
	pr.probing.reset()
	pr.answerTo, pr.answerAt = pr.answerTo[:0], time.Time{}
}
