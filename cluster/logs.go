package cluster

import (
	"errors"
	"net"
	"time"
)

// logEventLocked logs a membership change, within the peer's and the
// node's log budgets (docs/protocol.md §8.3).
func (n *Node) logEventLocked(ev event, now time.Time) {
	n.notePeerLocked(ev, now) // not rate-limited: the ring bounds it
	p := ev.peer
	logf := func(format string, args ...any) { n.limitedLogfLocked(p.ID, now, format, args...) }
	switch ev.kind {
	case evAdded:
		logf("cluster: %s (%s) joined from %v", p.ID, p.Name, p.Addr)
	case evRevived:
		if ev.oldAddr.IsValid() && ev.oldAddr != p.Addr {
			logf("cluster: %s (%s) is online again, moved from %v to %v", p.ID, p.Name, ev.oldAddr, p.Addr)
		} else {
			logf("cluster: %s (%s) is online again", p.ID, p.Name)
		}
	case evRestarted:
		logf("cluster: %s (%s) restarted (incarnation %d)", p.ID, p.Name, p.Inc)
	case evMoved:
		logf("cluster: %s (%s) is back at %v; %v had taken its id while it was dead", p.ID, p.Name, p.Addr, ev.oldAddr)
	case evLeft:
		logf("cluster: %s (%s) left", p.ID, p.Name)
	case evSuspect, evDead:
		logf("cluster: %s (%s) is %v", p.ID, p.Name, p.Status)
	case evRemoved:
		logf("cluster: %s (%s) removed", p.ID, p.Name)
	}
	if ev.oldName != "" && ev.oldName != p.Name {
		logf("cluster: %s renamed from %s to %s", p.ID, ev.oldName, p.Name)
	}
	for _, g := range ev.gone {
		n.limitedLogfLocked(g.peer.ID, now, "cluster: %s (%s) at %v removed: %s", g.peer.ID, g.peer.Name, g.peer.Addr, g.why)
	}
}

// countDropLocked counts a dropped datagram under its reason and logs
// it, at most once per reason and interval, so an operator can see what
// is being dropped and from where without a flood of junk flooding the
// log. It returns the reason. It is the one place that reads a
// *DropError, which every error of the codec and the table is; it
// counts any other error nowhere and returns numReasons.
func (n *Node) countDropLocked(err error, src net.Addr, now time.Time) Reason {
	var de *DropError
	if !errors.As(err, &de) {
		return numReasons
	}
	n.st.dropped[de.Reason]++
	if last := n.dropLogged[de.Reason]; last.IsZero() || now.Sub(last) >= n.cfg.Interval {
		n.dropLogged[de.Reason] = now
		n.limitedLogfLocked("", now, "cluster: dropped a datagram from %v: %v", src, de)
	}
	return de.Reason
}

// limitedLogfLocked logs a line about peer id ("" for none) if the log
// budgets allow it (docs/protocol.md §8.3), saying first how many lines
// were held back before it.
func (n *Node) limitedLogfLocked(id string, now time.Time, format string, args ...any) {
	ok, held := n.logLim.allow(id, now, n.cfg.Interval, n.cfg.MaxPeers)
	if !ok {
		return
	}
	if held > 0 {
		n.mu.logf("cluster: %d log lines held back (rate limit)", held)
	}
	n.mu.logf(format, args...)
}
