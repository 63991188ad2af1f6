package cluster

import (
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// handle processes one datagram received now from src (docs/protocol.md §6).
func (n *Node) handle(b []byte, src net.Addr) {
	now := n.clock.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	n.st.received++
	if !n.joined {
		n.st.dropped[ReasonLeft]++
		return
	}
	ip, err := n.tab.source(src)
	if err != nil {
		n.countDropLocked(err, src, now)
		return
	}
	m, err := Parse(b)
	if err == nil {
		err = n.checkSignedLocked(m)
	}
	if err == nil && m.ID == n.cfg.ID && m.Keyed() && ip != n.cfg.Addr && n.seq.replayed(m.Inc, m.Seq) {
		// One of our own signed messages, replayed from elsewhere: not
		// newer than the last we sent (inc first, then seq, as for any
		// sender), so not a claim to refute (docs/protocol.md §9.2).
		err = dropf(ReasonReplay, "%v of our own (inc %d seq %d) replayed from %v", m.Kind, m.Inc, m.Seq, ip)
	}
	if err != nil {
		n.countDropLocked(err, src, now)
		return
	}
	n.tickLocked(now, true)
	ev, err := n.tab.observe(m, ip, now)
	if err != nil {
		switch n.countDropLocked(err, src, now) {
		case ReasonOwnID:
			n.refuteLocked(now, ip)
		case ReasonUnknownID:
			// Prompt a peer known only by its HEARTBEAT (docs/protocol.md §4.1).
			if m.Kind == Heartbeat && !n.tab.full() && n.rep.prompted(now) {
				n.replyLocked(now, ip)
			}
		}
		return
	}
	if ev.kind == evEcho {
		n.st.echo++
		return
	}
	n.st.accepted++
	n.st.acceptedKind[m.Kind]++
	n.logEventLocked(ev, now)
	if ev.kind == evRevived || ev.kind == evLeft {
		n.probe.forget(ev.peer.ID)
	}
	if m.Kind == Probe && n.running && n.probe.answer(ev.peer, now) {
		n.st.probeAnswersHeld++
	}
	if m.Kind != Announce {
		return
	}
	// Answer whoever may not know us: a new id, one back from silence,
	// one restarted. Not a move or a refresh (docs/protocol.md §4.1).
	if ev.kind == evAdded || ev.kind == evRevived || ev.kind == evRestarted {
		n.replyLocked(now, ip)
	}
	if ev.kind != evUpdated || ev.oldName != ev.peer.Name {
		n.checkNameLocked(ev.peer.ID, ev.peer.Name, now)
	}
}

// checkSignedLocked applies the signature rules (docs/protocol.md §6
// step 4, §9.2): what the auth mode accepts, a known key, the tag, the
// window.
func (n *Node) checkSignedLocked(m Message) error {
	if !m.Keyed() {
		if n.auth == AuthKeyed {
			return dropf(ReasonUnkeyed, "%v of %s is not signed, and this node accepts only signed messages", m.Kind, m.ID)
		}
		return nil
	}
	s, ok := n.ring.lookup(m.KeyID)
	if !ok {
		return dropf(ReasonUnknownKey, "%v of %s is signed with key %s, which is not in our keyring", m.Kind, m.ID, m.KeyID)
	}
	if !s.verify(&m) {
		return dropf(ReasonBadTag, "%v of %s has a bad tag for key %s", m.Kind, m.ID, m.KeyID)
	}
	if off, bad := stale(m.Seq, n.cfg.WallClock().UnixMilli(), n.cfg.Window); bad {
		return dropf(ReasonStale, "%v of %s was sent %+.1f s from our clock; accepted within ±%v (are both clocks right?)",
			m.Kind, m.ID, off, n.cfg.Window)
	}
	return nil
}

// replyLocked has the replier answer the node at to, if Run drives us.
func (n *Node) replyLocked(now time.Time, to netip.Addr) {
	if n.running {
		n.rep.reply(now, to)
	}
}

// refuteLocked answers a claim of our id from elsewhere with an ANNOUNCE
// at once, at most one per AnswerEvery; with a key, under a higher
// incarnation (docs/protocol.md §5).
func (n *Node) refuteLocked(now time.Time, from netip.Addr) {
	if !n.running || !n.rep.claim(now) {
		return
	}
	n.st.refutes++
	n.seq.restart()
	n.limitedLogfLocked("", now, "cluster: %v claims our node_id %s: refuting", from, n.cfg.ID)
}

// checkNameLocked flags a name held by more than one id (docs/protocol.md §8).
func (n *Node) checkNameLocked(id, name string, now time.Time) {
	held := n.tab.named(name)
	if n.name == name {
		held++
	}
	if held <= 1 {
		return // the common case, found without visiting every peer
	}
	if ids := n.holdersLocked(name); len(ids) > 1 {
		n.limitedLogfLocked(id, now, "cluster: name %s is claimed by %s", name, strings.Join(ids, " "))
	}
}

// holdersLocked lists the ids, ours included, that go by name.
func (n *Node) holdersLocked(name string) []string {
	var ids []string
	if n.name == name {
		ids = append(ids, n.cfg.ID)
	}
	for _, p := range n.tab.peers {
		if p.Name == name {
			ids = append(ids, p.ID)
		}
	}
	slices.Sort(ids)
	return ids
}
