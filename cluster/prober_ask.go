package cluster

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"
)

// The helper's side of indirect probes (docs/protocol.md §4.5): a valid
// ASK from a listed peer about another listed, live peer has us probe
// that peer, once per period however many ask, and relay its next
// HEARTBEAT, verbatim, to each asker's recorded address within
// Interval. The ASKs we act on have budgets like the answers to probes:
// peerAnswerBurst per asker, then one per period; answerBurst +
// peers/perPeers node-wide, then as many per Interval.

// helping is what the ASKs of others left us to do.
type helping struct {
	all     bucket             // ASKs acted on, node-wide
	per     map[string]*bucket // ASKs acted on, per asker
	waiting map[string]*relays // target -> who waits for its HEARTBEAT
	probe   []Peer             // targets to probe for others
	probeAt time.Time          // when; zero if none
	out     []relayOut         // RELAYs to send
	outAt   time.Time          // when; zero if none
}

// relayOut is a HEARTBEAT to relay, and to whom.
type relayOut struct {
	to netip.Addr
	hb Message
}

// relays is who waits for one target's HEARTBEAT, and when we last
// probed it for them.
type relays struct {
	to       []relayTo
	probedAt time.Time
}

// relayTo is an asker: where to relay the target's HEARTBEAT, and until
// when.
type relayTo struct {
	id    string
	addr  netip.Addr
	until time.Time
}

// asked takes a valid ASK from req about target, both listed (target
// live and heard probeAfter times; the caller checks), received at now
// with peers listed. It reports whether the budgets held it back.
func (pr *prober) asked(req, target Peer, peers int, now time.Time) (held bool) {
	h := &pr.helping
	if h.waiting == nil {
		h.waiting = make(map[string]*relays)
	}
	w := h.waiting[target.ID]
	if w == nil && len(h.waiting) >= pr.maxPeers {
		h.expire(now)
		if len(h.waiting) >= pr.maxPeers {
			return true
		}
	}
	if !pr.answerBudget(&h.all, &h.per, req.ID, peers, now) {
		return true
	}
	if w == nil {
		w = new(relays)
		h.waiting[target.ID] = w
	}
	w.to = slices.DeleteFunc(w.to, func(r relayTo) bool { return r.id == req.ID || !now.Before(r.until) })
	w.to = append(w.to, relayTo{req.ID, req.Addr, now.Add(pr.interval)})
	if w.probedAt.IsZero() || now.Sub(w.probedAt) >= pr.period() {
		w.probedAt = now
		h.probe = append(h.probe, target)
		if h.probeAt.IsZero() {
			h.probeAt = now
		}
	}
	return false
}

// heard takes a HEARTBEAT hb of a peer, accepted at now, and queues it
// to relay to every asker still waiting for it, once; it returns how
// many.
func (pr *prober) heard(hb Message, now time.Time) int {
	h := &pr.helping
	w := h.waiting[hb.ID]
	if w == nil {
		return 0
	}
	delete(h.waiting, hb.ID)
	k := 0
	for _, r := range w.to {
		if now.Before(r.until) {
			h.out = append(h.out, relayOut{r.addr, hb})
			k++
		}
	}
	if k > 0 && h.outAt.IsZero() {
		h.outAt = now
	}
	return k
}

// relays returns the RELAYs to send at now, and forgets them.
func (pr *prober) relays(now time.Time) []relayOut {
	h := &pr.helping
	if !reached(now, h.outAt) {
		return nil
	}
	out := slices.Clone(h.out)
	clear(h.out)
	h.out, h.outAt = h.out[:0], time.Time{}
	return out
}

// helpProbes returns the peers to probe for others at now, and forgets
// them.
func (pr *prober) helpProbes(now time.Time) []Peer {
	h := &pr.helping
	if !reached(now, h.probeAt) {
		return nil
	}
	ps := slices.Clone(h.probe)
	h.probe, h.probeAt = h.probe[:0], time.Time{}
	return ps
}

// expire forgets the askers no longer waiting at now.
func (h *helping) expire(now time.Time) {
	for id, w := range h.waiting {
		w.to = slices.DeleteFunc(w.to, func(r relayTo) bool { return !now.Before(r.until) })
		if len(w.to) == 0 {
			delete(h.waiting, id)
		}
	}
}

func (h *helping) next() time.Time { return earliest(h.probeAt, h.outAt) }

func (h *helping) reset() {
	clear(h.waiting)
	h.probe, h.probeAt = h.probe[:0], time.Time{}
	clear(h.out)
	h.out, h.outAt = h.out[:0], time.Time{}
}

// pickHelpers draws up to k of the peers that seq yields, uniformly
// (reservoir sampling), with rng.
func pickHelpers(rng *rand.Rand, k int, seq func(yield func(Peer) bool)) []Peer {
	var got []Peer
	i := 0
	for p := range seq {
		if len(got) < k {
			got = append(got, p)
		} else if j := rng.IntN(i + 1); j < k {
			got[j] = p
		}
		i++
	}
	return got
}
