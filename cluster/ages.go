package cluster

import "time"

// ages keeps a table's peers in three lists, one per status, each in
// the order of LastHeard, oldest first. The next transition is then at
// the head of one of them: a message moves its peer to the end of the
// online list, and tick visits only the peers it changes, both in O(1)
// whatever the number of peers (docs/scale.md). A time earlier than the
// newest (a clock stepped back) is put in its place, walking from the
// end, so the order always holds.
type ages struct {
	head, tail [Dead + 1]*Peer
}

// push adds p to the list of its status.
func (a *ages) push(p *Peer) {
	s := p.Status
	at := a.tail[s]
	for at != nil && at.LastHeard.After(p.LastHeard) {
		at = at.prev
	}
	// p goes after at (at the head if at is nil)
	p.linked = true
	p.prev = at
	if at == nil {
		p.next = a.head[s]
		a.head[s] = p
	} else {
		p.next = at.next
		at.next = p
	}
	if p.next == nil {
		a.tail[s] = p
	} else {
		p.next.prev = p
	}
}

// unlink takes p out of the list of its status, if it is in one.
func (a *ages) unlink(p *Peer) {
	if !p.linked {
		return
	}
	s := p.Status
	if p.prev == nil {
		a.head[s] = p.next
	} else {
		p.prev.next = p.next
	}
	if p.next == nil {
		a.tail[s] = p.prev
	} else {
		p.next.prev = p.prev
	}
	p.prev, p.next, p.linked = nil, nil, false
}

// oldest is the peer of status s heard longest ago, or nil.
func (a *ages) oldest(s Status) *Peer { return a.head[s] }

func (a *ages) reset() { *a = ages{} }

// after is how long after LastHeard a peer of status s next changes
// state: the thresholds of docs/protocol.md §5.
func (t *table) after(s Status) time.Duration {
	switch s {
	case Online:
		return t.suspect
	case Suspect:
		return t.dead
	}
	return t.remove
}
