package ninep

import (
	"context"
	"errors"
	"io/fs"
	"sync"
	"time"
)

// The request budget: a connection alone may keep the server busy all
// the time; among n > 1 connections that are using it (a request ended
// within the last budgetBurst), each may keep it busy 1/(2n) of the time
// on average, after a burst of budgetBurst: together they get half, and
// the node keeps the other half for its own work (accepting gossip)
// whoever asks (docs/guide.md "9P"). A client alone is never held back
// (a Linux `cat` is 18 requests in a row, and a fixed 1/16 made each
// wait 16 times its cost). A request's cost is the time handle takes,
// its reply included: wall time, which on a busy machine also counts the
// time a request waited, so the budget is stricter when the CPU is
// scarce.
const budgetBurst = 50 * time.Millisecond

// testNoBudget, set by benchmarks that measure what requests cost,
// lets every connection spend without waiting.
var testNoBudget bool

// budget is a connection's request budget. It is pure: the caller
// passes the time and the share.
type budget struct {
	debt time.Duration // time used and not yet paid back
	last time.Time     // of the last charge
}

// charge counts cost, the time of a request that ended at now, when
// share connections (this one included) are using the server, and
// returns how long the connection waits before its next request: 0
// within the budget, else until its debt is back to the burst. Time
// pays debt back at 1/share of its rate.
func (b *budget) charge(now time.Time, cost time.Duration, share int) time.Duration {
	share = max(share, 1)
	if !b.last.IsZero() {
		b.debt = max(0, b.debt-now.Sub(b.last)/time.Duration(share))
	}
	b.last = now
	b.debt += cost
	if testNoBudget {
		return 0
	}
	return max(0, b.debt-budgetBurst) * time.Duration(share)
}

// shareOf is the budget's share for a connection among n users: all the
// time alone, 1/(2n) among several.
func shareOf(n int) int {
	if n <= 1 {
		return 1
	}
	return 2 * n
}

// users counts the connections using a server: those whose last request
// ended within budgetBurst.
type users struct {
	mu   sync.Mutex
	last map[*conn]time.Time // +checklocks:mu
}

// used records that c's request ended at now and returns how many
// connections, c included, are using the server.
func (u *users) used(c *conn, now time.Time) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.last == nil {
		u.last = map[*conn]time.Time{}
	}
	u.last[c] = now
	n := 0
	for _, t := range u.last {
		if now.Sub(t) < budgetBurst {
			n++
		}
	}
	return n
}

// gone forgets c, closed.
func (u *users) gone(c *conn) {
	u.mu.Lock()
	delete(u.last, c)
	u.mu.Unlock()
}

// ename is the text of err for a client: Plan 9's where Plan 9 has one,
// never a Go library's ("context canceled" is "interrupted"), without
// the path an *fs.PathError adds (the client knows its fid's name).
func ename(err error) string {
	if pe, ok := errors.AsType[*fs.PathError](err); ok {
		err = pe.Err
	}
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded), errors.Is(err, fs.ErrClosed):
		return errIntr.Error()
	case errors.Is(err, fs.ErrNotExist):
		return errNotExist.Error()
	case errors.Is(err, fs.ErrPermission):
		return errPerm.Error()
	}
	return err.Error()
}
