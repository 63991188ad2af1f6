package cluster

import (
	"context"
	"fmt"
	"io/fs"
	"sync"
	"time"

	"fornax/fs/file"
)

// EventBacklog is how many membership events /cluster/events keeps for
// its readers; a reader that falls further behind loses the oldest ones
// (docs/protocol.md §8.4).
const EventBacklog = 256

// eventRing is the backlog of /cluster/events: the last EventBacklog
// event lines and a way to wake the readers waiting for the next one.
// The node appends under its own lock; readers take only the ring's, so
// nothing a reader does can hold the node up.
type eventRing struct {
	start time.Time // the node's creation, by its Clock: time 0 of the lines

	mu    sync.Mutex
	lines [EventBacklog]string
	next  uint64        // events ever appended; the next one's number
	lost  uint64        // events readers lost, all readers together
	wake  chan struct{} // closed at the next append; nil until a reader waits
}

func newEventRing(start time.Time) *eventRing { return &eventRing{start: start} }

// add appends one event line: "<seconds.ms> <id> <what>".
func (r *eventRing) add(now time.Time, id, what string) {
	d := max(now.Sub(r.start), 0)
	line := fmt.Sprintf("%d.%03d %s %s\n", d/time.Second, d%time.Second/time.Millisecond, id, what)
	r.mu.Lock()
	r.lines[r.next%EventBacklog] = line
	r.next++
	if r.wake != nil {
		close(r.wake)
		r.wake = nil
	}
	r.mu.Unlock()
}

// lostTotal is how many events readers have lost, all together: each
// reader counts for the events it missed (docs/protocol.md §8.2).
func (r *eventRing) lostTotal() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lost
}

// noteJoinedLocked records our own join.
func (n *Node) noteJoinedLocked() {
	n.events.add(n.clock.Now(), n.cfg.ID, fmt.Sprintf("joined %s %v", n.name, n.cfg.Addr))
}

// noteSelfLocked records a change of our own: "left", "renamed <name>".
func (n *Node) noteSelfLocked(what string) { n.events.add(n.clock.Now(), n.cfg.ID, what) }

// notePeerLocked records what a table event did to a peer; a refresh
// that changed nothing records nothing.
func (n *Node) notePeerLocked(ev event, now time.Time) {
	for _, g := range ev.gone {
		n.events.add(now, g.peer.ID, g.why) // "replaced by <id>" or "evicted"
	}
	p := &ev.peer
	switch ev.kind {
	case evAdded:
		n.events.add(now, p.ID, fmt.Sprintf("joined %s %v", p.Name, p.Addr))
	case evRevived:
		n.events.add(now, p.ID, fmt.Sprintf("online %s %v", p.Name, p.Addr))
	case evRestarted:
		n.events.add(now, p.ID, fmt.Sprintf("restarted %s %v", p.Name, p.Addr))
	case evMoved:
		n.events.add(now, p.ID, fmt.Sprintf("moved %s %v", p.Name, p.Addr))
	case evLeft:
		n.events.add(now, p.ID, "left")
	case evSuspect:
		n.events.add(now, p.ID, "suspect")
	case evDead:
		n.events.add(now, p.ID, "dead")
	case evRemoved:
		n.events.add(now, p.ID, "removed")
	}
	if ev.kind != evAdded && ev.oldName != "" && ev.oldName != p.Name {
		n.events.add(now, p.ID, "renamed "+p.Name)
	}
}

// eventStream is one open of /cluster/events: its own cursor in the ring.
type eventStream struct {
	r      *eventRing
	pos    uint64 // number of the next event to read; under r.mu
	lost   uint64 // events lost and not yet reported; under r.mu
	closed chan struct{}
	once   sync.Once
}

// open starts a stream at now: it reads the events that come after.
func (r *eventRing) open() *eventStream {
	r.mu.Lock()
	defer r.mu.Unlock()
	return &eventStream{r: r, pos: r.next, closed: make(chan struct{})}
}

func (s *eventStream) close() { s.once.Do(func() { close(s.closed) }) }

// read blocks until at least one event line is there, or ctx is done,
// or the stream is closed; then it fills p with as many whole lines as
// fit. A reader fallen more than EventBacklog events behind gets
// "lost N events" first.
func (s *eventStream) read(ctx context.Context, p []byte) (int, error) {
	r := s.r
	for {
		select {
		case <-s.closed:
			return 0, fs.ErrClosed
		default:
		}
		r.mu.Lock()
		if r.next-s.pos > EventBacklog {
			s.lost += r.next - EventBacklog - s.pos
			r.lost += r.next - EventBacklog - s.pos
			s.pos = r.next - EventBacklog
		}
		n, next := 0, 0
		if s.lost > 0 {
			l := fmt.Sprintf("lost %d events\n", s.lost)
			if next = len(l); next <= len(p) {
				n = copy(p, l)
				s.lost, next = 0, 0
			}
		}
		for next == 0 && s.pos < r.next {
			l := r.lines[s.pos%EventBacklog]
			if n+len(l) > len(p) {
				next = len(l)
				break
			}
			n += copy(p[n:], l)
			s.pos++
		}
		var wake chan struct{}
		if n == 0 && next == 0 {
			if r.wake == nil {
				r.wake = make(chan struct{})
			}
			wake = r.wake
		}
		r.mu.Unlock()
		switch {
		case n > 0:
			return n, nil
		case next > 0:
			return 0, fmt.Errorf("read buffer too small: %d bytes, line is %d", len(p), next)
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-s.closed:
			return 0, fs.ErrClosed
		}
	}
}

// OpenStream opens a file that is read as a stream: only "events"
// (docs/protocol.md §8.4). Each open reads the events that come after it.
// read blocks until at least one whole line is there or ctx is done (then
// it returns ctx.Err()), and returns whole lines only; a p too small for
// the next line is an error. close ends the stream: a read blocked in it
// returns fs.ErrClosed. Any other name fails with an error wrapping
// file.ErrNotStream; ReadFile of "events" gives the empty snapshot.
func (t *Tree) OpenStream(name string) (read func(ctx context.Context, p []byte) (int, error), close func(), err error) {
	if name != "events" {
		return nil, nil, &fs.PathError{Op: "open", Path: name, Err: file.ErrNotStream}
	}
	s := t.n.events.open()
	return s.read, s.close, nil
}
