package mdns

import (
	"net/netip"
	"slices"
	"strings"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// Limits on what is read (RFC 6762 §17: 9000 bytes at most); beyond
// them a datagram is dropped whole.
const (
	maxIn      = 9000
	maxQuests  = 64
	maxRecords = 256
)

// Stats are the responder's counters. A datagram dropped is counted
// under one reason and changes nothing else.
type Stats struct {
	Received      uint64 // datagrams read, including those dropped
	Sent          uint64 // datagrams sent
	Unsent        uint64 // answers that did not fit a packet, not sent
	Queries       uint64 // queries taken in
	Answered      uint64 // answers sent (multicast, unicast, legacy)
	Legacy        uint64 // legacy unicast queries answered (§6.7)
	Suppressed    uint64 // records left out as known answers (§7.1)
	RateLimited   uint64 // records left out: multicast less than 1 s ago (§6)
	Probes        uint64
	Announcements uint64
	Goodbyes      uint64
	Conflicts     uint64 // names lost (§9)
	TieLost       uint64 // simultaneous probes lost (§8.2)

	Own       uint64 // our own multicasts, looped back: ignored
	Malformed uint64 // not a DNS message (bad lengths, compression loops ...)
	Oversize  uint64 // more than 9000 bytes
	TooMany   uint64 // more than 64 questions or 256 records
	Offlink   uint64 // from outside the link (§11)
	Ignored   uint64 // an opcode or rcode not 0 (§18.3, §18.11)
}

// pending are multicast answers waiting for their random delay (§6).
type pending struct {
	at  time.Time
	set uint64 // bit i: r.recs[i]
}

// question is one question of a query, what the responder makes of it.
type question struct {
	name string
	typ  dnsmessage.Type
	qu   bool
}

// Receive takes one datagram from src and returns what to send: an
// answer to a query, nothing for a response (but a conflict with our
// names makes the responder probe another name, §9).
func (r *Responder) Receive(now time.Time, src netip.AddrPort, b []byte) []Packet {
	r.stats.Received++
	switch {
	case len(b) > maxIn:
		r.stats.Oversize++
		return nil
	case r.cfg.Link.IsValid() && !r.cfg.Link.Contains(src.Addr().Unmap()):
		r.stats.Offlink++
		return nil
	case src.Addr().Unmap() == r.info.Addr && r.own(now, b):
		r.stats.Own++
		return nil
	}
	var p dnsmessage.Parser
	h, err := p.Start(b)
	if err != nil {
		r.stats.Malformed++
		return nil
	}
	if h.OpCode != 0 || h.RCode != 0 {
		r.stats.Ignored++
		return nil
	}
	qs, err := p.AllQuestions()
	if err != nil {
		r.stats.Malformed++
		return nil
	}
	if len(qs) > maxQuests {
		r.stats.TooMany++
		return nil
	}
	ans, err1 := readSection(p.Answer)
	auth, err2 := readSection(p.Authority)
	extra, err3 := readSection(p.Additional)
	if err1 == errTooMany || err2 == errTooMany || err3 == errTooMany {
		r.stats.TooMany++
		return nil
	}
	if err1 != nil || err2 != nil || err3 != nil {
		r.stats.Malformed++
		return nil
	}
	if h.Response {
		r.response(now, src, append(ans, extra...))
		return nil
	}
	r.stats.Queries++
	return r.query(now, src, h, qs, ans, auth)
}

type tooMany struct{}

func (tooMany) Error() string { return "too many records" }

var errTooMany error = tooMany{}

// readSection reads a section's records, at most maxRecords; a record of
// a type we do not read is kept with its header and an opaque body.
func readSection(next func() (dnsmessage.Resource, error)) ([]dnsmessage.Resource, error) {
	var out []dnsmessage.Resource
	for {
		res, err := next()
		if err == dnsmessage.ErrSectionDone {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if len(out) == maxRecords {
			return nil, errTooMany
		}
		out = append(out, res)
	}
}

// ours returns the indices of our records named name, case-insensitively.
func (r *Responder) match(name string, typ dnsmessage.Type) []int {
	var out []int
	for i, rec := range r.recs {
		if strings.EqualFold(rec.name, name) && (typ == dnsmessage.TypeALL || typ == rec.typ) {
			out = append(out, i)
		}
	}
	return out
}

// response looks for conflicts (§9): a record of another host with one
// of our unique names, our type and other data. A goodbye (TTL 0) is no
// claim.
func (r *Responder) response(now time.Time, src netip.AddrPort, recs []dnsmessage.Resource) {
	if r.st == idle {
		return
	}
	for _, res := range recs {
		if res.Header.Class&^classFlush != dnsmessage.ClassINET || res.Header.TTL == 0 {
			continue
		}
		for _, i := range r.match(res.Header.Name.String(), res.Header.Type) {
			if rec := &r.recs[i]; rec.unique && i != 1 && rec.rdata != rdataOf(res.Body) {
				if r.st == probing {
					r.conflict(now, src.Addr())
				} else {
					// Claimed names are probed again (§9): if the other
					// host is right, the probe loses them.
					r.logf("mdns: %s claimed by %v too: probing it again", r.Host(), src.Addr())
					r.startProbing(now, 0)
				}
				return
			}
		}
	}
}

// query answers a query (§6): legacy unicast from a port not 5353
// (§6.7) at once, QU questions by unicast (§5.4), the rest by multicast,
// at once when every answer is a unique record, else after 20-120 ms
// (400-500 ms for a truncated query, whose known answers continue).
func (r *Responder) query(now time.Time, src netip.AddrPort, h dnsmessage.Header, qs []dnsmessage.Question, known, auth []dnsmessage.Resource) []Packet {
	if r.st == probing {
		r.tieBreak(now, src, auth)
		return nil
	}
	if r.st == idle {
		return nil
	}
	if len(qs) == 0 {
		// A continuation of a truncated query: its known answers.
		r.pend.set &^= r.knownSet(known, r.pend.set)
		return nil
	}
	legacy := src.Port() != Port
	var uni, multi uint64
	var legacyQs []dnsmessage.Question
	for _, q := range qs {
		if q.Class&^classFlush != dnsmessage.ClassINET && q.Class&^classFlush != dnsmessage.ClassANY {
			continue
		}
		var set uint64
		for _, i := range r.match(q.Name.String(), q.Type) {
			set |= 1 << i
		}
		if set == 0 {
			continue
		}
		if legacy {
			legacyQs = append(legacyQs, q)
			uni |= set
		} else if q.Class&classFlush != 0 {
			uni |= set
		} else {
			multi |= set
		}
	}
	uni &^= r.knownSet(known, uni)
	multi &^= r.knownSet(known, multi)
	var out []Packet
	if uni != 0 {
		p := r.answerPacket(uni, known)
		if legacy {
			p = r.legacyPacket(h.ID, legacyQs, uni)
			r.stats.Legacy++
		}
		r.stats.Answered++
		out = r.send(out, now, src, p)
	}
	if multi == 0 {
		return out
	}
	// One multicast per record per second; a probe's defence may
	// follow 250 ms after the last (§6).
	gap := time.Second
	if len(auth) > 0 {
		gap = probeWait
	}
	for i := range r.recs {
		if multi&(1<<i) != 0 && now.Sub(r.last[i]) < gap && !r.last[i].IsZero() {
			multi &^= 1 << i
			r.stats.RateLimited++
		}
	}
	if multi == 0 {
		return out
	}
	delay := time.Duration(0)
	switch {
	case h.Truncated:
		delay = 400*time.Millisecond + time.Duration(r.rnd.Int64N(int64(100*time.Millisecond)))
	case !r.allUnique(multi):
		delay = 20*time.Millisecond + time.Duration(r.rnd.Int64N(int64(100*time.Millisecond)))
	}
	if r.pend.set == 0 || now.Add(delay).Before(r.pend.at) {
		r.pend.at = now.Add(delay)
	}
	r.pend.set |= multi
	if delay == 0 && r.st == running {
		out = r.flush(out, now)
	}
	return out
}

// knownSet is the records of set that a known answer names with at
// least half our TTL (§7.1).
func (r *Responder) knownSet(known []dnsmessage.Resource, set uint64) uint64 {
	var drop uint64
	for _, k := range known {
		for _, i := range r.match(k.Header.Name.String(), k.Header.Type) {
			rec := &r.recs[i]
			if set&(1<<i) != 0 && rec.rdata == rdataOf(k.Body) && k.Header.TTL >= rec.ttl/2 {
				drop |= 1 << i
			}
		}
	}
	for s := drop; s != 0; s &= s - 1 {
		r.stats.Suppressed++
	}
	return drop
}

func (r *Responder) allUnique(set uint64) bool {
	for i := range r.recs {
		if set&(1<<i) != 0 && !r.recs[i].unique {
			return false
		}
	}
	return true
}

// flush multicasts the pending answers.
func (r *Responder) flush(out []Packet, now time.Time) []Packet {
	set := r.pend.set
	r.pend = pending{}
	for i := range r.recs {
		if set&(1<<i) != 0 {
			r.last[i] = now
		}
	}
	r.stats.Answered++
	return r.send(out, now, Group, r.answerPacket(set, nil))
}

// answerPacket is a response with the records of set as answers and,
// as additional records, what a client asks next (RFC 6763 §12): for a
// service PTR the instance's SRV, TXT and A, for an SRV the A. Additional
// records are left out before an answer is.
func (r *Responder) answerPacket(set uint64, known []dnsmessage.Resource) packet {
	p := packet{hdr: dnsmessage.Header{Response: true, Authoritative: true}}
	var extra uint64
	for i := range r.recs {
		if set&(1<<i) == 0 {
			continue
		}
		rec := &r.recs[i]
		p.answers = append(p.answers, rr{rec: rec, ttl: rec.ttl, flush: rec.unique})
		switch body := rec.body.(type) {
		case *dnsmessage.PTRResource:
			if rec.name != servicesName && i != 1 {
				for _, j := range r.match(body.PTR.String(), dnsmessage.TypeALL) {
					extra |= 1 << j
				}
				extra |= 1 // A
			}
		case *dnsmessage.SRVResource:
			extra |= 1
		}
	}
	extra &^= set
	extra &^= r.knownSet(known, extra)
	for i := range r.recs {
		if extra&(1<<i) != 0 {
			rec := &r.recs[i]
			p.extra = append(p.extra, rr{rec: rec, ttl: rec.ttl, flush: rec.unique})
		}
	}
	if b, err := p.pack(); err == nil && len(b) > MaxPacket {
		p.extra = nil
	}
	return p
}

// legacyPacket answers a legacy unicast query (§6.7): its id and
// questions, TTLs of at most 10 s, no cache-flush bits.
func (r *Responder) legacyPacket(id uint16, qs []dnsmessage.Question, set uint64) packet {
	p := packet{hdr: dnsmessage.Header{ID: id, Response: true, Authoritative: true}, questions: qs}
	for i := range r.recs {
		if set&(1<<i) != 0 {
			p.answers = append(p.answers, rr{rec: &r.recs[i], ttl: min(r.recs[i].ttl, legacyTTL)})
		}
	}
	return p
}

// tieBreak settles simultaneous probes (§8.2): another host probing one
// of our names with records that sort after ours wins, and we probe
// again in a second; equal records are our own.
func (r *Responder) tieBreak(now time.Time, src netip.AddrPort, auth []dnsmessage.Resource) {
	for _, name := range r.probedNames() {
		var theirs []string
		for _, a := range auth {
			if strings.EqualFold(a.Header.Name.String(), name) {
				theirs = append(theirs, sortKey(a.Header.Class&^classFlush, a.Header.Type, rdataOf(a.Body)))
			}
		}
		if len(theirs) == 0 {
			continue
		}
		var ours []string
		for _, i := range r.match(name, dnsmessage.TypeALL) {
			ours = append(ours, sortKey(dnsmessage.ClassINET, r.recs[i].typ, r.recs[i].rdata))
		}
		if compareSets(ours, theirs) < 0 {
			r.stats.TieLost++
			r.logf("mdns: %v probes %s too and wins the tie-break: probing again in 1 s", src.Addr(), r.Host())
			r.startProbing(now, tieWait)
			return
		}
	}
}

func sortKey(c dnsmessage.Class, t dnsmessage.Type, rdata string) string {
	return string([]byte{byte(c >> 8), byte(c), byte(t >> 8), byte(t)}) + rdata
}

// compareSets compares two sets of records as §8.2 does: sorted, pair by
// pair, the longer set winning a tie of its prefix.
func compareSets(a, b []string) int {
	slices.Sort(a)
	slices.Sort(b)
	for i := 0; i < len(a) && i < len(b); i++ {
		if c := strings.Compare(a[i], b[i]); c != 0 {
			return c
		}
	}
	return len(a) - len(b)
}
