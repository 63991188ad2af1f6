package cluster

import (
	"net/netip"
	"slices"
	"strings"
	"time"

	"fornax/internal/ipv4"
)

// Status is a peer's liveness (docs/protocol.md §5 Membership).
type Status uint8

// Peer states.
const (
	Online Status = iota
	Suspect
	Dead
)

func (s Status) String() string {
	switch s {
	case Online:
		return "online"
	case Suspect:
		return "suspect"
	case Dead:
		return "dead"
	}
	return "Status(?)"
}

// Peer is what a node knows of another: the fields of its last ANNOUNCE,
// updated by its HEARTBEATs.
type Peer struct {
	ID         string
	Name       string
	Addr       netip.Addr // recorded address: the source of its last ANNOUNCE
	CPUs       int
	MemTotal   uint64
	MemFree    uint64
	Containers int
	Load       Load
	HasLoad    bool      // a HEARTBEAT has been heard, so Load is known
	LastHeard  time.Time // when its last valid message was received
	Status     Status
	Keyed      bool   // its last accepted message was signed (docs/protocol.md §9)
	Inc        uint64 // keyed: incarnation of its last accepted ANNOUNCE
	// home is the address it held before it moved while dead, and
	// homeUntil when that stops counting: an ANNOUNCE from home brings
	// it back, once, even while it is live (docs/protocol.md §5).
	home      netip.Addr
	homeUntil time.Time
	// msgs counts the valid messages heard from it since it was listed.
	// A peer heard once (its first ANNOUNCE, perhaps forged from a free
	// address) is not probed (docs/protocol.md §4.5).
	msgs int
	// ann is its last ANNOUNCE, verbatim (signed if it was), which a
	// STATE carries (docs/protocol.md §4.6).
	ann Message
	// ri is its index in the table's remote list, if off our subnet.
	ri int
	// The table's lists by age (ages).
	prev, next *Peer
	linked     bool
}

// copy is p without the table's links, to hand out.
func (p *Peer) copy() Peer {
	c := *p
	c.prev, c.next, c.linked = nil, nil, false
	return c
}

// eventKind is what a message or the passing of time did to the table.
type eventKind uint8

const (
	evEcho      eventKind = iota + 1 // our own broadcast came back
	evAdded                          // new peer (ANNOUNCE)
	evUpdated                        // known online peer refreshed
	evRevived                        // suspect or dead peer heard again
	evRestarted                      // keyed peer announced a higher incarnation
	evMoved                          // online peer went back to its home address
	evLeft                           // LEAVE
	evSuspect
	evDead
	evRemoved
)

type event struct {
	kind    eventKind
	peer    Peer
	oldName string     // evUpdated etc.: name before the message
	oldAddr netip.Addr // addr before the message
	// gone are peers the message removed besides its own: the id that
	// held its source address, or the oldest dead entry evicted to make
	// room (docs/protocol.md §5).
	gone []gonePeer
}

type gonePeer struct {
	peer Peer
	why  string // "replaced by <id>" or "evicted"
}

// table is the membership state machine of docs/protocol.md §5. It is
// pure: no goroutines, no clock, no locking; time is passed in.
type table struct {
	self     string       // our node_id
	selfAddr netip.Addr   // our address
	prefix   netip.Prefix // our subnet, masked
	bcast    netip.Addr   // its broadcast address
	port     int          // the cluster's port, the only source port accepted

	suspect, dead, remove time.Duration // ages at which a peer turns suspect, dead, is removed
	max                   int

	peers  map[string]*Peer
	byAddr map[netip.Addr]string // recorded address -> id: one id per address
	// remote are the peers recorded off our subnet, which our periodic
	// messages reach by unicast (§4.6): at most maxRemote.
	remote    []*Peer
	maxRemote int
	// spans: the node takes datagrams from off our subnet (it has seeds).
	spans bool
	names map[string]int // name -> how many peers go by it
	seen  replayMemory   // the last (inc, seq) of every signer (seen.go)
	ages  ages           // the peers by status, oldest first
}

func newTable(self string, selfAddr netip.Addr, prefix netip.Prefix, port int, suspect, dead, removeAfterDead, window time.Duration, max int) *table {
	prefix = prefix.Masked()
	return &table{
		self: self, selfAddr: selfAddr, prefix: prefix, bcast: broadcastAddr(prefix), port: port,
		suspect: suspect, dead: dead, remove: dead + removeAfterDead, max: max,
		peers: make(map[string]*Peer), byAddr: make(map[netip.Addr]string), names: make(map[string]int),
		seen: newReplayMemory(window, max),
	}
}

// broadcastAddr is the last address of an IPv4 prefix.
func broadcastAddr(p netip.Prefix) netip.Addr { return ipv4.Broadcast(p) }

// past reports whether a peer of the given age has reached threshold.
// Thresholds are inclusive (age >= 15 s is suspect); strict asks instead
// about the instant just before, before messages received at that very
// instant count (docs/protocol.md §4 Timing).
func (t *table) past(age, threshold time.Duration, strict bool) bool {
	if strict {
		return age > threshold
	}
	return age >= threshold
}

// tick applies the transitions due at now: suspect, dead, removed. With
// strict, transitions whose threshold falls exactly at now are left for
// later, so that a message received at now counts first. Events are in
// node_id order.
func (t *table) tick(now time.Time, strict bool) []event {
	var evs []event
	// Each peer is visited at most once: its transition leaves it where
	// its next one lies past now (or at now, when strict).
	for range len(t.peers) {
		p := t.due(now, strict)
		if p == nil {
			break
		}
		age := now.Sub(p.LastHeard)
		t.ages.unlink(p)
		switch {
		case t.past(age, t.remove, strict):
			t.delete(p.ID)
			evs = append(evs, event{kind: evRemoved, peer: p.copy()})
			continue
		case t.past(age, t.dead, strict):
			p.Status = Dead
			evs = append(evs, event{kind: evDead, peer: p.copy()})
		default: // past suspect: it is the head of the online list
			p.Status = Suspect
			evs = append(evs, event{kind: evSuspect, peer: p.copy()})
		}
		t.ages.push(p)
	}
	t.seen.tick(now, t.listed)
	slices.SortFunc(evs, func(a, b event) int { return strings.Compare(a.peer.ID, b.peer.ID) })
	return evs
}

// due returns a peer whose next transition has come at now, or nil:
// only the oldest of each status can be one.
func (t *table) due(now time.Time, strict bool) *Peer {
	for s := Dead; ; s-- {
		if p := t.ages.oldest(s); p != nil && t.past(now.Sub(p.LastHeard), t.after(s), strict) {
			return p
		}
		if s == Online {
			return nil
		}
	}
}

// deadline is when p next changes state if not heard from.
func (t *table) deadline(p *Peer) time.Time { return p.LastHeard.Add(t.after(p.Status)) }

// next is the earliest time at which tick has work, or the zero time if
// the table is empty.
func (t *table) next() time.Time {
	var at time.Time
	for s := Online; s <= Dead; s++ {
		if p := t.ages.oldest(s); p != nil {
			if d := t.deadline(p); at.IsZero() || d.Before(at) {
				at = d
			}
		}
	}
	return at
}

// observe applies one valid message from source src received at now
// (docs/protocol.md §5 and §6, steps 5–7). The caller has applied
// tick(now, true) and checked signatures (step 4). A dropped message
// changes nothing and returns a *DropError.
func (t *table) observe(m Message, src netip.Addr, now time.Time) (event, error) {
	if m.ID == t.self {
		if src == t.selfAddr {
			return event{kind: evEcho}, nil
		}
		return event{}, dropf(ReasonOwnID, "%v carries our node_id %s, from %v", m.Kind, m.ID, src)
	}
	if src == t.selfAddr {
		return event{}, dropf(ReasonOwnAddr, "%v of %s comes from our address %v", m.Kind, m.ID, src)
	}
	if m.Kind == Announce && m.Addr != src {
		return event{}, dropf(ReasonAddrMismatch, "ANNOUNCE of %s says addr %v, source is %v", m.ID, m.Addr, src)
	}
	if m.Kind == Probe && m.To != t.self {
		// Not for us: answering would let anyone aim our HEARTBEATs
		// (docs/protocol.md §4.5, §6 step 7).
		return event{}, dropf(ReasonWrongTarget, "PROBE of %s names %s, we are %s", m.ID, m.To, t.self)
	}
	if m.Kind == Ask {
		if err := t.checkAsk(m); err != nil {
			return event{}, err
		}
	}
	if m.Kind == Sync && m.Addr != t.selfAddr && m.Addr != t.bcast {
		// Sent to another node: answering would let anyone aim our state
		// (§4.6, §6 step 7).
		return event{}, dropf(ReasonWrongTarget, "SYNC of %s was sent to %v, we are %v", m.ID, m.Addr, t.selfAddr)
	}
	if m.Keyed() {
		s, ok := t.seen.get(m.ID)
		if ok && !s.newer(m.Inc, m.Seq) {
			return event{}, dropf(ReasonReplay, "%v of %s is inc %d seq %d, already had inc %d seq %d",
				m.Kind, m.ID, m.Inc, m.Seq, s.inc, s.seq)
		}
		// Only an ANNOUNCE lists a new id: for the others unknown_id says more.
		if !ok && (m.Kind == Announce || t.listed(m.ID)) {
			if err := t.seen.admit(m.ID, src, now, t.listed); err != nil {
				return event{}, err
			}
		}
	}
	var ev event
	var err error
	switch m.Kind {
	case Announce:
		ev, err = t.announce(m, src, now)
	case Heartbeat, Leave, Probe, Ask, Relay, Sync, State:
		ev, err = t.fromPeer(m, src, now)
	default:
		err = dropf(ReasonUnknownVerb, "kind %d", m.Kind)
	}
	if err == nil && m.Keyed() {
		t.seen.put(m.ID, m.Inc, m.Seq, src, now)
	}
	return ev, err
}

func (t *table) announce(m Message, src netip.Addr, now time.Time) (event, error) {
	p := t.peers[m.ID]
	ev := event{kind: evAdded}
	if p != nil {
		ev = event{kind: evUpdated, oldName: p.Name, oldAddr: p.Addr}
		moved := p.Addr != src
		switch {
		case moved && src == p.home && now.Before(p.homeUntil):
			// Back to the address it held before it moved while dead:
			// the node is back and refutes whoever took its id (§5).
			// Once only: the address it leaves is no home.
			ev.kind = evMoved
			if p.Status != Online {
				ev.kind = evRevived
			}
			p.home = netip.Addr{}
		case moved && p.Status != Dead:
			// A live id does not move: whoever else claims it is refused
			// until it has been silent long enough to be dead.
			return event{}, dropf(ReasonAddrConflict, "ANNOUNCE of %s from %v, but it is %v at %v",
				m.ID, src, p.Status, p.Addr)
		case moved: // dead ones may come back elsewhere; this stays home a while
			p.home, p.homeUntil = p.Addr, now.Add(t.remove)
			ev.kind = evRevived
		case p.Status != Online:
			ev.kind = evRevived
		case m.Keyed() && p.Keyed && m.Inc > p.Inc:
			ev.kind = evRestarted
		}
	}
	// One address holds one id: a new id from an address replaces the
	// one it held (a machine back under a new id).
	if other, ok := t.byAddr[src]; ok && other != m.ID {
		ev.gone = append(ev.gone, gonePeer{t.peers[other].copy(), "replaced by " + m.ID})
		t.delete(other)
	} else if p == nil && len(t.peers) >= t.max {
		victim := t.oldestDead()
		if victim == nil {
			return event{}, dropf(ReasonTableFull, "table holds %d live peers, refusing %s", t.max, m.ID)
		}
		ev.gone = append(ev.gone, gonePeer{victim.copy(), "evicted"})
		t.delete(victim.ID)
	}
	if !t.local(src) && (p == nil || t.local(p.Addr)) && len(t.remote) >= t.maxRemote {
		// Each costs a unicast per interval: bounded (§4.6).
		return event{}, dropf(ReasonTableFull, "table holds %d peers off our subnet, refusing %s at %v", t.maxRemote, m.ID, src)
	}
	if p == nil {
		p = &Peer{ID: m.ID}
		t.peers[m.ID] = p
	}
	if p.Addr != src {
		delete(t.byAddr, p.Addr)
		t.byAddr[src] = m.ID
		t.unremote(p)
		if !t.local(src) {
			p.ri = len(t.remote)
			t.remote = append(t.remote, p)
		}
	}
	if p.Name != m.Name {
		t.unname(p.Name)
		t.names[m.Name]++
	}
	p.Name, p.Addr, p.CPUs = m.Name, m.Addr, m.CPUs
	p.MemTotal, p.MemFree, p.Containers = m.MemTotal, m.MemFree, m.Containers
	p.Keyed, p.Inc = m.Keyed(), m.Inc
	p.ann = m
	t.heard(p, now)
	ev.peer = p.copy()
	return ev, nil
}

// fromPeer applies a HEARTBEAT, LEAVE, PROBE, ASK or RELAY: messages
// only a listed peer may send, from its recorded address. A PROBE, ASK
// or RELAY, like any valid message, shows its sender alive
// (docs/protocol.md §4.3, §4.5); it carries no figures of its sender.
func (t *table) fromPeer(m Message, src netip.Addr, now time.Time) (event, error) {
	p := t.peers[m.ID]
	if p == nil {
		return event{}, dropf(ReasonUnknownID, "%v from unknown node_id %s", m.Kind, m.ID)
	}
	if p.Addr != src {
		return event{}, dropf(ReasonSourceMismatch, "%v of %s from %v, recorded addr is %v", m.Kind, m.ID, src, p.Addr)
	}
	if m.Kind == Leave {
		t.delete(m.ID)
		return event{kind: evLeft, peer: p.copy()}, nil
	}
	ev := event{kind: evUpdated, oldName: p.Name, oldAddr: p.Addr}
	if p.Status != Online {
		ev.kind = evRevived
	}
	if m.Kind == Heartbeat {
		p.MemFree, p.Containers, p.Load, p.HasLoad = m.MemFree, m.Containers, m.Load, true
	}
	p.Keyed = m.Keyed()
	t.heard(p, now)
	ev.peer = p.copy()
	return ev, nil
}

// oldestDead returns the dead peer heard longest ago, the lowest id of
// those heard at that instant, or nil.
func (t *table) oldestDead() *Peer {
	o := t.ages.oldest(Dead)
	for p := o; p != nil && p.LastHeard.Equal(o.LastHeard); p = p.next {
		if p.ID < o.ID {
			o = p
		}
	}
	return o
}

// delete removes a peer and its address.
func (t *table) delete(id string) {
	if p, ok := t.peers[id]; ok {
		if t.byAddr[p.Addr] == id {
			delete(t.byAddr, p.Addr)
		}
		t.unname(p.Name)
		t.ages.unlink(p)
		t.unremote(p)
		delete(t.peers, id)
	}
}

// unname counts one peer fewer going by name.
func (t *table) unname(name string) {
	if t.names[name]--; t.names[name] <= 0 {
		delete(t.names, name)
	}
}

// named is how many peers go by name.
func (t *table) named(name string) int { return t.names[name] }

// listed reports whether id is in the table.
func (t *table) listed(id string) bool {
	_, ok := t.peers[id]
	return ok
}

// remembers reports whether id was heard signed and is still listed or
// remembered (docs/protocol.md §9.2, §9.3).
func (t *table) remembers(id string) bool {
	_, ok := t.seen.get(id)
	return ok
}

// heard marks p online as of now.
func (t *table) heard(p *Peer, now time.Time) {
	t.ages.unlink(p)
	p.LastHeard, p.Status = now, Online
	t.ages.push(p)
	p.msgs++
}

// full reports whether a new id would be refused.
func (t *table) full() bool { return len(t.peers) >= t.max }

// clear forgets every peer.
func (t *table) clear() {
	clear(t.peers)
	clear(t.byAddr)
	clear(t.names)
	clear(t.remote)
	t.remote = t.remote[:0]
	t.ages.reset()
}

// get returns a copy of the peer with the given id.
func (t *table) get(id string) (Peer, bool) {
	p, ok := t.peers[id]
	if !ok {
		return Peer{}, false
	}
	return p.copy(), true
}

// list returns copies of all peers in node_id order.
func (t *table) list() []Peer {
	ps := make([]Peer, 0, len(t.peers))
	for _, p := range t.peers {
		ps = append(ps, p.copy())
	}
	slices.SortFunc(ps, func(a, b Peer) int { return strings.Compare(a.ID, b.ID) })
	return ps
}
