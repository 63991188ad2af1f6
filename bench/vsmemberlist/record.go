package main

import (
	"slices"
	"sync"
	"time"
)

// What an observer saw happen to a target.
const (
	sawJoined  = "joined"  // listed it (Fornax: joined; memberlist: NotifyJoin)
	sawLeft    = "left"    // removed it on its LEAVE (Fornax)
	sawSuspect = "suspect" // marked it suspect
	sawDead    = "dead"    // marked it dead (Fornax)
	sawGone    = "gone"    // memberlist's NotifyLeave: left or dead
	sawOnline  = "online"  // Fornax: a suspect or dead peer heard again
)

// anyTarget is the target of an observation that does not say whom it is
// about: memberlist counts a suspicion in its metrics without the node.
const anyTarget = "*"

type observation struct {
	observer int // node index
	target   string
	what     string
	at       time.Time
}

// recorder collects observations from every node while it is on; off, it
// keeps nothing, so that bringing N nodes up does not fill it (or the
// heap measured then).
type recorder struct {
	mu  sync.Mutex
	on  bool
	obs []observation
}

func (r *recorder) add(observer int, target, what string, at time.Time) {
	r.mu.Lock()
	if r.on {
		r.obs = append(r.obs, observation{observer, target, what, at})
	}
	r.mu.Unlock()
}

// start clears the record and turns it on.
func (r *recorder) start() {
	r.mu.Lock()
	r.on, r.obs = true, nil
	r.mu.Unlock()
}

// stop turns the record off and returns what it holds.
func (r *recorder) stop() []observation {
	r.mu.Lock()
	defer r.mu.Unlock()
	obs := r.obs
	r.on, r.obs = false, nil
	return obs
}

// first returns, per observer of observers, the earliest time at or after
// since it saw target (or anyTarget) become one of whats; observers that
// did not are absent.
func (r *recorder) first(observers []int, target string, whats []string, since time.Time) map[int]time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return firstSeen(r.obs, observers, target, whats, since)
}

func firstSeen(obs []observation, observers []int, target string, whats []string, since time.Time) map[int]time.Time {
	want := make(map[int]bool, len(observers))
	for _, k := range observers {
		want[k] = true
	}
	seen := make(map[int]time.Time)
	for _, o := range obs {
		if o.at.Before(since) || (o.target != target && o.target != anyTarget) ||
			!slices.Contains(whats, o.what) || !want[o.observer] {
			continue
		}
		if t, ok := seen[o.observer]; !ok || o.at.Before(t) {
			seen[o.observer] = o.at
		}
	}
	return seen
}

// waitAll waits until every one of observers saw target become one of
// whats after since, or until timeout. It returns the time from since to
// the last of them, and how many saw it (len(observers) when all did).
func (r *recorder) waitAll(observers []int, target string, whats []string, since time.Time, timeout time.Duration) (time.Duration, int) {
	end := time.Now().Add(timeout)
	for {
		seen := r.first(observers, target, whats, since)
		if len(seen) == len(observers) || time.Now().After(end) {
			var last time.Time
			for _, t := range seen {
				if t.After(last) {
					last = t
				}
			}
			if len(seen) == 0 {
				return 0, 0
			}
			return last.Sub(since), len(seen)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// listed returns when observer k first listed each target, at or after since.
func (r *recorder) listed(k int, since time.Time) map[string]time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := make(map[string]time.Time)
	for _, o := range r.obs {
		if o.observer != k || o.what != sawJoined || o.at.Before(since) {
			continue
		}
		if t, ok := seen[o.target]; !ok || o.at.Before(t) {
			seen[o.target] = o.at
		}
	}
	return seen
}
