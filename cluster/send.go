package cluster

import (
	"net"
	"net/netip"
	"time"
)

// outgoing is a message and where it goes: the broadcast address or one
// node's.
type outgoing struct {
	to *net.UDPAddr
	m  Message
}

// toAll sends m to the broadcast address.
func (n *Node) toAll(m Message) outgoing { return outgoing{n.dst, m} }

// toOne sends m to port Port of a alone.
func (n *Node) toOne(a netip.Addr, m Message) outgoing {
	return outgoing{net.UDPAddrFromAddrPort(netip.AddrPortFrom(a, uint16(n.cfg.Port))), m}
}

// toAllLocked sends m to the broadcast address and, by unicast, to
// every peer the table lists off our subnet, which the broadcast does
// not reach (docs/protocol.md §4.6).
func (n *Node) toAllLocked(m Message) []outgoing {
	out := make([]outgoing, 0, 1+len(n.tab.remote))
	out = append(out, n.toAll(m))
	for _, p := range n.tab.remote {
		out = append(out, n.toOne(p.Addr, m))
	}
	return out
}

// beginLocked starts the periodic schedule at now and returns the join:
// unless NoJoinSync (which a node with seeds ignores) the broadcast SYNC
// that asks one peer for the state (docs/protocol.md §4.6), then the
// ANNOUNCE, message 0 of the schedule. The seeds are tried by fire.
func (n *Node) beginLocked(now time.Time, res Resources) []outgoing {
	n.sched.begin(now)
	n.rep.cancel()
	sync := !n.cfg.NoJoinSync || n.spans()
	n.span.begin(now, sync)
	var out []outgoing
	if sync {
		// The SYNC first: the peer that answers it need not wait for
		// every node of the subnet to take in our ANNOUNCE (§4.6).
		n.st.syncs++
		out = append(out, n.toAll(Message{Kind: Sync, ID: n.cfg.ID, Addr: n.tab.bcast}))
	}
	return append(out, n.toAllLocked(n.announceLocked(res))...)
}

// announceLocked builds our ANNOUNCE; it is sent at once.
func (n *Node) announceLocked(res Resources) Message {
	n.rep.announced(n.clock.Now())
	return n.ownAnnounceLocked(res)
}

// ownAnnounceLocked builds our ANNOUNCE without counting it as one sent
// to all (§4.1): for introductions and our entry of a STATE (§4.6).
func (n *Node) ownAnnounceLocked(res Resources) Message {
	return Message{Kind: Announce, ID: n.cfg.ID, Addr: n.cfg.Addr, Name: n.name,
		CPUs: res.CPUs, MemTotal: res.MemTotal, MemFree: res.MemFree, Containers: n.reg.Len()}
}

// heartbeat builds our HEARTBEAT.
func (n *Node) heartbeat(res Resources) Message {
	return Message{Kind: Heartbeat, ID: n.cfg.ID, Load: LoadOf(res.Load),
		MemFree: res.MemFree, Containers: n.reg.Len()}
}

// resources calls cfg.Resources and clamps what it returns to the ranges
// of docs/protocol.md §3.
func (n *Node) resources() Resources {
	r := n.cfg.Resources()
	r.CPUs = min(max(r.CPUs, 1), maxCPUs)
	r.MemFree = min(r.MemFree, r.MemTotal)
	return r
}

// sendAll writes out, in order, each message signed unless the auth
// mode is plain. The caller holds sendMu and not mu.
func (n *Node) sendAll(out []outgoing) {
	for _, o := range out {
		m := o.m
		n.mu.Lock()
		if m.Kind == State {
			// Our own entry is signed now, just before the STATE, so
			// that its seq comes after everything sent before it.
			m.State = n.signEntriesLocked(m.State)
		}
		n.signLocked(&m)
		n.mu.Unlock()
		err := m.Validate()
		if err == nil {
			_, err = n.conn.WriteTo(m.Append(nil), o.to)
		}
		n.mu.Lock()
		if err != nil {
			n.st.sendErrors++
			n.mu.logf("cluster: send %v: %v", m.Kind, err)
		} else {
			n.st.sent++
			n.st.sentKind[m.Kind]++
		}
		n.mu.Unlock()
	}
}

// signLocked signs m with the primary key, under the incarnation and
// seq the sequencer gives for the wall clock now (docs/protocol.md §9.1).
func (n *Node) signLocked(m *Message) {
	s, ok := n.ring.signer()
	if n.auth == AuthPlain || !ok {
		return
	}
	inc, seq := n.seq.next(n.cfg.WallClock().UnixMilli())
	s.sign(m, inc, seq)
}
