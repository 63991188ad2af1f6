package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"
)

// Run drives the node until ctx is done: it sends the join ANNOUNCE (if
// joined), reads datagrams in a goroutine and does everything else in one
// loop. It returns nil when ctx is done, or the error that stopped
// reading (a closed conn, say). On return the reader has stopped, unless
// conn cannot SetReadDeadline. Run does not send LEAVE.
func (n *Node) Run(ctx context.Context) error {
	if ctx.Err() != nil {
		return nil
	}
	if err := n.start(); err != nil {
		return err
	}
	defer n.stop()

	pkts := make(chan packet, 64)
	rerr := make(chan error, 1)
	go n.readLoop(ctx, pkts, rerr)

	var (
		timer Timer
		armed time.Time
	)
	stopTimer := func() {
		if timer != nil {
			timer.Stop()
			timer, armed = nil, time.Time{}
		}
	}
	defer stopTimer()
	for {
		if w := n.nextWake(); !w.Equal(armed) {
			stopTimer()
			if !w.IsZero() {
				timer, armed = n.clock.TimerAt(w), w
			}
		}
		var tc <-chan time.Time
		if timer != nil {
			tc = timer.C()
		}
		select {
		case <-ctx.Done():
			// Unblock the reader and wait for it.
			if n.conn.SetReadDeadline(time.Unix(1, 0)) == nil {
				<-rerr
				n.conn.SetReadDeadline(time.Time{})
			}
			return nil
		case err := <-rerr:
			if err == nil { // ctx is done
				return nil
			}
			return fmt.Errorf("cluster: read: %w", err)
		case p := <-pkts:
			n.handle(p.b, p.src)
		case <-tc:
			timer, armed = nil, time.Time{}
			// Datagrams already here count before thresholds due now
			// (docs/protocol.md §4.3).
			for k := len(pkts); k > 0; k-- {
				p := <-pkts
				n.handle(p.b, p.src)
			}
			n.fire()
		case <-n.kick:
		}
	}
}

// packet is a datagram read, and where from.
type packet struct {
	b   []byte
	src net.Addr
}

// readLoop reads datagrams into pkts until reading fails or ctx is done,
// then sends the error that stopped it (nil for ctx) on rerr.
func (n *Node) readLoop(ctx context.Context, pkts chan<- packet, rerr chan<- error) {
	for {
		buf := make([]byte, MaxMessageSize+1) // one more, to see oversize
		k, src, err := n.conn.ReadFrom(buf)
		if k > 0 || err == nil { // an empty datagram is malformed (§6)
			select {
			case pkts <- packet{buf[:k], src}:
			case <-ctx.Done():
			}
		}
		if err != nil || ctx.Err() != nil {
			if ctx.Err() != nil {
				err = nil
			}
			rerr <- err
			return
		}
	}
}

// The step API: Run is start, then handle and fire as datagrams and
// nextWake come, then stop. Tests call them directly with a fake clock.

// start marks the node running and, if joined, sends the join ANNOUNCE.
func (n *Node) start() (err error) {
	n.decide(true, func(res Resources) []outgoing {
		if n.running {
			err = errors.New("cluster: Run is already running")
			return nil
		}
		n.running = true
		if !n.joined {
			return nil
		}
		n.mu.logf("cluster: joined as %s (%s) at %v", n.cfg.ID, n.name, n.cfg.Addr)
		n.noteJoinedLocked()
		return n.beginLocked(n.clock.Now(), res)
	})
	return err
}

// stop marks the node not running: it sends nothing until started again.
func (n *Node) stop() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.running = false
	n.quietLocked()
}

// nextWake is when fire has work next, or the zero time for never: the
// earliest of the table's next transition and, while the node sends, its
// parts' next times.
func (n *Node) nextWake() time.Time {
	n.mu.Lock()
	defer n.mu.Unlock()
	w := n.tab.next()
	if n.activeLocked() {
		w = earliest(earliest(w, n.dueNextLocked()), n.quietAt)
	}
	return w
}

// dueNextLocked is when the schedule, the replier or the prober has
// something to send next, or the zero time.
func (n *Node) dueNextLocked() time.Time {
	return earliest(earliest(n.sched.next, n.rep.next()), earliest(n.probe.next(), n.span.next()))
}

// fire does what is due now: peers' transitions, then what the parts
// have due, if anything (dueLocked).
func (n *Node) fire() {
	now := n.clock.Now()
	n.mu.Lock()
	n.tickLocked(now, false)
	due := n.activeLocked() && reached(now, n.dueNextLocked())
	n.mu.Unlock()
	// Whatever runs between the check and decide is as if it came
	// first: dueLocked checks again.
	if due { // else no need for the resources
		n.decide(true, func(res Resources) []outgoing { return n.dueLocked(now, res) })
	}
}

// dueLocked returns what the parts have due at now, in the order it is
// sent: the periodic message, an answer or refutation, answers to
// probes, probes.
func (n *Node) dueLocked(now time.Time, res Resources) []outgoing {
	if !n.activeLocked() {
		return nil
	}
	var out []outgoing
	switch n.sched.due(now) {
	case Announce:
		out = append(out, n.toAllLocked(n.announceLocked(res))...)
		n.rep.cancel() // an ANNOUNCE answers any pending reply or refutation
	case Heartbeat:
		out = append(out, n.toAllLocked(n.heartbeat(res))...)
	}
	if a, ok := n.rep.due(now); ok {
		m := n.announceLocked(res)
		switch {
		case a.refutes: // our peers off the subnet may have heard the claim too
			out = append(out, n.toAllLocked(m)...)
		case a.to == nil:
			n.st.answers++
			out = append(out, n.toAll(m))
		default:
			n.st.answers++
		}
		// A few nodes to answer: no need to wake every other.
		for _, to := range a.to {
			out = append(out, n.toOne(to, m))
		}
	}
	if far := n.rep.dueFar(now); len(far) > 0 {
		n.st.answers++
		m := n.ownAnnounceLocked(res)
		for _, to := range far {
			out = append(out, n.toOne(to, m))
		}
	}
	out = append(out, n.spanLocked(now, res)...)
	out = append(out, n.probeAnswersLocked(now, res)...)
	return append(out, n.probesLocked(now)...)
}

// tickLocked applies the table's due transitions, logs them and has the
// peers turned quiet or suspect probed (docs/protocol.md §4.5).
func (n *Node) tickLocked(now time.Time, strict bool) {
	for _, ev := range n.tab.tick(now, strict) {
		n.logEventLocked(ev, now)
		if ev.kind == evSuspect && n.running {
			n.probe.quiet(ev.peer, now)
		}
	}
	n.findQuietLocked(now)
}
