package cluster

import (
	"strings"
	"time"
)

// timers holds one deadline per key, earliest first: a binary heap that
// knows where each key sits, so that setting, removing and finding the
// earliest deadline cost O(log n) whatever the order of the times. The
// node keeps each suspect peer's next probe here, so that it does not
// scan its suspects when one is due (docs/scale.md). The zero value is
// empty and ready to use.
type timers struct {
	h   []*timer
	pos map[string]*timer
}

type timer struct {
	key string
	at  time.Time
	i   int // index in h
}

// less orders by time, then key, so that equal times come out in a fixed
// order.
func (t *timers) less(i, j int) bool {
	a, b := t.h[i], t.h[j]
	if c := a.at.Compare(b.at); c != 0 {
		return c < 0
	}
	return strings.Compare(a.key, b.key) < 0
}

func (t *timers) swap(i, j int) {
	t.h[i], t.h[j] = t.h[j], t.h[i]
	t.h[i].i, t.h[j].i = i, j
}

func (t *timers) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !t.less(i, p) {
			return
		}
		t.swap(i, p)
		i = p
	}
}

func (t *timers) down(i int) {
	for {
		c := 2*i + 1
		if c >= len(t.h) {
			return
		}
		if r := c + 1; r < len(t.h) && t.less(r, c) {
			c = r
		}
		if !t.less(c, i) {
			return
		}
		t.swap(i, c)
		i = c
	}
}

// set makes at the deadline of key, adding key if it is new.
func (t *timers) set(key string, at time.Time) {
	if e, ok := t.pos[key]; ok {
		e.at = at
		t.up(e.i)
		t.down(e.i)
		return
	}
	if t.pos == nil {
		t.pos = make(map[string]*timer)
	}
	e := &timer{key, at, len(t.h)}
	t.h = append(t.h, e)
	t.pos[key] = e
	t.up(e.i)
}

// remove forgets key's deadline, if it has one.
func (t *timers) remove(key string) {
	e, ok := t.pos[key]
	if !ok {
		return
	}
	i, last := e.i, len(t.h)-1
	if i != last {
		t.swap(i, last)
	}
	t.h[last] = nil
	t.h = t.h[:last]
	delete(t.pos, key)
	if i != last {
		m := t.h[i]
		t.up(i)
		t.down(m.i)
	}
}

// min returns the earliest deadline and its key; ok is false when there
// is none.
func (t *timers) min() (key string, at time.Time, ok bool) {
	if len(t.h) == 0 {
		return "", time.Time{}, false
	}
	return t.h[0].key, t.h[0].at, true
}

// next is the earliest deadline, or the zero time when there is none.
func (t *timers) next() time.Time {
	_, at, _ := t.min()
	return at
}

// reset forgets every deadline.
func (t *timers) reset() {
	clear(t.h)
	t.h = t.h[:0]
	clear(t.pos)
}
