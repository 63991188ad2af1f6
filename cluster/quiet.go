package cluster

import "time"

// The table's side of probes (docs/protocol.md §4.5): which peers are
// quiet, which may help probe one, and a HEARTBEAT relayed by a helper.

// quiet calls fn for each online peer whose age at now is at least
// after, oldest first, and returns when the next one will be, or the
// zero time. It visits only those and the one after them, since the
// online list is in the order of LastHeard (ages).
func (t *table) quiet(now time.Time, after time.Duration, fn func(Peer)) time.Time {
	for p := t.ages.oldest(Online); p != nil; p = p.next {
		if now.Sub(p.LastHeard) < after {
			return p.LastHeard.Add(after)
		}
		fn(p.copy())
	}
	return time.Time{}
}

// helpers yields the peers that may probe another for us: online,
// heard at least probeAfter times, not quiet at now (younger than
// after), and not except.
func (t *table) helpers(now time.Time, after time.Duration, except string) func(yield func(Peer) bool) {
	return func(yield func(Peer) bool) {
		// The youngest first: the online list from its end.
		for p := t.ages.tail[Online]; p != nil && now.Sub(p.LastHeard) < after; p = p.prev {
			if p.ID != except && p.msgs >= probeAfter && !yield(p.copy()) {
				return
			}
		}
	}
}

// vouchable checks a HEARTBEAT r of a listed peer, relayed at now by a
// helper we asked (docs/protocol.md §4.5); the caller has checked its
// signature and freshness. It does not revive a dead peer; a signed one
// must be of the peer's listed incarnation and newer than anything
// accepted of it. It returns a *DropError, or nil if vouch may apply r.
func (t *table) vouchable(r Message, now time.Time) error {
	p := t.peers[r.ID]
	switch {
	case p == nil:
		return dropf(ReasonUnknownID, "RELAY of a HEARTBEAT of unknown node_id %s", r.ID)
	case p.Status == Dead:
		return dropf(ReasonUnasked, "RELAY of a HEARTBEAT of %s, which is dead: a relay revives no one", r.ID)
	case !r.Keyed():
		return nil
	}
	s, ok := t.seen.get(r.ID)
	switch {
	case ok && !s.newer(r.Inc, r.Seq):
		return dropf(ReasonReplay, "RELAY of a HEARTBEAT of %s, inc %d seq %d, already had inc %d seq %d",
			r.ID, r.Inc, r.Seq, s.inc, s.seq)
	case p.Keyed && r.Inc != p.Inc:
		return dropf(ReasonStale, "RELAY of a HEARTBEAT of %s of incarnation %d, listed %d", r.ID, r.Inc, p.Inc)
	case !ok:
		return t.seen.admit(r.ID, p.Addr, now, t.listed)
	}
	return nil
}

// vouch applies r, which vouchable accepted, as heard at at (when we
// asked the helper; never after now): like r received from its sender,
// it refreshes the peer's age and figures, but never its address.
func (t *table) vouch(r Message, at time.Time) event {
	p := t.peers[r.ID]
	if r.Keyed() {
		t.seen.put(r.ID, r.Inc, r.Seq, p.Addr, at)
	}
	ev := event{kind: evUpdated, oldName: p.Name, oldAddr: p.Addr}
	if p.Status != Online {
		ev.kind = evRevived
	}
	p.MemFree, p.Containers, p.Load, p.HasLoad = r.MemFree, r.Containers, r.Load, true
	p.Keyed = r.Keyed()
	if at.Before(p.LastHeard) {
		at = p.LastHeard // we ask only peers quiet since: not expected
	}
	t.heard(p, at)
	ev.peer = p.copy()
	return ev
}

// checkAsk is observe's rule for an ASK (docs/protocol.md §4.5, §6
// step 7): it names a third node, neither us nor its sender.
func (t *table) checkAsk(m Message) error {
	if m.To == t.self || m.To == m.ID {
		return dropf(ReasonWrongTarget, "ASK of %s names %s: want a third node", m.ID, m.To)
	}
	return nil
}
