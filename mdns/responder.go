package mdns

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// Port and Group are mDNS's (RFC 6762 §3): where queries and multicast
// answers go.
const Port = 5353

var Group = netip.AddrPortFrom(netip.AddrFrom4([4]byte{224, 0, 0, 251}), Port)

// Timing of RFC 6762 §8: three probes 250 ms apart after a random wait
// of up to 250 ms, a lost tie-break waits a second, two announcements a
// second apart; after 15 conflicts in 10 s, probing waits 5 s.
const (
	probeWait     = 250 * time.Millisecond
	probes        = 3
	tieWait       = time.Second
	announceGap   = time.Second
	announcements = 2
	conflictBurst = 15
	conflictSpan  = 10 * time.Second
	conflictPause = 5 * time.Second
)

// maxServices keeps the record set (2 + 4 a service) within the 64 bits
// of the sets of records an answer is built from.
const maxServices = 15

// MaxPacket bounds what the responder sends: one Ethernet frame of IPv4
// UDP (RFC 6762 §17 asks that answers fit the link's MTU).
const MaxPacket = 1472

// Info is what the responder publishes: the node's name, its IPv4
// address and its services.
type Info struct {
	Name     string     // the node's name; its host label is Label(Name)
	Addr     netip.Addr // IPv4
	Services []Service
}

// Service is one DNS-SD service of the node (RFC 6763).
type Service struct {
	Type string   // "_fornax._udp"
	Port uint16   // its port on Addr
	TXT  []string // "key=value" strings: never a secret
}

func (i Info) equal(j Info) bool {
	return i.Name == j.Name && i.Addr == j.Addr && slices.EqualFunc(i.Services, j.Services, func(a, b Service) bool {
		return a.Type == b.Type && a.Port == b.Port && slices.Equal(a.TXT, b.TXT)
	})
}

// Config sets a Responder up.
type Config struct {
	// Link is the local link's subnet: datagrams from elsewhere are
	// dropped (RFC 6762 §11). Its zero value accepts every source.
	Link netip.Prefix
	// Rand draws the random waits of §6 and §8.1; nil seeds one.
	Rand *rand.Rand
	// Logf, if not nil, takes the responder's log lines: names claimed,
	// conflicts, goodbyes.
	Logf func(format string, args ...any)
}

// state is where the responder is with its names (RFC 6762 §8).
type state int

const (
	idle       state = iota // publishing nothing: not started, or left
	probing                 // asking whether the names are free
	announcing              // claimed: announcing them
	running                 // claimed and announced: answering
)

// Packet is a datagram to send.
type Packet struct {
	To   netip.AddrPort
	Data []byte
}

// Conflict is a name the responder lost to another host.
type Conflict struct {
	At   time.Time
	Name string     // the host name lost, <label>.local
	By   netip.Addr // who holds it
	Took string     // the name taken instead
}

// Responder is an mDNS / DNS-SD responder for one node (RFC 6762, RFC
// 6763) as a state machine with the time passed in, like cluster's
// table: Set, Receive and Tick take the time and return the datagrams to
// send; Next says when Tick is due. It does no I/O and is not safe for
// concurrent use; Server is its shell.
type Responder struct {
	cfg   Config
	rnd   *rand.Rand
	info  Info
	on    bool // Set's active: the node is a member
	n     int  // the name's number: 1, then 2, 3 ... after conflicts
	label string
	recs  []record
	last  []time.Time // when each record was last multicast (§6)

	st   state
	step int       // probes or announcements sent in this state
	due  time.Time // the next probe or announcement
	pend pending   // multicast answers waiting for their delay

	conflicts []Conflict
	recent    []time.Time // when the last conflicts happened, for the 15-in-10-s rule
	sent      [8]sentPacket
	sentNext  int
	stats     Stats
}

// sentPacket remembers a multicast datagram of ours, so that its copy
// looped back by the host is recognised (a host's own avahi needs loop).
type sentPacket struct {
	sum uint64
	at  time.Time
}

// New returns a responder that publishes nothing until Set.
func New(cfg Config) *Responder {
	r := &Responder{cfg: cfg, rnd: cfg.Rand, n: 1}
	if r.rnd == nil {
		r.rnd = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	return r
}

// CheckInfo says what is wrong with info, if anything: an IPv4 address,
// a name that makes a host label, service types of the form
// _name._udp or _name._tcp, and all of it in one announcement.
func CheckInfo(info Info) error {
	if !info.Addr.Is4() {
		return fmt.Errorf("mdns: address %v: want IPv4", info.Addr)
	}
	if info.Name == "" || len(info.Name) > 63 {
		return fmt.Errorf("mdns: name %q: want 1 to 63 bytes", info.Name)
	}
	if len(info.Services) > maxServices {
		return fmt.Errorf("mdns: %d services, at most %d", len(info.Services), maxServices)
	}
	for _, s := range info.Services {
		proto, ok := strings.CutPrefix(s.Type, "_")
		if name, p, _ := strings.Cut(proto, "._"); !ok || name == "" || (p != "udp" && p != "tcp") || strings.ContainsAny(name, ". ") {
			return fmt.Errorf("mdns: service type %q: want _name._udp or _name._tcp", s.Type)
		}
	}
	recs, err := records(Label(info.Name, 99), info)
	if err != nil {
		return err
	}
	p := announcePacket(recs, false)
	b, err := p.pack()
	if err != nil {
		return fmt.Errorf("mdns: the records do not pack: %w", err)
	}
	if len(b) > MaxPacket {
		return fmt.Errorf("mdns: the records take %d bytes, more than one packet (%d): fewer services or shorter TXT", len(b), MaxPacket)
	}
	return nil
}

// Set gives the responder what to publish and whether the node is a
// member. Starting makes it probe; stopping says goodbye (TTL 0, §10.1);
// a new name or address is a goodbye to the old records and a probe of
// the new name (§8), from its first number; other changes (TXT, ports)
// are announced again (§8.4).
func (r *Responder) Set(now time.Time, info Info, active bool) ([]Packet, error) {
	if active {
		if err := CheckInfo(info); err != nil {
			return nil, err
		}
	}
	var out []Packet
	claimed := r.st == announcing || r.st == running
	switch {
	case !active:
		if claimed {
			out = r.goodbye(now)
		}
		r.st, r.pend = idle, pending{}
		r.info, r.on = info, false
		return out, nil
	case !r.on || info.Name != r.info.Name || info.Addr != r.info.Addr:
		if claimed {
			out = r.goodbye(now)
		}
		r.info, r.on, r.n = info, true, 1
		if err := r.rebuild(); err != nil {
			return out, err
		}
		r.startProbing(now, time.Duration(r.rnd.Int64N(int64(probeWait))))
	case !info.equal(r.info):
		r.info = info
		if err := r.rebuild(); err != nil {
			return out, err
		}
		if claimed {
			r.st, r.step, r.due = announcing, 0, now
		}
	}
	return append(out, r.Tick(now)...), nil
}

// rebuild makes the record set for the current name and number.
func (r *Responder) rebuild() error {
	r.label = Label(r.info.Name, r.n)
	recs, err := records(r.label, r.info)
	if err != nil {
		return err
	}
	r.recs, r.last = recs, make([]time.Time, len(recs))
	r.pend = pending{}
	return nil
}

func (r *Responder) startProbing(now time.Time, wait time.Duration) {
	r.st, r.step, r.due = probing, 0, now.Add(wait)
}

// Tick sends what is due at now: a probe, an announcement, delayed
// answers.
func (r *Responder) Tick(now time.Time) []Packet {
	var out []Packet
	if r.st == probing && !now.Before(r.due) {
		if r.step == probes {
			r.logf("mdns: claimed %s (%v)", r.Host(), r.info.Addr)
			r.st, r.step = announcing, 0
		} else {
			out = r.send(out, now, Group, r.probePacket(r.step == 0))
			r.stats.Probes++
			r.step++
			r.due = now.Add(probeWait)
		}
	}
	if r.st == announcing && !now.Before(r.due) {
		out = r.send(out, now, Group, announcePacket(r.recs, false))
		r.stats.Announcements++
		for i := range r.last {
			r.last[i] = now
		}
		r.step++
		r.due = now.Add(announceGap)
		if r.step == announcements {
			r.st = running
		}
	}
	if r.st == running && r.pend.set != 0 && !now.Before(r.pend.at) {
		out = r.flush(out, now)
	}
	return out
}

// Next is when Tick has something to do; the zero time for never.
func (r *Responder) Next() time.Time {
	var t time.Time
	if r.st == probing || r.st == announcing {
		t = r.due
	}
	if r.pend.set != 0 && (t.IsZero() || r.pend.at.Before(t)) {
		t = r.pend.at
	}
	return t
}

// Host is the host name the responder holds or is probing for, such as
// fornax-01.local; "" while it publishes nothing.
func (r *Responder) Host() string {
	if r.st == idle {
		return ""
	}
	return r.label + ".local"
}

// Claimed reports whether the responder holds its names (probed).
func (r *Responder) Claimed() bool { return r.st == announcing || r.st == running }

// Conflicts returns the names lost so far, oldest first.
func (r *Responder) Conflicts() []Conflict { return slices.Clone(r.conflicts) }

// maxConflicts bounds the list Conflicts keeps.
const maxConflicts = 32

// Stats returns the counters.
func (r *Responder) Stats() Stats { return r.stats }

// probePacket asks for every unique name with ANY, our proposed records
// in the authority section (§8.1, §8.2); the first probe asks for
// unicast answers (QU).
func (r *Responder) probePacket(qu bool) packet {
	var p packet
	class := dnsmessage.ClassINET
	if qu {
		class |= classFlush
	}
	for _, name := range r.probedNames() {
		p.questions = append(p.questions, dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: dnsmessage.TypeALL, Class: class})
		for i := range r.recs {
			if rec := &r.recs[i]; rec.name == name {
				p.auth = append(p.auth, rr{rec: rec, ttl: rec.ttl})
			}
		}
	}
	return p
}

// probedNames are the unique names probed: the host name and the
// service instances (not the reverse name, whose address is ours).
func (r *Responder) probedNames() []string {
	var names []string
	for i, rec := range r.recs {
		if rec.unique && i != 1 && !slices.Contains(names, rec.name) {
			names = append(names, rec.name)
		}
	}
	return names
}

// announcePacket is an unsolicited response with every record (§8.3),
// or, with goodbye, the same records with TTL 0 (§10.1).
func announcePacket(recs []record, goodbye bool) packet {
	p := packet{hdr: dnsmessage.Header{Response: true, Authoritative: true}}
	for i := range recs {
		ttl := recs[i].ttl
		if goodbye {
			ttl = 0
		}
		p.answers = append(p.answers, rr{rec: &recs[i], ttl: ttl, flush: recs[i].unique})
	}
	return p
}

// goodbye withdraws every record: one response with TTL 0.
func (r *Responder) goodbye(now time.Time) []Packet {
	r.logf("mdns: goodbye from %s", r.Host())
	r.stats.Goodbyes++
	return r.send(nil, now, Group, announcePacket(r.recs, true))
}

// conflict gives up the current name, lost to by, and probes the next
// one (§9): <label>-2, -3 ...; after 15 conflicts in 10 s it waits 5 s
// first.
func (r *Responder) conflict(now time.Time, by netip.Addr) {
	lost := r.Host()
	r.stats.Conflicts++
	r.n++
	if err := r.rebuild(); err != nil { // cannot fail: CheckInfo packed the longest label
		r.logf("mdns: %v", err)
	}
	r.conflicts = append(r.conflicts, Conflict{At: now, Name: lost, By: by, Took: r.label + ".local"})
	if len(r.conflicts) > maxConflicts {
		r.conflicts = r.conflicts[1:]
	}
	r.logf("mdns: %s is taken by %v: probing %s.local", lost, by, r.label)
	r.recent = append(r.recent, now)
	for len(r.recent) > 0 && now.Sub(r.recent[0]) > conflictSpan {
		r.recent = r.recent[1:]
	}
	wait := time.Duration(r.rnd.Int64N(int64(probeWait)))
	if len(r.recent) >= conflictBurst {
		wait = conflictPause
	}
	r.startProbing(now, wait)
}

// send packs p and appends it for to, counting it; a packet that fails
// to pack or is too big is counted and not sent.
func (r *Responder) send(out []Packet, now time.Time, to netip.AddrPort, p packet) []Packet {
	b, err := p.pack()
	if err == nil && len(b) > MaxPacket {
		err = errors.New("too big")
	}
	if err != nil {
		r.stats.Unsent++
		return out
	}
	r.stats.Sent++
	if to == Group {
		h := fnv.New64a()
		h.Write(b)
		r.sent[r.sentNext] = sentPacket{sum: h.Sum64(), at: now}
		r.sentNext = (r.sentNext + 1) % len(r.sent)
	}
	return append(out, Packet{To: to, Data: b})
}

// own reports whether b is a copy of a datagram we multicast in the
// last two seconds.
func (r *Responder) own(now time.Time, b []byte) bool {
	h := fnv.New64a()
	h.Write(b)
	sum := h.Sum64()
	for _, s := range r.sent {
		if s.sum == sum && now.Sub(s.at) < 2*time.Second {
			return true
		}
	}
	return false
}

func (r *Responder) logf(format string, args ...any) {
	if r.cfg.Logf != nil {
		r.cfg.Logf(format, args...)
	}
}
