package cluster

import (
	"errors"
	"net"
	"net/netip"
	"time"
)

// Taking in a STATE (docs/protocol.md §4.6): an answer we asked for, or
// an introduction from a listed peer; then each of its entries, listed
// at once or kept as a candidate by the rules of §4.6.

// errEcho marks our own STATE looped back.
var errEcho = errors.New("echo")

// takeStateLocked handles a STATE m that passed §6 steps 1–4, from ip
// (onSeg: a host of our subnet) at now.
func (n *Node) takeStateLocked(m Message, ip netip.Addr, onSeg bool, src net.Addr, now time.Time) {
	if err := n.checkStateLocked(m, ip, onSeg, now); err != nil {
		switch {
		case err == errEcho:
			n.st.echo++
		case n.countDropLocked(err, src, now) == ReasonOwnID:
			n.refuteLocked(now, ip, m.Inc)
		}
		return
	}
	n.st.accepted++
	n.st.acceptedKind[State]++
	answer := m.State.Parts > 0
	if answer {
		n.span.gotAnswer()
		n.span.gotFrom(ip)
	}
	var learned []Entry
	for _, e := range m.State.Entries {
		if n.entryLocked(e, m, ip, onSeg, answer, now) {
			learned = append(learned, e)
		}
	}
	// The STATE is a valid message of its sender, if we list it there.
	if p := n.tab.peers[m.ID]; p != nil && p.Addr == ip {
		if ev, err := n.tab.observe(m, ip, now); err == nil {
			n.logEventLocked(ev, now)
			n.probe.forget(m.ID)
		}
	}
	// Peers off our subnet we learned of from a peer off it: our subnet
	// may not know them either (we are its first node, or after a
	// partition); tell it, by broadcast (§4.6).
	if answer && !onSeg && len(learned) > 0 {
		n.span.pushTo(netip.Addr{}, learned, now)
	}
}

// checkStateLocked applies §6 steps 5–7 to a STATE: our own looped back
// (errEcho) or from elsewhere, an answer we asked for, an introduction
// from a listed peer at its recorded address, newer than the last
// accepted from its sender if signed.
func (n *Node) checkStateLocked(m Message, ip netip.Addr, onSeg bool, now time.Time) error {
	switch {
	case m.ID == n.cfg.ID && ip == n.cfg.Addr:
		return errEcho
	case m.ID == n.cfg.ID:
		return dropf(ReasonOwnID, "STATE carries our node_id %s, from %v", m.ID, ip)
	case ip == n.cfg.Addr:
		return dropf(ReasonOwnAddr, "STATE of %s comes from our address %v", m.ID, ip)
	}
	if m.State.Parts > 0 {
		if !n.span.askedFrom(ip, onSeg, now) {
			return dropf(ReasonUnasked, "STATE from %s at %v, which we did not ask", m.ID, ip)
		}
	} else if p := n.tab.peers[m.ID]; p == nil {
		return dropf(ReasonUnknownID, "STATE from unknown node_id %s", m.ID)
	} else if p.Addr != ip {
		return dropf(ReasonSourceMismatch, "STATE of %s from %v, recorded addr is %v", m.ID, ip, p.Addr)
	}
	if m.Keyed() {
		if s, ok := n.tab.seen.get(m.ID); ok && !s.newer(m.Inc, m.Seq) {
			return dropf(ReasonReplay, "STATE of %s is inc %d seq %d, already had inc %d seq %d",
				m.ID, m.Inc, m.Seq, s.inc, s.seq)
		}
	}
	return nil
}

// entryLocked takes one entry e of a STATE m from ip, accepted at now
// (§4.6), and reports whether it taught us a peer or an address off our
// subnet (for the introduction that follows an answer from off it).
func (n *Node) entryLocked(e Entry, m Message, ip netip.Addr, onSeg, answer bool, now time.Time) bool {
	a := e.Ann
	if a.ID == n.cfg.ID {
		return false // us
	}
	if a.ID == m.ID { // its sender's own: heard directly
		n.ownEntryLocked(a, ip, now)
		return false
	}
	if p := n.tab.peers[a.ID]; p != nil && p.Status != Dead {
		return false // known first-hand, or from an earlier entry
	}
	far := !n.tab.local(a.Addr)
	if far && !n.tab.spans {
		return false // we could not hear it
	}
	if !a.Keyed() && !(answer && onSeg && !far) {
		// Plain, second-hand and not of our subnet: only a candidate,
		// an address we may hear and tell about ourselves (§4.6).
		if !far || !n.span.candidate(a.Addr, now, now.Add(n.tab.remove)) {
			return false
		}
		n.st.stateCands++
		n.span.introduce(a.Addr, now)
		return true
	}
	ev, err := n.carriedLocked(e, now)
	if err != nil {
		n.st.stateRefused++
		n.limitedLogfLocked("", now, "cluster: STATE of %s from %v: entry of %s not taken: %v", m.ID, ip, a.ID, err)
		return false
	}
	n.st.stateListed++
	n.logEventLocked(ev, now)
	n.checkNameLocked(a.ID, a.Name, now)
	if far && answer {
		n.span.introduce(a.Addr, now) // it may not know us: we asked
	}
	return far
}

// carriedLocked lists the peer of entry e, second-hand, as heard e.Age
// before now: checked as its ANNOUNCE would be (§6 steps 4–7, §9.2), but
// for the time of our start, its freshness instead, and its source,
// which is its addr (§4.6).
func (n *Node) carriedLocked(e Entry, now time.Time) (event, error) {
	a := e.Ann
	age := time.Duration(e.Age) * time.Millisecond
	if age >= n.cfg.SuspectAfter {
		return event{}, dropf(ReasonStale, "heard %v ago by the sender: not online", age)
	}
	if a.Addr == n.cfg.Addr {
		return event{}, dropf(ReasonOwnAddr, "its addr %v is ours", a.Addr)
	}
	if err := n.checkTagLocked(a); err != nil {
		return event{}, err
	}
	if a.Keyed() {
		if wall := n.cfg.WallClock().UnixMilli(); int64(a.Seq) < wall-n.cfg.DeadAfter.Milliseconds() {
			return event{}, dropf(ReasonStale, "its ANNOUNCE was sent %.1f s ago; carried ones count up to %v",
				float64(wall-int64(a.Seq))/1000, n.cfg.DeadAfter)
		}
	} else if n.auth == AuthMixed && n.tab.remembers(a.ID) {
		return event{}, dropf(ReasonUnkeyed, "not signed, and %s was heard signed", a.ID)
	}
	return n.tab.observe(a, a.Addr, now.Add(-age))
}

// ownEntryLocked takes the entry of a STATE's sender about itself as its
// ANNOUNCE received from ip at now: every check of §6, and its addr must
// be ip. It draws no answer: the sender knows us, or it would not have
// sent us a STATE.
func (n *Node) ownEntryLocked(a Message, ip netip.Addr, now time.Time) {
	err := n.checkSignedLocked(a, now)
	if err == nil && !a.Keyed() && n.auth == AuthMixed && n.tab.remembers(a.ID) {
		err = dropf(ReasonUnkeyed, "not signed, and %s was heard signed", a.ID)
	}
	var ev event
	if err == nil {
		ev, err = n.tab.observe(a, ip, now)
	}
	if err != nil {
		n.st.stateRefused++
		n.limitedLogfLocked("", now, "cluster: STATE of %s from %v: its own entry not taken: %v", a.ID, ip, err)
		return
	}
	n.logEventLocked(ev, now)
	n.probe.forget(a.ID)
	if ev.kind != evUpdated || ev.oldName != ev.peer.Name {
		n.checkNameLocked(a.ID, a.Name, now)
	}
}
