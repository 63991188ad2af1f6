package cluster

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// suspects is a table stand-in for the prober: peers by id.
type suspects map[string]Peer

func (ps suspects) get(id string) (Peer, bool) { p, ok := ps[id]; return p, ok }

// add lists a suspect peer 0000000<i> at 10.0.0.<i>, heard msgs times,
// last at heard.
func (ps suspects) add(i, msgs int, heard time.Duration) Peer {
	p := Peer{ID: fmt.Sprintf("%08x", i), Addr: netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}),
		Status: Suspect, LastHeard: t0.Add(heard), msgs: msgs}
	ps[p.ID] = p
	return p
}

func ids(ps []Peer) string {
	var l []string
	for _, p := range ps {
		l = append(l, p.ID[6:])
	}
	return strings.Join(l, " ")
}

// noHelpers is a pick that finds no helper.
func noHelpers(int, string) []Peer { return nil }

// TestProberProbes: with Interval 5 s, a quiet peer heard twice is
// probed at once, then every second until it is heard or dead, within the
// node-wide budget of 10 probes at once and then 2 a second, those
// closest to dead first (docs/protocol.md §4.5).
func TestProberProbes(t *testing.T) {
	pr := prober{interval: 5 * s, maxPeers: 100}
	ps := suspects{}
	pr.quiet(ps.add(1, 1, 0), t0) // heard once: not probed
	for i := 2; i <= 13; i++ {
		pr.quiet(ps.add(i, 2, -time.Duration(i)*ms), t0)
	}
	for i, c := range []struct {
		at   time.Duration
		edit func()
		want string // ids probed, by their last two digits
		held uint64
		next time.Duration
	}{
		{at: 0, want: "0d 0c 0b 0a 09 08 07 06 05 04", held: 2, next: s},
		{at: 999 * ms, next: s},
		{at: s, want: "0d 0c", held: 10, next: 2 * s},
		// 0d is heard again, 0c gone: probed no more.
		{at: 2 * s, edit: func() {
			p := ps["0000000d"]
			p.Status, p.LastHeard = Online, t0.Add(1500*ms)
			ps[p.ID] = p
			delete(ps, "0000000c")
		}, want: "0b 0a", held: 8, next: 3 * s},
		{at: 3 * s, edit: func() {
			for i := 2; i <= 9; i++ {
				pr.forget(fmt.Sprintf("%08x", i))
			}
		}, want: "0b 0a", next: 4 * s},
		{at: 10 * s, want: "0b 0a", next: 11 * s},
	} {
		now := t0.Add(c.at)
		if c.edit != nil {
			c.edit()
		}
		due, asks, held := pr.probes(now, 0, ps.get, noHelpers)
		if got := ids(due); got != c.want || held != c.held || !pr.next().Equal(t0.Add(c.next)) || len(asks) != 0 {
			t.Errorf("step %d at %v: probed %q, held %d, next %v; want %q, %d, %v",
				i, c.at, got, held, pr.next().Sub(t0), c.want, c.held, c.next)
		}
	}
	pr.reset()
	if due, _, _ := pr.probes(t0.Add(20*s), 0, ps.get, noHelpers); len(due) != 0 || !pr.next().IsZero() {
		t.Errorf("after reset: %v, next %v", ids(due), pr.next())
	}
}

// TestProberAnswers: each probe is answered once, within the peer's
// budget (2 at once, then one a second with Interval 5 s) and the
// node's (16 at once); the answers are due at once
// (docs/protocol.md §4.5).
func TestProberAnswers(t *testing.T) {
	pr := prober{interval: 5 * s, maxPeers: 10}
	ps := suspects{}
	for i, c := range []struct {
		at    time.Duration
		from  []int  // probes from these peers
		want  string // held (h) or not (-), one per probe
		to    string // then the answers due, by last byte of address
		next  time.Duration
		inner bool // check next before taking the answers
	}{
		{at: 0, from: []int{2, 2}, want: "--", to: "2"},
		{at: 0, from: []int{2}, want: "-", to: "2"},
		{at: 0, from: []int{2}, want: "h", to: ""},
		{at: 999 * ms, from: []int{2}, want: "h", to: ""},
		{at: s, from: []int{2, 3}, want: "--", to: "2 3", next: s, inner: true},
		// 16 at once node-wide, 2 taken already: 14 more.
		{at: s, from: []int{10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25},
			want: "--------------hh", to: "10 11 12 13 14 15 16 17 18 19 20 21 22 23"},
	} {
		now := t0.Add(c.at)
		got := ""
		for _, id := range c.from {
			p, ok := ps["0000"+fmt.Sprintf("%04x", id)]
			if !ok {
				p = ps.add(id, 2, 0)
			}
			if pr.answer(p, 0, now) {
				got += "h"
			} else {
				got += "-"
			}
		}
		if c.inner && !pr.next().Equal(t0.Add(c.next)) {
			t.Errorf("step %d: next %v, want %v", i, pr.next().Sub(t0), c.next)
		}
		var to []string
		for _, a := range pr.answers(now) {
			to = append(to, fmt.Sprint(a.As4()[3]))
		}
		if got != c.want || strings.Join(to, " ") != c.to || !pr.next().IsZero() {
			t.Errorf("step %d at %v: %q, answers %q, next %v; want %q, %q", i, c.at, got, to, pr.next(), c.want, c.to)
		}
	}
}

// TestProberPeerBudgets: the per-peer budgets are forgotten once they
// are more than twice MaxPeers, so a flood of ids cannot grow them.
func TestProberPeerBudgets(t *testing.T) {
	pr := prober{interval: 5 * s, maxPeers: 1}
	ps := suspects{}
	a := ps.add(2, 2, 0)
	for range 2 {
		pr.answer(a, 0, t0)
		pr.answers(t0)
	}
	if !pr.answer(a, 0, t0) {
		t.Fatal("a third probe at once is answered")
	}
	pr.answer(ps.add(3, 2, 0), 0, t0)
	pr.answer(ps.add(4, 2, 0), 0, t0)
	pr.answers(t0)
	if pr.answer(a, 0, t0) || len(pr.answerPeer) != 1 {
		t.Errorf("budgets of %d peers kept", len(pr.answerPeer))
	}
	pr.reset()
	if to := pr.answers(t0); to != nil || !pr.next().IsZero() {
		t.Errorf("after reset: %v", to)
	}
}
