package cluster

import "time"

// The node's side of probes (docs/protocol.md §4.5): it finds the quiet
// peers, sends what the prober has due, acts on PROBE, ASK and RELAY,
// and counts (§8.2).

// relayFresh is how long before our wall clock a relayed signed
// HEARTBEAT may have been sent, at least: a HEARTBEAT held back and
// relayed later keeps a crashed peer for at most max(Interval,
// relayFresh) past its last message (docs/protocol.md §4.5, §10).
const relayFresh = 2 * time.Second

// probeStats are the counters of §8.2 for probes beside probes,
// probes_held, probe_answers and probe_answers_held.
type probeStats struct {
	asks          uint64 // ASKs sent
	asksHeld      uint64 // ASKs of others not acted on: budgets
	asksRefused   uint64 // ASKs of others not acted on: target not listed live
	askProbes     uint64 // PROBEs sent for others' ASKs
	relays        uint64 // RELAYs sent
	relaysRefused uint64 // RELAYs dropped (each also under its reason)
}

// findQuietLocked has the prober probe the peers quiet at now and
// records when the next one will be.
func (n *Node) findQuietLocked(now time.Time) {
	if !n.running {
		n.quietAt = time.Time{}
		return
	}
	n.quietAt = n.tab.quiet(now, n.probe.quietAfter(), func(p Peer) { n.probe.quiet(p, now) })
}

// probesLocked returns the probes and ASKs the prober has due at now,
// and the probes for others' ASKs, and counts them.
func (n *Node) probesLocked(now time.Time) []outgoing {
	after := n.probe.quietAfter()
	pick := func(k int, except string) []Peer {
		return pickHelpers(n.cfg.Rand, k, n.tab.helpers(now, after, except))
	}
	due, asks, held := n.probe.probes(now, len(n.tab.peers), n.tab.get, pick)
	n.st.probesHeld += held
	n.st.probes += uint64(len(due))
	n.st.asks += uint64(len(asks))
	var out []outgoing
	for _, p := range due {
		out = append(out, n.toOne(p.Addr, Message{Kind: Probe, ID: n.cfg.ID, To: p.ID}))
	}
	for _, a := range asks {
		out = append(out, n.toOne(a.helper.Addr, Message{Kind: Ask, ID: n.cfg.ID, To: a.target}))
	}
	for _, p := range n.probe.helpProbes(now) {
		n.st.askProbes++
		out = append(out, n.toOne(p.Addr, Message{Kind: Probe, ID: n.cfg.ID, To: p.ID}))
	}
	for _, r := range n.probe.relays(now) {
		n.st.relays++
		hb := r.hb
		out = append(out, n.toOne(r.to, Message{Kind: Relay, ID: n.cfg.ID, Relayed: &hb}))
	}
	return out
}

// probeAnswersLocked returns the answers to probes due at now: our
// HEARTBEAT to each prober.
func (n *Node) probeAnswersLocked(now time.Time, res Resources) []outgoing {
	to := n.probe.answers(now)
	if to == nil {
		return nil
	}
	hb := n.heartbeat(res)
	var out []outgoing
	for _, a := range to {
		out = append(out, n.toOne(a, hb))
	}
	n.st.probeAnswers += uint64(len(out))
	return out
}

// probeHeardLocked acts on a message m of from, just accepted at now: it
// is heard, so no longer probed; a PROBE is answered, an ASK taken, a
// HEARTBEAT relayed to whoever asked us about its sender.
func (n *Node) probeHeardLocked(m Message, from Peer, now time.Time) {
	n.probe.forget(from.ID)
	if !n.running {
		return
	}
	peers := len(n.tab.peers)
	switch m.Kind {
	case Probe:
		if n.probe.answer(from, peers, now) {
			n.st.probeAnswersHeld++
		}
	case Ask:
		t, ok := n.tab.get(m.To)
		switch {
		case !ok || t.Status == Dead || t.msgs < probeAfter:
			n.st.asksRefused++
		case n.probe.asked(from, t, peers, now):
			n.st.asksHeld++
		}
	case Heartbeat:
		if m.Keyed() == n.signs() { // a RELAY is signed iff what it carries is
			n.probe.heard(m, now)
		}
	}
}

// signs reports whether what we send is signed.
func (n *Node) signs() bool {
	_, ok := n.ring.signer()
	return n.auth != AuthPlain && ok
}

// checkRelayLocked checks the HEARTBEAT a valid RELAY m carries before
// anything of m counts (docs/protocol.md §4.5): one we asked its sender
// for, signed as the auth mode and the peer require, with a good tag,
// and sent recently by our clock.
func (n *Node) checkRelayLocked(m Message, now time.Time) error {
	r := *m.Relayed
	if _, ok := n.probe.vouches(r.ID, m.ID); !ok {
		return dropf(ReasonUnasked, "RELAY from %s of a HEARTBEAT of %s, which we did not ask it about", m.ID, r.ID)
	}
	if err := n.checkSignedLocked(r, now); err != nil {
		return err
	}
	if !r.Keyed() && n.auth == AuthMixed && n.tab.remembers(r.ID) {
		return dropf(ReasonUnkeyed, "RELAY from %s of a HEARTBEAT of %s, not signed, and %s was heard signed", m.ID, r.ID, r.ID)
	}
	fresh := max(n.cfg.Interval, relayFresh).Milliseconds()
	if wall := n.cfg.WallClock().UnixMilli(); r.Keyed() && int64(r.Seq) < wall-fresh {
		return dropf(ReasonStale, "RELAY from %s of a HEARTBEAT of %s sent %.3f s ago; relayed ones count up to %d ms",
			m.ID, r.ID, float64(wall-int64(r.Seq))/1000, fresh)
	}
	return n.tab.vouchable(r, now)
}

// vouchLocked applies the HEARTBEAT a RELAY m carries, checked by
// checkRelayLocked, now that m itself is accepted (docs/protocol.md
// §4.5).
func (n *Node) vouchLocked(m Message, now time.Time) {
	at, _ := n.probe.vouches(m.Relayed.ID, m.ID)
	ev := n.tab.vouch(*m.Relayed, at)
	n.logEventLocked(ev, now)
	n.probe.forget(ev.peer.ID)
}
