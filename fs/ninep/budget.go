package ninep

import (
	"context"
	"errors"
	"io/fs"
	"time"
)

// The request budget: a connection may keep the server busy for at
// most 1/budgetShare of the time on average, after a burst of
// budgetBurst, so that one client looping on requests cannot take the
// CPU from the others and from the node (docs/guide.md "9P"). A
// request's cost is the time handle takes, its reply included: wall
// time, which on a busy machine also counts the time a request waited,
// so the budget is stricter when the CPU is scarce.
const (
	budgetShare = 16 // a connection's share of one CPU: 1/16, one of MaxConns
	budgetBurst = 50 * time.Millisecond
)

// testNoBudget, set by benchmarks that measure what requests cost,
// lets every connection spend without waiting.
var testNoBudget bool

// budget is a connection's request budget. It is pure: the caller
// passes the time.
type budget struct {
	debt time.Duration // time used and not yet paid back
	last time.Time     // of the last charge
}

// charge counts cost, the time of a request that ended at now, and
// returns how long the connection waits before its next request: 0
// within the budget, else until its debt is back to the burst.
func (b *budget) charge(now time.Time, cost time.Duration) time.Duration {
	if !b.last.IsZero() {
		b.debt = max(0, b.debt-now.Sub(b.last)/budgetShare)
	}
	b.last = now
	b.debt += cost
	if testNoBudget {
		return 0
	}
	return max(0, b.debt-budgetBurst) * budgetShare
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
