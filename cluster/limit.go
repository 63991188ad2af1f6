package cluster

import "time"

// bucket is a token bucket: burst tokens, refilled at one per every.
// Pure: the caller passes the time.
type bucket struct {
	tokens float64
	last   time.Time
}

// take spends a token if there is one.
func (b *bucket) take(now time.Time, burst int, every time.Duration) bool {
	if b.last.IsZero() {
		b.tokens = float64(burst)
	} else if d := now.Sub(b.last); d > 0 {
		b.tokens = min(float64(burst), b.tokens+float64(d)/float64(every))
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// Log budgets (docs/protocol.md §8.3): a storm of datagrams cannot flush
// /dev/kmesg. Every line about peers or drops takes a token of the node's
// bucket; a line about one peer also takes one of that peer's.
const (
	logBurst     = 64          // lines at once, node-wide
	logEvery     = time.Second // then one line per second
	peerLogBurst = 4           // lines at once about one peer
	// one more per Interval
)

// logLimiter decides which lines about peers and drops are written.
type logLimiter struct {
	all        bucket
	peers      map[string]*bucket
	suppressed uint64 // lines not written since the last summary
	total      uint64 // lines not written, ever (stats)
}

// allow reports whether a line about id (or about no peer, "") may be
// written now. When it may and lines were suppressed before it, summary
// says how many.
func (l *logLimiter) allow(id string, now time.Time, interval time.Duration, maxPeers int) (ok bool, summary uint64) {
	if id != "" {
		if l.peers == nil || len(l.peers) > 2*maxPeers {
			l.peers = make(map[string]*bucket) // bounded: forget the budgets
		}
		b := l.peers[id]
		if b == nil {
			b = new(bucket)
			l.peers[id] = b
		}
		if !b.take(now, peerLogBurst, interval) {
			l.suppressed++
			l.total++
			return false, 0
		}
	}
	if !l.all.take(now, logBurst, logEvery) {
		l.suppressed++
		l.total++
		return false, 0
	}
	summary, l.suppressed = l.suppressed, 0
	return true, summary
}
