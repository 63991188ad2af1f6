package mdns

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"golang.org/x/net/dns/dnsmessage"
)

// TTLs of RFC 6762 §10: records that name a host (A, SRV, reverse PTR)
// live 120 s, the others 75 minutes.
const (
	hostTTL  = 120
	otherTTL = 4500
	// legacyTTL caps the TTLs of a reply to a legacy unicast query
	// (RFC 6762 §6.7).
	legacyTTL = 10
)

// classFlush is the cache-flush bit of a unique record's class
// (RFC 6762 §10.2); in a question the same bit asks for a unicast
// answer (QU, §5.4).
const classFlush = 0x8000

// servicesName lists the service types of the link (RFC 6763 §9).
const servicesName = "_services._dns-sd._udp.local."

// record is one of the node's resource records.
type record struct {
	name   string // fully qualified, with the final dot
	typ    dnsmessage.Type
	ttl    uint32
	unique bool // a unique record: probed, cache-flush (§2)
	body   dnsmessage.ResourceBody
	rdata  string // canonical rdata (rdataOf), to compare with others'
}

// Label turns a node name (1-63 of A-Z a-z 0-9 . _ -, docs/protocol.md
// §3) into the host label of <label>.local: a dot would split the name
// and an underscore is no host name's, so both become "-". suffix n > 1
// is the n-th name after conflicts: <label>-n, cut to fit 63 bytes.
func Label(name string, n int) string {
	l := strings.Map(func(r rune) rune {
		if r == '.' || r == '_' {
			return '-'
		}
		return r
	}, name)
	if n <= 1 {
		return l
	}
	tail := "-" + strconv.Itoa(n)
	if len(l)+len(tail) > 63 {
		l = l[:63-len(tail)]
	}
	return l + tail
}

// records makes the node's record set for host label l: the A record of
// <l>.local and its reverse PTR, and per service the DNS-SD records
// (RFC 6763): the type in _services, the PTR to the instance <l>, its
// SRV and its TXT. The reverse PTR is unique but not probed: an address
// has one holder on a link.
func records(l string, info Info) ([]record, error) {
	host := l + ".local."
	a4 := info.Addr.As4()
	recs := []record{
		{name: host, typ: dnsmessage.TypeA, ttl: hostTTL, unique: true, body: &dnsmessage.AResource{A: a4}},
		{name: reverseName(info.Addr), typ: dnsmessage.TypePTR, ttl: hostTTL, unique: true},
	}
	hn, err := dnsmessage.NewName(host)
	if err != nil {
		return nil, fmt.Errorf("mdns: host name %q: %w", host, err)
	}
	recs[1].body = &dnsmessage.PTRResource{PTR: hn}
	for _, s := range info.Services {
		typ := s.Type + ".local."
		inst := l + "." + typ
		tn, err1 := dnsmessage.NewName(typ)
		in, err2 := dnsmessage.NewName(inst)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("mdns: service %q: name too long", s.Type)
		}
		recs = append(recs,
			record{name: servicesName, typ: dnsmessage.TypePTR, ttl: otherTTL, body: &dnsmessage.PTRResource{PTR: tn}},
			record{name: typ, typ: dnsmessage.TypePTR, ttl: otherTTL, body: &dnsmessage.PTRResource{PTR: in}},
			record{name: inst, typ: dnsmessage.TypeSRV, ttl: hostTTL, unique: true, body: &dnsmessage.SRVResource{Port: s.Port, Target: hn}},
			record{name: inst, typ: dnsmessage.TypeTXT, ttl: otherTTL, unique: true, body: &dnsmessage.TXTResource{TXT: s.TXT}},
		)
	}
	for i := range recs {
		recs[i].rdata = rdataOf(recs[i].body)
	}
	return recs, nil
}

// reverseName is the in-addr.arpa name of an IPv4 address.
func reverseName(a netip.Addr) string {
	b := a.As4()
	return fmt.Sprintf("%d.%d.%d.%d.in-addr.arpa.", b[3], b[2], b[1], b[0])
}

// rdataOf is a record's data in a form two records can be compared by:
// the uncompressed wire form with names in lower case (RFC 6762 §8.2's
// tie-break compares exactly that), for the types a responder of ours
// publishes; any other type compares by its type alone.
func rdataOf(b dnsmessage.ResourceBody) string {
	switch r := b.(type) {
	case *dnsmessage.AResource:
		return string(r.A[:])
	case *dnsmessage.PTRResource:
		return wireName(r.PTR)
	case *dnsmessage.SRVResource:
		var h [6]byte
		binary.BigEndian.PutUint16(h[0:], r.Priority)
		binary.BigEndian.PutUint16(h[2:], r.Weight)
		binary.BigEndian.PutUint16(h[4:], r.Port)
		return string(h[:]) + wireName(r.Target)
	case *dnsmessage.TXTResource:
		var s []byte
		for _, t := range r.TXT {
			s = append(s, byte(len(t)))
			s = append(s, t...)
		}
		return string(s)
	}
	return fmt.Sprintf("%T", b)
}

// wireName is a name's uncompressed wire form, in lower case.
func wireName(n dnsmessage.Name) string {
	var b []byte
	for _, l := range strings.Split(strings.TrimSuffix(strings.ToLower(n.String()), "."), ".") {
		if l == "" {
			continue
		}
		b = append(b, byte(len(l)))
		b = append(b, l...)
	}
	return string(append(b, 0))
}

// rr is a record as it goes out: with the TTL and cache-flush bit of
// that packet.
type rr struct {
	rec   *record
	ttl   uint32
	flush bool
}

// packet is a message to build: its header and sections.
type packet struct {
	hdr       dnsmessage.Header
	questions []dnsmessage.Question
	answers   []rr
	auth      []rr
	extra     []rr
}

// pack builds the message with name compression.
func (p *packet) pack() ([]byte, error) {
	b := dnsmessage.NewBuilder(make([]byte, 0, 512), p.hdr)
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	for _, q := range p.questions {
		if err := b.Question(q); err != nil {
			return nil, err
		}
	}
	sections := []struct {
		start func() error
		rrs   []rr
	}{{b.StartAnswers, p.answers}, {b.StartAuthorities, p.auth}, {b.StartAdditionals, p.extra}}
	for _, s := range sections {
		if err := s.start(); err != nil {
			return nil, err
		}
		for _, r := range s.rrs {
			if err := addRR(&b, r); err != nil {
				return nil, err
			}
		}
	}
	return b.Finish()
}

func addRR(b *dnsmessage.Builder, r rr) error {
	n, err := dnsmessage.NewName(r.rec.name)
	if err != nil {
		return err
	}
	class := dnsmessage.ClassINET
	if r.flush {
		class |= classFlush
	}
	h := dnsmessage.ResourceHeader{Name: n, Class: class, TTL: r.ttl}
	switch body := r.rec.body.(type) {
	case *dnsmessage.AResource:
		return b.AResource(h, *body)
	case *dnsmessage.PTRResource:
		return b.PTRResource(h, *body)
	case *dnsmessage.SRVResource:
		return b.SRVResource(h, *body)
	case *dnsmessage.TXTResource:
		return b.TXTResource(h, *body)
	}
	return fmt.Errorf("mdns: no packer for %T", r.rec.body)
}
