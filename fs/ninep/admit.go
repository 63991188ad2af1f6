package ninep

import (
	"net/netip"
	"time"
)

// member is an admitted connection, as admission sees it.
type member interface {
	// idle reports whether the connection may give way to a newcomer
	// (nothing of it pending), whether it has a session (Tversion and
	// Tattach done), and since when it has been silent.
	idle() (ok, session bool, since time.Time)
}

// admission decides which connections are served: at most max in all
// and perSource from one address. When a newcomer finds either full,
// the longest silent idle connection that stands in its way gives way,
// one without a session first; when none is idle the newcomer is
// refused. A connection with a stream read pending (a `cat` of
// /cluster/events) is not idle, and counts in its source's share like
// any other. The caller serialises the calls.
type admission struct {
	max, perSource int
	members        map[member]netip.Addr
	bySource       map[netip.Addr]int
}

func newAdmission(max, perSource int) *admission {
	return &admission{max: max, perSource: perSource, members: map[member]netip.Addr{}, bySource: map[netip.Addr]int{}}
}

// admit decides for m from src. ok false: m is refused. victim non-nil:
// it has left the count and the caller must close it.
func (a *admission) admit(m member, src netip.Addr) (victim member, ok bool) {
	switch {
	case a.bySource[src] >= a.perSource:
		victim = a.oldestIdle(func(s netip.Addr) bool { return s == src })
	case len(a.members) >= a.max:
		victim = a.oldestIdle(func(netip.Addr) bool { return true })
	}
	if victim == nil && (a.bySource[src] >= a.perSource || len(a.members) >= a.max) {
		return nil, false
	}
	if victim != nil {
		a.leave(victim)
	}
	a.members[m] = src
	a.bySource[src]++
	return victim, true
}

// leave forgets m; a member already evicted is forgotten once.
func (a *admission) leave(m member) {
	src, ok := a.members[m]
	if !ok {
		return
	}
	delete(a.members, m)
	if a.bySource[src]--; a.bySource[src] <= 0 {
		delete(a.bySource, src)
	}
}

// oldestIdle picks the idle member from a source that matches: one
// without a session before one with, then the longest silent.
func (a *admission) oldestIdle(from func(netip.Addr) bool) member {
	var best member
	var bestSession bool
	var bestSince time.Time
	for m, src := range a.members {
		if !from(src) {
			continue
		}
		ok, session, since := m.idle()
		if !ok {
			continue
		}
		if best == nil || (bestSession && !session) ||
			(bestSession == session && since.Before(bestSince)) {
			best, bestSession, bestSince = m, session, since
		}
	}
	return best
}
