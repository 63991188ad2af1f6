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
	ip, onSeg, err := n.tab.source(src)
	if err != nil {
		n.countDropLocked(err, src, now)
		return
	}
	m, err := Parse(b)
	if err == nil && !onSeg && !m.Keyed() && !n.knownFarLocked(ip, now) {
		// Step 2a: plain, from off our subnet, and from no one we know
		// of there (§4.6, §10).
		err = dropf(ReasonForeignSubnet, "plain %v of %s from %v, off %v: not a seed, a peer or an address learned from one",
			m.Kind, m.ID, ip, n.tab.prefix)
	}
	if err == nil {
		err = n.checkSignedLocked(m, now)
	}
	if err == nil && m.ID == n.cfg.ID && m.Keyed() {
		err = n.ownSignedLocked(m, ip)
	}
	if err == nil && !m.Keyed() && n.auth == AuthMixed && n.tab.remembers(m.ID) {
		// Mixed mode is sticky: an id heard signed is not changed by a
		// plain message while it is listed or remembered (§9.3).
		err = dropf(ReasonUnkeyed, "%v of %s is not signed, and %s was heard signed", m.Kind, m.ID, m.ID)
	}
	if err != nil {
		if n.countDropLocked(err, src, now) == ReasonOwnID {
			n.refuteLocked(now, ip, m.Inc)
		}
		return
	}
	n.tickLocked(now, true)
	if m.Kind == State {
		n.takeStateLocked(m, ip, onSeg, src, now)
		return
	}
	if m.Kind == Sync && onSeg && m.Addr == n.tab.bcast && m.ID != n.cfg.ID && ip != n.cfg.Addr && !n.tab.listed(m.ID) {
		// A newcomer's: it sends its SYNC before its ANNOUNCE (§4.6).
		if err := n.newcomerSyncLocked(m, ip, now); err != nil {
			n.countDropLocked(err, src, now)
		}
		return
	}
	if m.Kind == Relay {
		// What it carries decides whether any of it counts (§4.5).
		if err := n.checkRelayLocked(m, now); err != nil {
			n.st.relaysRefused++
			n.countDropLocked(err, src, now)
			return
		}
	}
	ev, err := n.tab.observe(m, ip, now)
	if err != nil {
		switch n.countDropLocked(err, src, now) {
		case ReasonOwnID:
			n.refuteLocked(now, ip, m.Inc)
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
	n.probeHeardLocked(m, ev.peer, now)
	switch m.Kind {
	case Relay:
		n.vouchLocked(m, now)
	case Sync:
		n.syncedLocked(m, ev.peer, now)
	}
	if m.Kind != Announce {
		return
	}
	// Answer whoever may not know us: a new id, one back from silence,
	// one restarted, one back home (it may have restarted). Not a
	// refresh (docs/protocol.md §4.1).
	if ev.kind == evAdded || ev.kind == evRevived || ev.kind == evRestarted || ev.kind == evMoved {
		n.replyLocked(now, ip)
	}
	if ev.kind == evAdded && len(n.tab.remote) > 0 && n.tab.local(ip) && n.designatedLocked(m.ID) {
		// A new node of our subnet: one of us tells the others (§4.6).
		n.introduceLocked(ev.peer, now)
	}
	if ev.kind != evUpdated || ev.oldName != ev.peer.Name {
		n.checkNameLocked(ev.peer.ID, ev.peer.Name, now)
	}
}

// startSlack is how long before its start a node accepts signed
// messages sent, in the first window after it (docs/protocol.md §9.2):
// more than the clocks of VMs that read a 1 s RTC differ by, so that
// the answers to a node's join are not refused.
const startSlack = 2 * time.Second

// checkSignedLocked applies the signature rules (docs/protocol.md §6
// step 4, §9.2): what the auth mode accepts, a known key, the tag, the
// window, an incarnation not in the future, and, for a window after we
// started, nothing sent more than startSlack before we started.
func (n *Node) checkSignedLocked(m Message, now time.Time) error {
	if err := n.checkTagLocked(m); err != nil || !m.Keyed() {
		return err
	}
	if from := n.bornWall - startSlack.Milliseconds(); now.Sub(n.bornAt) < n.cfg.Window && from > 0 && m.Seq < uint64(from) {
		// Our replay memory is empty: what was sent before we started
		// may have been accepted already (docs/protocol.md §9.2).
		return dropf(ReasonStale, "%v of %s was sent %.3f s before we started; accepted from %v before",
			m.Kind, m.ID, float64(n.bornWall-int64(m.Seq))/1000, startSlack)
	}
	return nil
}

// checkTagLocked applies the rules of §9.2 that need no memory of the
// sender or of our start: the auth mode, a known key, the tag, the
// window, an incarnation not in the future. A STATE's entries pass
// these (§4.6).
func (n *Node) checkTagLocked(m Message) error {
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
	wall := n.cfg.WallClock().UnixMilli()
	if off, bad := stale(m.Seq, wall, n.cfg.Window); bad {
		return dropf(ReasonStale, "%v of %s was sent %+.1f s from our clock; accepted within ±%v (are both clocks right?)",
			m.Kind, m.ID, off, n.cfg.Window)
	}
	if off, bad := early(m.Inc, wall, n.cfg.Window); bad {
		return dropf(ReasonStale, "%v of %s has incarnation %d, a start %.1f s after our clock; accepted up to %v after",
			m.Kind, m.ID, m.Inc, off, n.cfg.Window)
	}
	return nil
}

// ownSignedLocked sorts a signed message of our own id (docs/protocol.md
// §6 step 5, §9.2): one we signed, replayed from elsewhere, is a
// replay; one newer than anything we signed is a claim, even from our
// own address; the rest, from our address, is our echo (nil).
func (n *Node) ownSignedLocked(m Message, ip netip.Addr) error {
	switch {
	case ip != n.cfg.Addr && n.seq.replayed(m.Inc, m.Seq):
		return dropf(ReasonReplay, "%v of our own (inc %d seq %d) replayed from %v", m.Kind, m.Inc, m.Seq, ip)
	case ip != n.cfg.Addr || n.seq.sentNewer(m.Inc, m.Seq):
		return dropf(ReasonOwnID, "%v carries our node_id %s, inc %d seq %d, from %v; we signed up to inc %d seq %d",
			m.Kind, m.ID, m.Inc, m.Seq, ip, n.seq.inc, n.seq.last)
	}
	return nil
}

// replyLocked has the replier answer the node at to, if Run drives us:
// by unicast of its own if to is off our subnet (§4.6).
func (n *Node) replyLocked(now time.Time, to netip.Addr) {
	switch {
	case !n.running:
	case n.tab.local(to):
		n.rep.reply(now, to)
	default:
		n.rep.replyFar(now, to)
	}
}

// refuteLocked answers a claim of our id, under incarnation claimed (0
// if plain), with an ANNOUNCE at once, at most one per AnswerEvery; with
// a key, under an incarnation above ours and the claim's
// (docs/protocol.md §5). A claim not refuted still raises our
// incarnation past it, so that our next message outranks it.
func (n *Node) refuteLocked(now time.Time, from netip.Addr, claimed uint64) {
	if !n.running || !n.rep.claim(now) {
		n.seq.outrank(claimed)
		return
	}
	n.st.refutes++
	n.seq.restart(claimed)
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
