package cluster

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// countSource counts the replier's draws; Int64N of a constant 1 is 0,
// so every jitter is 0.
type countSource struct{ n int }

func (c *countSource) Uint64() uint64 { c.n++; return 1 }

// TestReplier drives a replier (AnswerEvery 1 s, Interval 5 s) through
// fast-join replies, one by one and by broadcast, refutations and
// prompts (docs/protocol.md §4.1, §5). Each step is one call at a time:
//
//	sent             announced: we sent an ANNOUNCE
//	reply a b ...    reply to each of 10.0.0.a, 10.0.0.b, ...
//	claim            claim of our node_id: want "true" if a refutation is now pending
//	prompt           unknown HEARTBEAT: want "true" if it draws a reply
//	due              want "none", "all", "refute" or the addresses answered one by one
//	cancel, cancelReply
//
// next is r.next() after the step, -1 for none.
func TestReplier(t *testing.T) {
	src := &countSource{}
	r := replier{every: s, interval: 5 * s, jitter: 200 * ms, rng: rand.New(src)}
	none := time.Duration(-1)
	for i, c := range []struct {
		at   time.Duration
		op   string
		want string
		next time.Duration
	}{
		{0, "sent", "", none},
		// No reply sooner than AnswerEvery after our ANNOUNCE; one per node.
		{100 * ms, "reply 2", "", s},
		{200 * ms, "reply 3 2", "", s},
		{999 * ms, "due", "none", s},
		{s, "due", "10.0.0.2 10.0.0.3", none},
		{s, "sent", "", none},
		// A fifth node makes it one broadcast.
		{1500 * ms, "reply 4 5 6 7", "", 2 * s},
		{1600 * ms, "reply 8", "", 2 * s},
		{1700 * ms, "reply 9", "", 2 * s},
		{2 * s, "due", "all", none},
		{2 * s, "sent", "", none},
		// The next broadcast waits an Interval from the last.
		{2500 * ms, "reply 2 3 4 5 6", "", 7 * s},
		{6999 * ms, "due", "none", 7 * s},
		{7 * s, "due", "all", none},
		// A late ANNOUNCE of ours puts the reply after it.
		{7100 * ms, "sent", "", none},
		{7100 * ms, "reply 2", "", 8100 * ms},
		{7100 * ms, "cancelReply", "", none},
		// One refutation at a time, one per AnswerEvery.
		{8 * s, "claim", "true", 8 * s},
		{8 * s, "claim", "false", 8 * s},
		{8 * s, "due", "refute", none},
		{8500 * ms, "claim", "false", none},
		{9 * s, "claim", "true", 9 * s},
		// A refutation due with a reply answers it.
		{9 * s, "reply 2", "", 9 * s},
		{9200 * ms, "due", "refute", none},
		{9300 * ms, "due", "none", none},
		{10 * s, "claim", "true", 10 * s},
		{10 * s, "reply 2", "", 10 * s},
		{10 * s, "cancel", "", none},
		// An unknown HEARTBEAT prompts a reply once per Interval.
		{11 * s, "prompt", "true", none},
		{15999 * ms, "prompt", "false", none},
		{16 * s, "prompt", "true", none},
	} {
		now := t0.Add(c.at)
		op, args, _ := strings.Cut(c.op, " ")
		got := ""
		switch op {
		case "sent":
			r.announced(now)
		case "reply":
			for _, a := range strings.Fields(args) {
				r.reply(now, netip.MustParseAddr("10.0.0."+a))
			}
		case "claim":
			got = fmt.Sprint(r.claim(now))
		case "prompt":
			got = fmt.Sprint(r.prompted(now))
		case "due":
			a, ok := r.due(now)
			switch {
			case !ok:
				got = "none"
			case a.refutes:
				got = "refute"
			case a.to == nil:
				got = "all"
			default:
				got = strings.Trim(fmt.Sprint(a.to), "[]")
			}
		case "cancel":
			r.cancel()
		case "cancelReply":
			r.cancelReply()
		default:
			t.Fatalf("step %d: bad op %q", i, c.op)
		}
		next := none
		if w := r.next(); !w.IsZero() {
			next = w.Sub(t0)
		}
		if got != c.want || next != c.next {
			t.Errorf("step %d at %v: %s: %q, next %v; want %q, next %v", i, c.at, c.op, got, next, c.want, c.next)
		}
	}
	// One jitter drawn per reply scheduled, none for the nodes added to it.
	if src.n != 6 {
		t.Errorf("%d draws, want 6", src.n)
	}
}
