package cluster

import (
	"net/netip"
	"time"
)

// Bounds of the replay memory (docs/protocol.md §9.2).
const (
	// seenPerPeer × MaxPeers is how many signers it remembers at most:
	// the listed ones, and those gone for less than twice the window.
	seenPerPeer = 4
	// idsPerAddr is how many remembered signers one source address may
	// have brought in: a flood of fresh ids from one address stops there
	// until they are forgotten.
	idsPerAddr = 4
)

// seenMsg is the last (inc, seq) accepted from one signer.
type seenMsg struct {
	inc, seq uint64
	at       time.Time  // when accepted
	from     netip.Addr // the address it was first remembered from
}

// newer reports whether (inc, seq) comes after s: a higher incarnation,
// or the same one and a higher seq.
func (s seenMsg) newer(inc, seq uint64) bool {
	return inc > s.inc || inc == s.inc && seq > s.seq
}

// replayMemory holds the last accepted (inc, seq) of every signer,
// kept twice the window after it was last heard even once it leaves
// the table, so that recorded traffic cannot bring it back
// (docs/protocol.md §9.2). It is bounded: at most max signers, and at
// most idsPerAddr brought in by one address. Pure, like table.
type replayMemory struct {
	window  time.Duration
	max     int
	m       map[string]seenMsg
	from    map[netip.Addr]int // signers remembered, by the address that brought them
	pruneAt time.Time          // when prune is next due
	pressed time.Time          // when it was last pruned for being full
}

func newReplayMemory(window time.Duration, maxPeers int) replayMemory {
	return replayMemory{window: window, max: seenPerPeer * maxPeers,
		m: make(map[string]seenMsg), from: make(map[netip.Addr]int)}
}

// get returns what was last accepted from id.
func (r *replayMemory) get(id string) (seenMsg, bool) {
	s, ok := r.m[id]
	return s, ok
}

// admit checks that a signer not remembered yet, heard from src at
// now, may be: the memory has room (after pruning, at most once a
// second while it is full) and src has not brought in too many.
func (r *replayMemory) admit(id string, src netip.Addr, now time.Time, listed func(string) bool) error {
	if len(r.m) >= r.max && now.Sub(r.pressed) >= time.Second {
		r.pressed = now
		r.prune(now, listed)
	}
	if len(r.m) >= r.max {
		return dropf(ReasonSeenFull, "%s is a new signer and the replay memory holds %d, its limit", id, len(r.m))
	}
	if r.from[src] >= idsPerAddr {
		return dropf(ReasonIDsPerAddr, "%s is a new signer and %v brought %d already", id, src, r.from[src])
	}
	return nil
}

// put records (inc, seq) of id, accepted from src at now.
func (r *replayMemory) put(id string, inc, seq uint64, src netip.Addr, now time.Time) {
	s, ok := r.m[id]
	if !ok {
		s.from = src
		r.from[src]++
	}
	s.inc, s.seq, s.at = inc, seq, now
	r.m[id] = s
}

// tick prunes, once per window.
func (r *replayMemory) tick(now time.Time, listed func(string) bool) {
	if !now.Before(r.pruneAt) {
		r.prune(now, listed)
		r.pruneAt = now.Add(r.window)
	}
}

// prune forgets the signers no longer listed and not heard for twice
// the window: their old messages are stale by then.
func (r *replayMemory) prune(now time.Time, listed func(string) bool) {
	for id, s := range r.m {
		if !listed(id) && now.Sub(s.at) >= 2*r.window {
			delete(r.m, id)
			if r.from[s.from]--; r.from[s.from] <= 0 {
				delete(r.from, s.from)
			}
		}
	}
}
