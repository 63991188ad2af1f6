package mdns

import (
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

var t0 = time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)

func testInfo(name, addr string) Info {
	return Info{Name: name, Addr: netip.MustParseAddr(addr), Services: []Service{
		{Type: "_fornax._udp", Port: 9710, TXT: []string{"id=0a1b2c3d", "profile=default", "auth=plain"}},
		{Type: "_9p._tcp", Port: 564, TXT: []string{"id=0a1b2c3d"}},
	}}
}

func newTest(t *testing.T) *Responder {
	return New(Config{Link: netip.MustParsePrefix("10.0.0.0/24"), Rand: rand.New(rand.NewPCG(1, 2)), Logf: t.Logf})
}

// run ticks r from now until until, returning what it sent.
func run(r *Responder, now, until time.Time) ([]Packet, time.Time) {
	var out []Packet
	for {
		next := r.Next()
		if next.IsZero() || next.After(until) {
			return out, now
		}
		now = next
		out = append(out, r.Tick(now)...)
	}
}

func parse(t *testing.T, b []byte) dnsmessage.Message {
	t.Helper()
	var m dnsmessage.Message
	if err := m.Unpack(b); err != nil {
		t.Fatalf("unpack: %v", err)
	}
	return m
}

func query(id uint16, name string, typ dnsmessage.Type, qu bool, known ...dnsmessage.Resource) []byte {
	class := dnsmessage.ClassINET
	if qu {
		class |= classFlush
	}
	m := dnsmessage.Message{Header: dnsmessage.Header{ID: id},
		Questions: []dnsmessage.Question{{Name: dnsmessage.MustNewName(name), Type: typ, Class: class}},
		Answers:   known}
	b, err := m.Pack()
	if err != nil {
		panic(err)
	}
	return b
}

var peer = netip.MustParseAddrPort("10.0.0.9:5353")

// Start: three probes 250 ms apart, then two announcements a second
// apart, then quiet: nothing at rest.
func TestProbeAnnounceQuiet(t *testing.T) {
	r := newTest(t)
	out, err := r.Set(t0, testInfo("fornax-01", "10.0.0.2"), true)
	if err != nil || len(out) != 0 {
		t.Fatalf("Set: %v, %d packets before the random wait", err, len(out))
	}
	out, now := run(r, t0, t0.Add(time.Minute))
	if len(out) != 5 {
		t.Fatalf("%d packets in the first minute, want 3 probes and 2 announcements", len(out))
	}
	for i, p := range out {
		m := parse(t, p.Data)
		if p.To != Group || m.Header.Response != (i >= 3) {
			t.Errorf("packet %d: to %v, response %v", i, p.To, m.Header.Response)
		}
		if i < 3 && (len(m.Questions) != 3 || len(m.Authorities) != 5) {
			t.Errorf("probe %d: %d questions, %d authority records; want 3 names, 5 records", i, len(m.Questions), len(m.Authorities))
		}
		if i >= 3 && len(m.Answers) != 10 {
			t.Errorf("announcement: %d answers, want 10", len(m.Answers))
		}
	}
	if !r.Claimed() || r.Host() != "fornax-01.local" {
		t.Errorf("claimed %v, host %q", r.Claimed(), r.Host())
	}
	if out, _ := run(r, now, now.Add(time.Hour)); len(out) != 0 {
		t.Errorf("%d packets in an hour at rest", len(out))
	}
}

func claimed(t *testing.T, name string) (*Responder, time.Time) {
	r := newTest(t)
	if _, err := r.Set(t0, testInfo(name, "10.0.0.2"), true); err != nil {
		t.Fatal(err)
	}
	_, now := run(r, t0, t0.Add(10*time.Second))
	return r, now.Add(5 * time.Second)
}

// A query for the A record is answered at once by multicast, but not
// twice in a second; a known answer with enough TTL is not repeated;
// a legacy query gets a unicast reply with its id and TTL 10.
func TestAnswers(t *testing.T) {
	r, now := claimed(t, "fornax-01")
	out := r.Receive(now, peer, query(0, "FORNAX-01.local.", dnsmessage.TypeA, false))
	if len(out) != 1 || out[0].To != Group {
		t.Fatalf("answer to A: %v", out)
	}
	m := parse(t, out[0].Data)
	if len(m.Answers) != 1 || m.Answers[0].Body.(*dnsmessage.AResource).A != [4]byte{10, 0, 0, 2} || m.Answers[0].Header.TTL != hostTTL {
		t.Errorf("answer: %+v", m.Answers)
	}
	if out := r.Receive(now.Add(500*time.Millisecond), peer, query(0, "fornax-01.local.", dnsmessage.TypeA, false)); len(out) != 0 {
		t.Errorf("a second multicast answer within 1 s")
	}
	if r.Stats().RateLimited != 1 {
		t.Errorf("rate limited %d, want 1", r.Stats().RateLimited)
	}
	later := now.Add(2 * time.Second)
	ka := dnsmessage.Resource{Header: dnsmessage.ResourceHeader{Name: dnsmessage.MustNewName("fornax-01.local."), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: 100},
		Body: &dnsmessage.AResource{A: [4]byte{10, 0, 0, 2}}}
	if out := r.Receive(later, peer, query(0, "fornax-01.local.", dnsmessage.TypeA, false, ka)); len(out) != 0 {
		t.Errorf("answered a known answer")
	}
	legacy := netip.MustParseAddrPort("10.0.0.9:40000")
	out = r.Receive(later, legacy, query(77, "fornax-01.local.", dnsmessage.TypeA, false))
	if len(out) != 1 || out[0].To != legacy {
		t.Fatalf("legacy answer: %v", out)
	}
	m = parse(t, out[0].Data)
	if m.Header.ID != 77 || len(m.Questions) != 1 || m.Answers[0].Header.TTL != legacyTTL || m.Answers[0].Header.Class != dnsmessage.ClassINET {
		t.Errorf("legacy answer: %+v", m)
	}
	// A browse: PTR answers after a delay, with SRV, TXT and A added.
	out = r.Receive(later, peer, query(0, "_fornax._udp.local.", dnsmessage.TypePTR, false))
	if len(out) != 0 {
		t.Fatalf("a shared answer went out without its delay")
	}
	out, _ = run(r, later, later.Add(time.Second))
	if len(out) != 1 {
		t.Fatalf("%d packets for a browse", len(out))
	}
	m = parse(t, out[0].Data)
	if len(m.Answers) != 1 || len(m.Additionals) != 3 {
		t.Fatalf("browse: %d answers, %d additionals; want the PTR, and SRV, TXT, A", len(m.Answers), len(m.Additionals))
	}
	txt := m.Additionals[1].Body
	if tr, ok := txt.(*dnsmessage.TXTResource); ok && !strings.Contains(strings.Join(tr.TXT, " "), "auth=plain") {
		t.Errorf("TXT: %v", tr.TXT)
	}
}

// Two nodes with one name: the second's probe draws the first's answer,
// and the second takes <name>-2 and reports the conflict.
func TestConflictRenames(t *testing.T) {
	a, now := claimed(t, "twin")
	b := New(Config{Link: netip.MustParsePrefix("10.0.0.0/24"), Rand: rand.New(rand.NewPCG(3, 4)), Logf: t.Logf})
	if _, err := b.Set(now, testInfo("twin", "10.0.0.3"), true); err != nil {
		t.Fatal(err)
	}
	aAddr, bAddr := netip.MustParseAddrPort("10.0.0.2:5353"), netip.MustParseAddrPort("10.0.0.3:5353")
	// Deliver every packet of each to the other until both are quiet.
	for range 50 {
		next := b.Next()
		if n := a.Next(); !n.IsZero() && (next.IsZero() || n.Before(next)) {
			next = n
		}
		if next.IsZero() {
			break
		}
		now = next
		for _, p := range a.Tick(now) {
			for _, q := range b.Receive(now, aAddr, p.Data) {
				a.Receive(now, bAddr, q.Data)
			}
		}
		for _, p := range b.Tick(now) {
			for _, q := range a.Receive(now, bAddr, p.Data) {
				b.Receive(now, aAddr, q.Data)
			}
		}
	}
	if a.Host() != "twin.local" || b.Host() != "twin-2.local" || !b.Claimed() {
		t.Fatalf("hosts %q and %q (claimed %v), want twin.local and twin-2.local", a.Host(), b.Host(), b.Claimed())
	}
	c := b.Conflicts()
	if len(c) != 1 || c[0].Name != "twin.local" || c[0].By != aAddr.Addr() || c[0].Took != "twin-2.local" {
		t.Errorf("conflicts %+v", c)
	}
	// The same, as fornaxd's /mdns shows it.
	s := NewServer(b, nil, nil)
	text, err := s.ReadFile("conflicts")
	if want := " twin.local 10.0.0.2 twin-2.local\n"; err != nil || !strings.HasSuffix(string(text), want) || strings.Count(string(text), "\n") != 1 {
		t.Errorf("conflicts file %q, %v; want one line ending %q", text, err, want)
	}
	if text, _ := s.ReadFile("stats"); !strings.Contains(string(text), "Conflicts 1\n") {
		t.Errorf("stats file:\n%s", text)
	}
}

// Leaving says goodbye: every record with TTL 0; a rename says goodbye
// to the old name and probes the new one.
func TestGoodbyeAndRename(t *testing.T) {
	r, now := claimed(t, "old")
	out, err := r.Set(now, testInfo("new", "10.0.0.2"), true)
	if err != nil || len(out) != 1 {
		t.Fatalf("rename: %v, %d packets, want the goodbye", err, len(out))
	}
	m := parse(t, out[0].Data)
	if m.Answers[0].Header.TTL != 0 || m.Answers[0].Header.Name.String() != "old.local." {
		t.Errorf("goodbye: %+v", m.Answers[0].Header)
	}
	out, now = run(r, now, now.Add(5*time.Second))
	if len(out) != 5 || r.Host() != "new.local" {
		t.Fatalf("after the rename: %d packets, host %q", len(out), r.Host())
	}
	out, _ = r.Set(now, Info{}, false)
	if len(out) != 1 || r.Host() != "" {
		t.Fatalf("leave: %d packets, host %q", len(out), r.Host())
	}
	for _, a := range parse(t, out[0].Data).Answers {
		if a.Header.TTL != 0 {
			t.Errorf("goodbye record with TTL %d", a.Header.TTL)
		}
	}
}

// Bad datagrams are counted under their reason and answered by nothing.
func TestDrops(t *testing.T) {
	r, now := claimed(t, "fornax-01")
	good := query(0, "fornax-01.local.", dnsmessage.TypeA, false)
	loop := append([]byte(nil), good[:12]...)
	loop = append(loop, 0xc0, 12, 0, 1, 0, 1) // a name that points at itself
	for _, c := range []struct {
		src  netip.AddrPort
		b    []byte
		what func(Stats) uint64
	}{
		{peer, good[:7], func(s Stats) uint64 { return s.Malformed }},
		{peer, loop, func(s Stats) uint64 { return s.Malformed }},
		{peer, make([]byte, 9001), func(s Stats) uint64 { return s.Oversize }},
		{netip.MustParseAddrPort("192.168.1.1:5353"), good, func(s Stats) uint64 { return s.Offlink }},
	} {
		before := c.what(r.Stats())
		if out := r.Receive(now, c.src, c.b); len(out) != 0 {
			t.Errorf("answered a bad datagram")
		}
		if c.what(r.Stats()) != before+1 {
			t.Errorf("a bad datagram of %d bytes not counted", len(c.b))
		}
	}
	if r.Host() != "fornax-01.local" || !r.Claimed() {
		t.Errorf("bad datagrams changed the state")
	}
}
