package cluster

import (
	"net/netip"
	"slices"
	"strconv"
	"time"
)

// The node's side of seeds and the state exchange (docs/protocol.md
// §4.6): it answers SYNCs with its state, takes in STATEs, tries its
// seeds and introduces itself to the peers off its subnet it learns of.
// What is due when is the spanner's (span.go); the messages are built
// and sent here and in dueLocked.

// spanStats are the counters of §8.2 for seeds and the state exchange.
type spanStats struct {
	syncs        uint64 // SYNCs sent: the join's, its retries, to seeds
	seedTries    uint64 // seeds tried (ANNOUNCE and SYNC)
	syncAnswers  uint64 // SYNCs answered, each with one or more STATEs
	syncsHeld    uint64 // valid SYNCs not answered: over a budget
	stateListed  uint64 // peers listed from entries of STATEs
	stateCands   uint64 // addresses off our subnet learned from plain entries
	stateRefused uint64 // entries not taken: they failed a check
	intros       uint64 // ANNOUNCEs sent to peers and candidates off our subnet
	pushes       uint64 // introductions (STATE part 0) sent
}

// remoteSeeds are the seeds a node tries: those off its subnet, once
// each. Seeds on it hear its broadcasts (§4.6).
func remoteSeeds(seeds []netip.Addr, prefix netip.Prefix) []seed {
	var out []seed
	for _, a := range seeds {
		a = a.Unmap()
		if prefix.Contains(a) || slices.ContainsFunc(out, func(s seed) bool { return s.addr == a }) {
			continue
		}
		out = append(out, seed{addr: a})
	}
	return out
}

// spans reports whether the node takes datagrams from off its subnet:
// it was given seeds (§4.6).
func (n *Node) spans() bool { return len(n.cfg.Seeds) > 0 }

// knownFarLocked reports whether a plain datagram from a, off our
// subnet, passes §6 step 2a at now: a is a seed, a listed peer's
// recorded address, a candidate learned from a STATE, or one we asked.
func (n *Node) knownFarLocked(a netip.Addr, now time.Time) bool {
	if _, ok := n.tab.byAddr[a]; ok {
		return true
	}
	return n.span.isSeed(a) || n.span.isCandidate(a, now) || n.span.askedFrom(a, false, now)
}

// liveFarLocked reports whether a seed at a needs no try: a peer we
// list live there, or a candidate we introduced ourselves to.
func (n *Node) liveFarLocked(a netip.Addr, now time.Time) bool {
	if id, ok := n.tab.byAddr[a]; ok && n.tab.peers[id].Status != Dead {
		return true
	}
	return n.span.isCandidate(a, now)
}

// syncedLocked acts on a valid SYNC of from, accepted at now: sent to
// our address, or broadcast and ours to answer, it is answered within
// the budgets, and from's ANNOUNCE is introduced to those who may not
// hear it (§4.6).
func (n *Node) syncedLocked(m Message, from Peer, now time.Time) {
	if !n.running || m.Addr == n.tab.bcast && !n.designatedLocked(from.ID) {
		return
	}
	if n.span.answer(from.ID, from.Addr, now) {
		n.st.syncsHeld++
		return
	}
	n.st.syncAnswers++
	if !n.tab.local(from.Addr) && from.msgs <= probeAfter {
		// A node off our subnet new to us (its ANNOUNCE, then this
		// SYNC: a seed's try): tell the others.
		n.introduceLocked(from, now)
	}
}

// newcomerSyncLocked takes a broadcast SYNC of an id we do not list,
// from ip on our subnet, at now: a newcomer's, sent before its ANNOUNCE
// (§4.6). If we are the node to answer it, we answer it to ip, within
// the budgets, as a listed peer's; signed, it must pass the replay
// memory, which then remembers it. Otherwise it is unknown_id, as any
// message of an id we do not list.
func (n *Node) newcomerSyncLocked(m Message, ip netip.Addr, now time.Time) error {
	if !n.running || !n.designatedLocked(m.ID) {
		return dropf(ReasonUnknownID, "SYNC from unknown node_id %s, which another peer answers", m.ID)
	}
	if m.Keyed() {
		s, ok := n.tab.seen.get(m.ID)
		if ok && !s.newer(m.Inc, m.Seq) {
			return dropf(ReasonReplay, "SYNC of %s is inc %d seq %d, already had inc %d seq %d", m.ID, m.Inc, m.Seq, s.inc, s.seq)
		}
		if !ok {
			if err := n.tab.seen.admit(m.ID, ip, now, n.tab.listed); err != nil {
				return err
			}
		}
		n.tab.seen.put(m.ID, m.Inc, m.Seq, ip, now)
	}
	n.st.accepted++
	n.st.acceptedKind[Sync]++
	if n.span.answer(m.ID, ip, now) {
		n.st.syncsHeld++
	} else {
		n.st.syncAnswers++
	}
	return nil
}

// introduceLocked tells those who may not hear of p, a peer new to us,
// about it (§4.6): our peers off our subnet, one STATE each, and our
// subnet by broadcast if p is off it. It is how nodes off p's subnet
// learn the address of a node they did not list, which they need in
// plain mode to take its messages (§6 step 2a).
func (n *Node) introduceLocked(p Peer, now time.Time) {
	if !n.running || p.ann.Kind != Announce || p.ann.Keyed() != n.signs() {
		return
	}
	e := []Entry{{Age: 0, Ann: p.ann}}
	for _, q := range n.tab.remote {
		if q.ID != p.ID && q.Status != Dead {
			n.span.pushTo(q.Addr, e, now)
		}
	}
	if !n.tab.local(p.Addr) {
		n.span.pushTo(netip.Addr{}, e, now) // our subnet's broadcast
	}
}

// designatedLocked reports whether we answer a broadcast SYNC of req:
// our id is the first after req's, going up and wrapping, among ours
// and those of the online peers of our subnet we list (§4.6).
func (n *Node) designatedLocked(req string) bool {
	me := n.cfg.ID
	for _, p := range n.tab.peers {
		if p.ID != req && p.Status == Online && n.tab.local(p.Addr) && ringBefore(req, p.ID, me) {
			return false
		}
	}
	return true
}

// ringBefore reports whether, going up from r (excluded) and wrapping,
// id a comes before id b. Ids are 8 lowercase hex digits, so their
// order as strings is their order as numbers.
func ringBefore(r, a, b string) bool {
	if ra, rb := a > r, b > r; ra != rb {
		return ra
	}
	return a < b
}

// spanLocked returns what the spanner has due at now: seeds to try,
// the join's retry, answers, introductions and pushes.
func (n *Node) spanLocked(now time.Time, res Resources) []outgoing {
	var out []outgoing
	if seeds := n.span.dueSeeds(now, func(a netip.Addr) bool { return n.liveFarLocked(a, now) }); len(seeds) > 0 {
		ann := n.ownAnnounceLocked(res)
		for _, a := range seeds {
			n.st.seedTries++
			n.st.syncs++
			n.span.asking(a, now)
			out = append(out, n.toOne(a, ann), n.toOne(a, Message{Kind: Sync, ID: n.cfg.ID, Addr: a}))
		}
	}
	if n.span.syncDue(now) && len(n.tab.remote) > 0 {
		// One live peer off our subnet, drawn at random (§4.6).
		p := n.tab.remote[n.cfg.Rand.IntN(len(n.tab.remote))]
		if p.Status != Dead {
			n.st.syncs++
			n.span.asking(p.Addr, now)
			out = append(out, n.toOne(p.Addr, Message{Kind: Sync, ID: n.cfg.ID, Addr: p.Addr}))
		}
	}
	if n.span.retry(now) {
		if p := n.tab.randomLocal(n.cfg.Rand); p != nil {
			n.st.syncs++
			n.span.asking(p.Addr, now)
			out = append(out, n.toOne(p.Addr, Message{Kind: Sync, ID: n.cfg.ID, Addr: p.Addr}))
		}
	}
	answers, intros, pushes := n.span.take(now)
	for _, a := range answers {
		for _, m := range n.packLocked(n.ourStateLocked(a.id, now, res), true) {
			out = append(out, n.toOne(a.addr, m))
		}
	}
	if len(intros) > 0 {
		ann := n.ownAnnounceLocked(res)
		for _, a := range intros {
			n.st.intros++
			out = append(out, n.toOne(a, ann))
		}
	}
	for _, p := range pushes {
		for _, m := range n.packLocked(p.entries, false) {
			n.st.pushes++
			if p.to.IsValid() {
				out = append(out, n.toOne(p.to, m))
			} else {
				out = append(out, n.toAll(m))
			}
		}
	}
	return out
}

// ourStateLocked is our state for an answer to req at now: our ANNOUNCE
// (signed when sent), then every peer online but req, with its last
// ANNOUNCE, signed as what we send is (§4.6).
func (n *Node) ourStateLocked(req string, now time.Time, res Resources) []Entry {
	es := []Entry{{Age: 0, Ann: n.ownAnnounceLocked(res)}}
	signs := n.signs()
	for _, p := range n.tab.list() {
		if p.ID == req || p.Status != Online || p.ann.Kind != Announce || p.ann.Keyed() != signs {
			continue
		}
		age := now.Sub(p.LastHeard).Milliseconds()
		es = append(es, Entry{Age: uint32(min(max(age, 0), maxEntryAge)), Ann: p.ann})
	}
	return es
}

// Sizes that bound a STATE's packing (§4.6): its head at most (verb,
// node_id, and part, parts and count of 5 digits each), and a keyed
// trailer at most: " inc seq key-id tag".
const (
	stateHeadMax    = len("STATE ") + 8 + 3*(1+5)
	keyedTrailerMax = 1 + 20 + 1 + 20 + 1 + 8 + 1 + 2*TagSize
)

// packLocked packs entries into STATEs of at most MaxMessageSize bytes
// each: the parts of an answer, numbered from 1, or introductions (part
// 0 of 0). Our own entry, still plain, counts with a full trailer when
// we sign.
func (n *Node) packLocked(es []Entry, answer bool) []Message {
	signs := n.signs()
	room := MaxMessageSize - stateHeadMax - 1 // the newline
	if signs {
		room -= keyedTrailerMax
	}
	var parts [][]Entry
	var cur []Entry
	used := 0
	for _, e := range es {
		k := 1 + len(strconv.FormatUint(uint64(e.Age), 10)) + 1 + len(e.Ann.appendBody(nil))
		switch {
		case e.Ann.Keyed():
			k += len(e.Ann.appendTrailer(nil))
		case signs:
			k += keyedTrailerMax
		}
		if len(cur) > 0 && used+k > room {
			parts, cur, used = append(parts, cur), nil, 0
		}
		cur, used = append(cur, e), used+k
	}
	if len(cur) > 0 {
		parts = append(parts, cur)
	}
	out := make([]Message, 0, len(parts))
	for i, p := range parts {
		st := &Snapshot{Entries: p}
		if answer {
			st.Part, st.Parts = i+1, len(parts)
		}
		out = append(out, Message{Kind: State, ID: n.cfg.ID, State: st})
	}
	return out
}

// signEntriesLocked signs our own entry of a STATE about to be sent, if
// we sign: a copy, the original being shared.
func (n *Node) signEntriesLocked(st *Snapshot) *Snapshot {
	if !n.signs() {
		return st
	}
	c := *st
	c.Entries = slices.Clone(st.Entries)
	for i := range c.Entries {
		if a := &c.Entries[i].Ann; a.ID == n.cfg.ID && !a.Keyed() {
			n.signLocked(a)
		}
	}
	return &c
}
