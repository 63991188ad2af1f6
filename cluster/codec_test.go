package cluster

import (
	"bytes"
	"errors"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestParseValid(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Message
	}{
		{"ANNOUNCE 0a1b2c3d 10.0.2.15 fornax-01 4 268435456 134217728 2\n", Message{
			Kind: Announce, ID: "0a1b2c3d", Addr: netip.MustParseAddr("10.0.2.15"), Name: "fornax-01",
			CPUs: 4, MemTotal: 268435456, MemFree: 134217728, Containers: 2}},
		{"ANNOUNCE 00000000 0.0.0.0 a 1 0 0 0", Message{
			Kind: Announce, ID: "00000000", Addr: netip.MustParseAddr("0.0.0.0"), Name: "a", CPUs: 1}},
		{"ANNOUNCE ffffffff 255.255.255.255 " + strings.Repeat("A._-9", 12) + "xyz 65535 18446744073709551615 18446744073709551615 65535", Message{
			Kind: Announce, ID: "ffffffff", Addr: netip.MustParseAddr("255.255.255.255"),
			Name: strings.Repeat("A._-9", 12) + "xyz", CPUs: 65535, MemTotal: 1<<64 - 1, MemFree: 1<<64 - 1, Containers: 65535}},
		{"HEARTBEAT 0a1b2c3d 0.25 134217728 2\n", Message{
			Kind: Heartbeat, ID: "0a1b2c3d", Load: 25, MemFree: 134217728, Containers: 2}},
		{"HEARTBEAT 0a1b2c3d 0.00 0 0", Message{Kind: Heartbeat, ID: "0a1b2c3d"}},
		{"HEARTBEAT 0a1b2c3d 65535.99 0 0", Message{Kind: Heartbeat, ID: "0a1b2c3d", Load: 6553599}},
		{"HEARTBEAT 0a1b2c3d 10.05 0 0", Message{Kind: Heartbeat, ID: "0a1b2c3d", Load: 1005}},
		{"LEAVE 0a1b2c3d\n", Message{Kind: Leave, ID: "0a1b2c3d"}},
		{"LEAVE 0a1b2c3d", Message{Kind: Leave, ID: "0a1b2c3d"}},
		{"PROBE 0a1b2c3d 5e6f7a8b\n", Message{Kind: Probe, ID: "0a1b2c3d", To: "5e6f7a8b"}},
		{"PROBE 00000000 ffffffff", Message{Kind: Probe, ID: "00000000", To: "ffffffff"}},
		{"PROBE 0a1b2c3d 0a1b2c3d", Message{Kind: Probe, ID: "0a1b2c3d", To: "0a1b2c3d"}}, // valid; dropped by the node (§6)
	} {
		got, err := Parse([]byte(tc.in))
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.in, err)
			continue
		}
		if got != tc.want {
			t.Errorf("Parse(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
		canon := strings.TrimSuffix(tc.in, "\n") + "\n"
		if b := got.Append(nil); string(b) != canon {
			t.Errorf("Append(Parse(%q)) = %q", tc.in, b)
		}
		if err := got.Validate(); err != nil {
			t.Errorf("Validate(Parse(%q)): %v", tc.in, err)
		}
	}
}

func TestParseInvalid(t *testing.T) {
	const (
		over  = ReasonOversize
		mal   = ReasonMalformed
		verb  = ReasonUnknownVerb
		ann   = "ANNOUNCE 0a1b2c3d 10.0.2.15 n 4 1024 512 2"
		hb    = "HEARTBEAT 0a1b2c3d 0.25 512 2"
		leave = "LEAVE 0a1b2c3d"
		probe = "PROBE 0a1b2c3d 5e6f7a8b"
	)
	// field i of msg replaced by v
	sub := func(msg string, i int, v string) string {
		f := strings.Split(msg, " ")
		f[i] = v
		return strings.Join(f, " ")
	}
	for _, tc := range []struct {
		in   string
		want Reason
	}{
		// size
		{strings.Repeat("A", 513), over},
		{"LEAVE 0a1b2c3d" + strings.Repeat(" ", 499), over},
		{ann + strings.Repeat("x", 512-len(ann)) + "\n", over}, // 513 with the newline
		// bytes, spaces, newline
		{"", mal},
		{"\n", mal},
		{leave + "\n\n", mal},
		{leave + "\r\n", mal},
		{leave + "\t", mal},
		{"LEAVE\t0a1b2c3d", mal},
		{"LEAVE 0a1b2c3\xff", mal},
		{"LEAVE 0a1b2c3\x00", mal},
		{" " + leave, mal},
		{leave + " ", mal},
		{"LEAVE  0a1b2c3d", mal},
		{"FOO  bar", mal},
		// verbs
		{"JOIN 0a1b2c3d", verb},
		{"leave 0a1b2c3d", verb},
		{"Announce", verb},
		{"X", verb},
		// field counts
		{"LEAVE", mal},
		{leave + " x", mal},
		{strings.TrimSuffix(ann, " 2"), mal},
		{ann + " 2", mal},
		{"HEARTBEAT 0a1b2c3d 0.25 512", mal},
		{hb + " 2", mal},
		// node_id
		{"LEAVE 0A1B2C3D", mal},
		{"LEAVE 0a1b2c3", mal},
		{"LEAVE 0a1b2c3d0", mal},
		{"LEAVE 0a1b2c3g", mal},
		{"LEAVE 0x1b2c3d", mal},
		// addr
		{sub(ann, 2, "10.0.2"), mal},
		{sub(ann, 2, "10.0.2.15.1"), mal},
		{sub(ann, 2, "10.0.2.256"), mal},
		{sub(ann, 2, "10.0.2.015"), mal},
		{sub(ann, 2, "10.0.2.+1"), mal},
		{sub(ann, 2, "10..2.15"), mal},
		{sub(ann, 2, "::1"), mal},
		{sub(ann, 2, "::ffff:10.0.2.15"), mal},
		{sub(ann, 2, "host"), mal},
		// name
		{sub(ann, 3, strings.Repeat("n", 64)), mal},
		{sub(ann, 3, "a/b"), mal},
		{sub(ann, 3, "a:b"), mal},
		{sub(ann, 3, "ü"), mal},
		// cpu_count
		{sub(ann, 4, "0"), mal},
		{sub(ann, 4, "04"), mal},
		{sub(ann, 4, "+4"), mal},
		{sub(ann, 4, "-4"), mal},
		{sub(ann, 4, "65536"), mal},
		{sub(ann, 4, "4.0"), mal},
		// mem_total, mem_free
		{sub(ann, 5, "18446744073709551616"), mal},
		{sub(ann, 5, "01024"), mal},
		{sub(ann, 5, "1e3"), mal},
		{sub(ann, 6, "1025"), mal}, // > mem_total
		{sub(ann, 6, "00"), mal},
		{sub(hb, 3, "18446744073709551616"), mal},
		{sub(hb, 3, "-1"), mal},
		// container_count
		{sub(ann, 7, "65536"), mal},
		{sub(ann, 7, "-1"), mal},
		{sub(hb, 4, "02"), mal},
		// load
		{sub(hb, 2, "0.2"), mal},
		{sub(hb, 2, "0.250"), mal},
		{sub(hb, 2, ".25"), mal},
		{sub(hb, 2, "00.25"), mal},
		{sub(hb, 2, "1"), mal},
		{sub(hb, 2, "1."), mal},
		{sub(hb, 2, "-0.25"), mal},
		{sub(hb, 2, "+0.25"), mal},
		{sub(hb, 2, "0,25"), mal},
		{sub(hb, 2, "1.2.3"), mal},
		{sub(hb, 2, "65536.00"), mal},
		{sub(hb, 2, "1e2.00"), mal},
		// PROBE: one spelling, two ids
		{"Probe 0a1b2c3d 5e6f7a8b", verb},
		{"PROBES 0a1b2c3d 5e6f7a8b", verb},
		{"PROBE", mal},
		{"PROBE 0a1b2c3d", mal},
		{probe + " 5e6f7a8b", mal},
		{probe + " 1 2 630dcd29", mal}, // 6 fields: neither 3 nor 7
		{sub(probe, 1, "0A1B2C3D"), mal},
		{sub(probe, 2, "5E6F7A8B"), mal},
		{sub(probe, 2, "5e6f7a8"), mal},
		{sub(probe, 2, "5e6f7a8b9"), mal},
		{sub(probe, 2, "10.0.0.1"), mal},
		{sub(probe, 2, "-e6f7a8b"), mal},
		{probe + "\n\n", mal},
		{probe + " ", mal},
		{probe + strings.Repeat(" x", 245), over},
	} {
		m, err := Parse([]byte(tc.in))
		var de *DropError
		if !errors.As(err, &de) {
			t.Errorf("Parse(%q) = %+v, %v; want %v", tc.in, m, err, tc.want)
			continue
		}
		if de.Reason != tc.want {
			t.Errorf("Parse(%q): %v; want reason %v", tc.in, err, tc.want)
		}
	}
}

func TestParseMaxSize(t *testing.T) {
	// Exactly 512 bytes with the newline is not oversize (it is still
	// malformed: no real message is that long).
	b := []byte("LEAVE " + strings.Repeat("a", 505) + "\n")
	if len(b) != MaxMessageSize {
		t.Fatal(len(b))
	}
	if _, err := Parse(b); err.(*DropError).Reason != ReasonMalformed {
		t.Errorf("512 bytes: %v", err)
	}
}

func TestValidate(t *testing.T) {
	good := Message{Kind: Announce, ID: "0a1b2c3d", Addr: netip.MustParseAddr("10.0.0.1"), Name: "n", CPUs: 1}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, m := range []Message{
		{},
		{Kind: Leave, ID: "x"},
		{Kind: Announce, ID: "0a1b2c3d", Addr: netip.MustParseAddr("::1"), Name: "n", CPUs: 1},
		{Kind: Announce, ID: "0a1b2c3d", Addr: good.Addr, Name: "", CPUs: 1},
		{Kind: Announce, ID: "0a1b2c3d", Addr: good.Addr, Name: "n", CPUs: 0},
		{Kind: Announce, ID: "0a1b2c3d", Addr: good.Addr, Name: "n", CPUs: 1, MemFree: 1},
		{Kind: Announce, ID: "0a1b2c3d", Addr: good.Addr, Name: "n", CPUs: 1, Containers: -1},
		{Kind: Heartbeat, ID: "0a1b2c3d", Containers: 65536},
		{Kind: Heartbeat, ID: "0a1b2c3d", Load: maxLoad + 1},
		{Kind: Probe, ID: "0a1b2c3d"},
		{Kind: Probe, ID: "0a1b2c3d", To: "5E6F7A8B"},
		{Kind: Probe, ID: "0a1b2c3", To: "5e6f7a8b"},
		{Kind: Kind(5), ID: "0a1b2c3d"},
	} {
		if err := m.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil", m)
		}
	}
}

func TestLoadOf(t *testing.T) {
	for _, tc := range []struct {
		f    float64
		want string
	}{
		{0, "0.00"}, {-1, "0.00"}, {0.25, "0.25"}, {0.004, "0.00"}, {0.005, "0.01"},
		{1.5, "1.50"}, {3.999, "4.00"}, {70000, "65535.99"},
	} {
		if got := LoadOf(tc.f).String(); got != tc.want {
			t.Errorf("LoadOf(%v) = %s, want %s", tc.f, got, tc.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"ANNOUNCE 0a1b2c3d 10.0.2.15 fornax-01 4 268435456 134217728 2\n",
		"HEARTBEAT 0a1b2c3d 0.25 134217728 2\n",
		"LEAVE 0a1b2c3d\n",
		"LEAVE 0a1b2c3d",
		"HEARTBEAT 0a1b2c3d 00.25 1 2",
		"ANNOUNCE 0a1b2c3d 10.0.2.015 n 4 1 1 0",
		"",
		"\xff\n",
		"HEARTBEAT 0a1b2c3d 0.25 134217728 2 1764493690123 1764493695123 630dcd29 1e229d7b6c8d4536a5798611c5bfcbee\n",
		"LEAVE 0a1b2c3d 1 2 630dcd29 1e229d7b6c8d4536a5798611c5bfcbee",
		"LEAVE 0a1b2c3d 0 2 630dcd29 1e229d7b6c8d4536a5798611c5bfcbee",
		"LEAVE 0a1b2c3d 1 2 630dcd29 1E229d7b6c8d4536a5798611c5bfcbee",
		"PROBE 0a1b2c3d 5e6f7a8b\n",
		"PROBE 0a1b2c3d 5e6f7a8b 1 2 630dcd29 1e229d7b6c8d4536a5798611c5bfcbee",
		"PROBE 0a1b2c3d 5E6F7A8B",
		"PROBE 0a1b2c3d",
		"ASK 0a1b2c3d 5e6f7a8b\n",
		"ASK 0a1b2c3d 0a1b2c3d",
		"RELAY 0a1b2c3d HEARTBEAT 5e6f7a8b 0.25 512 2\n",
		"RELAY 0a1b2c3d HEARTBEAT 5e6f7a8b 0.25 512 2 1 2 630dcd29 1e229d7b6c8d4536a5798611c5bfcbee",
		"RELAY 0a1b2c3d RELAY 0a1b2c3d HEARTBEAT 5e6f7a8b 0.25",
		"RELAY 0a1b2c3d PROBE 5e6f7a8b 0a1b2c3d 1 2",
	} {
		f.Add([]byte(s))
	}
	for _, m := range []Message{
		{Kind: Announce, ID: "0a1b2c3d", Addr: netip.MustParseAddr("10.0.2.15"), Name: "n", CPUs: 1},
		{Kind: Heartbeat, ID: "0a1b2c3d", Load: 25},
		{Kind: Leave, ID: "0a1b2c3d"},
		{Kind: Probe, ID: "0a1b2c3d", To: "5e6f7a8b"},
		{Kind: Ask, ID: "0a1b2c3d", To: "5e6f7a8b"},
	} {
		m.Sign(testKey, 1764493690123, 1764493695123)
		f.Add(m.Append(nil))
	}
	in := Message{Kind: Heartbeat, ID: "5e6f7a8b", Load: 25}
	in.Sign(testKey, 1764493690000, 1764493694000)
	r := Message{Kind: Relay, ID: "0a1b2c3d", Relayed: &in}
	r.Sign(testKey, 1764493690123, 1764493695123)
	f.Add(r.Append(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		if err != nil {
			if _, ok := err.(*DropError); !ok {
				t.Fatalf("Parse(%q): error %T", b, err)
			}
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("Parse(%q) = %+v, which does not validate: %v", b, m, err)
		}
		canon := m.Append(nil)
		// The grammar has one spelling per message: the input is the
		// canonical form, less perhaps its newline.
		if !bytes.Equal(bytes.TrimSuffix(b, []byte("\n")), canon[:len(canon)-1]) {
			t.Fatalf("Parse(%q) re-formats as %q", b, canon)
		}
		m2, err := Parse(canon)
		if err != nil || !reflect.DeepEqual(m2, m) {
			t.Fatalf("Parse(%q) = %+v, %v; want %+v", canon, m2, err, m)
		}
		// A signed message verifies exactly when signing its fields
		// again gives its tag.
		if m.Keyed() {
			re := m
			re.Sign(testKey, m.Inc, m.Seq)
			if m.Verify(testKey) != (re.Tag == m.Tag && re.KeyID == m.KeyID) {
				t.Fatalf("Verify(%q) disagrees with Sign", b)
			}
		}
	})
}

// TestVerbTable formats and parses one message of every verb of the
// table, plain and signed, and checks the verb's name and field count.
func TestVerbTable(t *testing.T) {
	samples := map[Kind]Message{
		Announce: {Kind: Announce, ID: "0a1b2c3d", Addr: netip.MustParseAddr("10.0.2.15"), Name: "fornax-01",
			CPUs: 4, MemTotal: 268435456, MemFree: 134217728, Containers: 2},
		Heartbeat: {Kind: Heartbeat, ID: "0a1b2c3d", Load: 25, MemFree: 134217728, Containers: 2},
		Leave:     {Kind: Leave, ID: "0a1b2c3d"},
		Probe:     {Kind: Probe, ID: "0a1b2c3d", To: "5e6f7a8b"},
		Ask:       {Kind: Ask, ID: "0a1b2c3d", To: "5e6f7a8b"},
		Relay: {Kind: Relay, ID: "0a1b2c3d",
			Relayed: &Message{Kind: Heartbeat, ID: "5e6f7a8b", Load: 25, MemFree: 134217728, Containers: 2}},
		Sync: {Kind: Sync, ID: "0a1b2c3d", Addr: netip.MustParseAddr("10.0.2.255")},
		State: {Kind: State, ID: "0a1b2c3d", State: &Snapshot{Part: 1, Parts: 1, Entries: []Entry{{Age: 1500,
			Ann: Message{Kind: Announce, ID: "5e6f7a8b", Addr: netip.MustParseAddr("10.0.2.16"), Name: "n", CPUs: 1}}}}},
	}
	for k := Kind(1); int(k) < len(verbs); k++ {
		m, ok := samples[k]
		if !ok {
			t.Errorf("no sample message of %v", k)
			continue
		}
		delete(samples, k)
		s := m
		trailers := keyedFields
		switch k {
		case Relay: // signed, and so is what it carries
			in := *m.Relayed
			in.Sign(testKey, 1764493690000, 1764493694000)
			s.Relayed = &in
			trailers *= 2
		case State: // likewise, with its one entry
			st := *m.State
			st.Entries = slices.Clone(st.Entries)
			st.Entries[0].Ann.Sign(testKey, 1764493690000, 1764493694000)
			s.State = &st
			trailers *= 2
		}
		fields := verbs[k].fields
		if k == State {
			fields += entryFields
		}
		s.Sign(testKey, 1764493690123, 1764493695123)
		for extra, m := range []Message{m, s} {
			b := m.Append(nil)
			f := strings.Fields(string(b))
			if f[0] != verbs[k].name || f[0] != k.String() {
				t.Errorf("%v: first field %q, want %q", k, f[0], verbs[k].name)
			}
			if want := fields + extra*trailers; len(f) != want {
				t.Errorf("%q: %d fields, want %d", b, len(f), want)
			}
			if got, err := Parse(b); err != nil || !reflect.DeepEqual(got, m) {
				t.Errorf("Parse(%q) = %+v, %v; want %+v", b, got, err, m)
			}
		}
	}
	for k := range samples {
		t.Errorf("%v is not in the verb table", k)
	}
}

// TestParseErrors pins the error of each refusal to its exact text.
func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"JOIN 0a1b2c3d", `unknown_verb: unknown verb "JOIN"`},
		{"leave 0a1b2c3d", `unknown_verb: unknown verb "leave"`},
		{"ABCDEFGHIJKLMNOPQ 0a1b2c3d", `unknown_verb: unknown verb "ABCDEFGHIJKLMNOP..."`},
		{"ANNOUNCE 0a1b2c3d 10.0.2.15 n 4 1024 512", "malformed: ANNOUNCE has 7 fields, want 8 (or 12 signed)"},
		{"HEARTBEAT 0a1b2c3d 0.25 512 2 1", "malformed: HEARTBEAT has 6 fields, want 5 (or 9 signed)"},
		{"LEAVE", "malformed: LEAVE has 1 fields, want 2 (or 6 signed)"},
		{"PROBE 0a1b2c3d 5e6f7a8b 1 2 630dcd29", "malformed: PROBE has 6 fields, want 3 (or 7 signed)"},
		{"LEAVE 0A1B2C3D", `malformed: bad node_id "0A1B2C3D": want 8 lowercase hex digits`},
		{"ANNOUNCE 0a1b2c3d 10.0.2 n 4 1024 512 2", `malformed: bad addr "10.0.2": want dotted IPv4`},
		{"ANNOUNCE 0a1b2c3d 10.0.2.15 a/b 4 1024 512 2", `malformed: bad name "a/b": want 1-63 of [A-Za-z0-9._-]`},
		{"ANNOUNCE 0a1b2c3d 10.0.2.15 n 0 1024 512 2", `malformed: bad cpu_count "0": want 1-65535`},
		{"ANNOUNCE 0a1b2c3d 10.0.2.15 n 4 1e3 512 2", `malformed: bad mem_total "1e3": want a 64-bit unsigned decimal`},
		{"ANNOUNCE 0a1b2c3d 10.0.2.15 n 4 1024 1025 2", `malformed: bad mem_free "1025": want a decimal no larger than mem_total`},
		{"ANNOUNCE 0a1b2c3d 10.0.2.15 n 4 1024 512 65536", `malformed: bad container_count "65536": want 0-65535`},
		{"HEARTBEAT 0a1b2c3d 0.2 512 2", `malformed: bad load "0.2": want a decimal 0.00-65535.99 with two decimals`},
		{"HEARTBEAT 0a1b2c3d 0.25 -1 2", `malformed: bad mem_free "-1": want a 64-bit unsigned decimal`},
		{"HEARTBEAT 0a1b2c3d 0.25 512 02", `malformed: bad container_count "02": want 0-65535`},
		{"PROBE 0a1b2c3d 5E6F7A8B", `malformed: bad target "5E6F7A8B": want 8 lowercase hex digits`},
		{"ASK 0a1b2c3d 5e6f7a8b 1", "malformed: ASK has 4 fields, want 3 (or 7 signed)"},
		{"ASK 0a1b2c3d 5e6f7a8", `malformed: bad target "5e6f7a8": want 8 lowercase hex digits`},
		// A signed RELAY carries a signed HEARTBEAT; 11 fields are neither.
		{"RELAY 0a1b2c3d HEARTBEAT 5e6f7a8b 0.25 512 2 1 2 630dcd29 1e229d7b6c8d4536a5798611c5bfcbee",
			"malformed: RELAY has 11 fields, want 7 (or 15 signed)"},
		{"RELAY 0a1b2c3d ANNOUNCE 5e6f7a8b 10.0.2.15 n 4", `malformed: bad relayed verb "ANNOUNCE": want HEARTBEAT`},
		{"RELAY 0a1b2c3d RELAY 0a1b2c3d HEARTBEAT 5e6f7a8b 0.25", `malformed: bad relayed verb "RELAY": want HEARTBEAT`},
		{"RELAY 0a1b2c3d HEARTBEAT 5E6F7A8B 0.25 512 2", `malformed: bad node_id "5E6F7A8B": want 8 lowercase hex digits`},
		{"RELAY 0a1b2c3d HEARTBEAT 5e6f7a8b 0.2 512 2", `malformed: bad load "0.2": want a decimal 0.00-65535.99 with two decimals`},
		{"LEAVE 0a1b2c3d 0 2 630dcd29 1e229d7b6c8d4536a5798611c5bfcbee", `malformed: bad inc "0": want a decimal 1-18446744073709551615`},
		{"LEAVE 0a1b2c3d 1 2 630dcd29 1E229d7b6c8d4536a5798611c5bfcbee", // a key's look-alike: redacted
			`malformed: bad tag "<redacted>": want 32 lowercase hex digits`},
	} {
		m, err := Parse([]byte(tc.in))
		if err == nil || err.Error() != tc.want {
			t.Errorf("Parse(%q) = %+v, %v; want %s", tc.in, m, err, tc.want)
		}
	}
	for _, k := range []Kind{0, State + 1} {
		if err := (Message{Kind: k, ID: "0a1b2c3d"}).Validate(); err == nil || err.Error() != "bad kind "+strconv.Itoa(int(k)) {
			t.Errorf("Validate of kind %d: %v", k, err)
		}
		if got, want := k.String(), "Kind("+strconv.Itoa(int(k))+")"; got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", k, got, want)
		}
	}
}
