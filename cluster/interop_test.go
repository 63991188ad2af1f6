package cluster

import (
	"bytes"
	"encoding/hex"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// The interop tests check docs/protocol.md §9 against testdata/keyed.py, an
// independent implementation of signed messages written from the document
// alone: what Go signs, Python checks, and what Python signs, Go parses and
// verifies, byte for byte.

// docKey is the key of the example in docs/protocol.md §9.1: bytes 00 01 … 1f.
var docKey = func() []byte {
	k := make([]byte, 32)
	for i := range k {
		k[i] = byte(i)
	}
	return k
}()

var otherKey = bytes.Repeat([]byte{0xa5}, 32)

// python runs testdata/keyed.py with args and stdin, skipping the test when
// python3 is not installed.
func python(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not on PATH")
	}
	cmd := exec.Command(py, append([]string{"testdata/keyed.py"}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("keyed.py %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// interopMessages are plain messages of every verb, with fields at their
// bounds.
func interopMessages() []Message {
	return []Message{
		{Kind: Announce, ID: "0a1b2c3d", Addr: netip.MustParseAddr("10.0.2.15"),
			Name: "fornax-01", CPUs: 4, MemTotal: 268435456, MemFree: 134217728, Containers: 2},
		{Kind: Announce, ID: "ffffffff", Addr: netip.MustParseAddr("255.255.255.254"),
			Name: strings.Repeat("a.Z_9-", 10) + "xyz", CPUs: 65535, MemTotal: ^uint64(0),
			MemFree: ^uint64(0), Containers: 65535},
		{Kind: Announce, ID: "00000000", Addr: netip.MustParseAddr("0.0.0.0"),
			Name: "a", CPUs: 1},
		{Kind: Heartbeat, ID: "0a1b2c3d", Load: 25, MemFree: 134217728, Containers: 2},
		{Kind: Heartbeat, ID: "12345678", Load: 6553599, MemFree: ^uint64(0), Containers: 65535},
		{Kind: Heartbeat, ID: "9abcdef0"},
		{Kind: Leave, ID: "0a1b2c3d"},
		{Kind: Probe, ID: "0a1b2c3d", To: "5e6f7a8b"},
		{Kind: Probe, ID: "ffffffff", To: "00000000"},
	}
}

// incSeqs are (inc, seq) pairs to sign with, including the extremes.
var incSeqs = [][2]uint64{
	{1764493690123, 1764493695123},
	{1, 1},
	{1, ^uint64(0)},
	{^uint64(0), ^uint64(0)},
	{1000000000000, 1000000000000},
}

func signed(m Message, key []byte, inc, seq uint64) string {
	m.Sign(key, inc, seq)
	return string(m.Append(nil))
}

// flipTag changes the last digit of the tag of line (ending in "\n").
func flipTag(line string) string {
	b := []byte(line)
	i := len(b) - 2
	if b[i] == '0' {
		b[i] = '1'
	} else {
		b[i] = '0'
	}
	return string(b)
}

// TestInteropGoSignsPythonChecks: keyed.py check accepts what Go signs and
// rejects it once anything is changed.
func TestInteropGoSignsPythonChecks(t *testing.T) {
	var in, want, what []string
	add := func(line, verdict, desc string) {
		in, want, what = append(in, line), append(want, verdict), append(what, desc)
	}
	for _, m := range interopMessages() {
		for _, is := range incSeqs {
			inc, seq := is[0], is[1]
			good := signed(m, docKey, inc, seq)
			add(good, "ok", "as signed")
			add(flipTag(good), "bad", "tag digit flipped")
			add(signed(m, otherKey, inc, seq), "bad", "other key")
			// Another key's trailer with our key's fingerprint: tag wrong.
			o := signed(m, otherKey, inc, seq)
			add(strings.Replace(o, Fingerprint(otherKey), Fingerprint(docKey), 1), "bad", "other key, our key-id")
			if seq > inc {
				add(strings.Replace(good, " "+strconv.FormatUint(seq, 10)+" ",
					" "+strconv.FormatUint(seq-1, 10)+" ", 1), "bad", "seq changed")
			}
			// A changed body field: the node id's last digit.
			b := []byte(good)
			i := len(m.Kind.String()) + 8
			b[i] ^= 1
			add(string(b), "bad", "node id changed")
			// A field dropped, then signed again: the tag is right but the
			// field count is not.
			fs := strings.Fields(good)
			short := strings.Join(append(fs[:1:1], fs[2:len(fs)-1]...), " ")
			tag := tagOf(docKey, []byte(short))
			add(short+" "+string(tag[:])+"\n", "bad", "field dropped, signed again")
		}
		// seq below inc is valid: a new incarnation after the clock
		// was set back (§9.1).
		add(signed(m, docKey, 2000, 1999), "ok", "seq < inc")
		add(signed(m, docKey, 0, 0), "bad", "inc 0")
		add(string(m.Append(nil)), "bad", "plain")
	}
	// The last datagram without its newline, which is optional (§2).
	last := signed(interopMessages()[0], docKey, 7, 8)
	add(strings.TrimSuffix(last, "\n"), "ok", "without newline")
	out := strings.Split(strings.TrimSuffix(python(t, strings.Join(in, ""), "check", hex.EncodeToString(docKey)), "\n"), "\n")
	if len(out) != len(want) {
		t.Fatalf("keyed.py check: %d verdicts for %d lines", len(out), len(want))
	}
	for i := range want {
		if out[i] != want[i] {
			t.Errorf("keyed.py check %q (%s) = %s, want %s", in[i], what[i], out[i], want[i])
		}
	}
}

// TestInteropPythonSignsGoVerifies: Go parses and verifies what keyed.py
// signs, and it is byte for byte what Go signs.
func TestInteropPythonSignsGoVerifies(t *testing.T) {
	for _, key := range [][]byte{docKey, otherKey} {
		keyhex := hex.EncodeToString(key)
		for _, m := range interopMessages() {
			body := m.String()
			t.Run(m.Kind.String()+"/"+keyhex[:4], func(t *testing.T) {
				t.Parallel() // each keyed.py run costs a Python start-up
				pairs := incSeqs
				if !bytes.Equal(key, docKey) {
					pairs = pairs[:1] // another key: one pair is enough
				}
				for _, is := range pairs {
					inc, seq := is[0], is[1]
					got := python(t, "", "sign", keyhex, strconv.FormatUint(inc, 10), strconv.FormatUint(seq, 10), body)
					if want := signed(m, key, inc, seq); got != want {
						t.Errorf("keyed.py sign %q %d %d:\n got %q\nwant %q", body, inc, seq, got, want)
					}
					p, err := Parse([]byte(got))
					if err != nil {
						t.Errorf("Parse(%q): %v", got, err)
						continue
					}
					if !p.Keyed() || p.Inc != inc || p.Seq != seq || p.KeyID != Fingerprint(key) {
						t.Errorf("Parse(%q): keyed %v inc %d seq %d key %q; want inc %d seq %d key %q",
							got, p.Keyed(), p.Inc, p.Seq, p.KeyID, inc, seq, Fingerprint(key))
					}
					if p.String()+"\n" != got {
						t.Errorf("Parse(%q) re-formats as %q", got, p.String())
					}
					if !p.Verify(key) {
						t.Errorf("Verify(%q) with its key = false", got)
					}
					other := docKey
					if bytes.Equal(key, docKey) {
						other = otherKey
					}
					if p.Verify(other) {
						t.Errorf("Verify(%q) with another key = true", got)
					}
				}
			})
		}
	}
}

// TestInteropDocExample: the example of docs/protocol.md §9.1 must carry
// the real tag, which Go and Python agree on.
func TestInteropDocExample(t *testing.T) {
	const prefix = "HEARTBEAT 0a1b2c3d 0.25 134217728 2 "
	m := Message{Kind: Heartbeat, ID: "0a1b2c3d", Load: 25, MemFree: 134217728, Containers: 2}
	const inc, seq = 1764493690123, 1764493695123
	want := strings.TrimSuffix(signed(m, docKey, inc, seq), "\n")
	if fp := Fingerprint(docKey); fp != "630dcd29" {
		t.Errorf("fingerprint of 00 01 … 1f = %s, doc says 630dcd29", fp)
	}
	if py := python(t, "", "sign", hex.EncodeToString(docKey), strconv.Itoa(inc), strconv.Itoa(seq), m.String()); py != want+"\n" {
		t.Errorf("keyed.py sign = %q, Go = %q", py, want)
	}

	doc, err := os.ReadFile("../docs/protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	sec := string(doc)
	start := strings.Index(sec, "\n### 9.1 ")
	if start < 0 {
		t.Fatal("docs/protocol.md: no §9.1")
	}
	sec = sec[start+1:]
	if end := strings.Index(sec, "\n### "); end >= 0 {
		sec = sec[:end]
	}
	var line string
	for _, l := range strings.Split(sec, "\n") {
		if strings.HasPrefix(l, prefix) {
			line = l
			break
		}
	}
	switch {
	case line == "":
		t.Fatalf("docs/protocol.md §9.1: no example line starting %q", prefix)
	case strings.HasSuffix(line, "<tag>"):
		t.Errorf("docs/protocol.md §9.1: the example has a placeholder tag; use:\n%s", want)
	case line != want:
		t.Errorf("docs/protocol.md §9.1 example:\n got %s\nwant %s", line, want)
	}
	if line == "" || strings.HasSuffix(line, "<tag>") {
		return
	}
	p, err := Parse([]byte(line))
	if err != nil || !p.Keyed() || !p.Verify(docKey) {
		t.Errorf("docs/protocol.md §9.1 example %q does not verify with key 00 01 … 1f (err %v)", line, err)
	}
	if out := python(t, line+"\n", "check", hex.EncodeToString(docKey)); out != "ok\n" {
		t.Errorf("keyed.py check of the doc example = %q", out)
	}
}
