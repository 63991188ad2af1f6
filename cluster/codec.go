package cluster

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"fornax/internal/names"
)

// Wire constants (docs/protocol.md §1 Transport).
const (
	// DefaultPort is the UDP port every node sends to and listens on.
	DefaultPort = 9710
	// MaxMessageSize is the largest valid datagram, trailing newline included.
	MaxMessageSize = 512
)

// Field bounds (docs/protocol.md §3 Fields).
const (
	maxCPUs       = 65535
	maxContainers = 65535
	maxLoadInt    = 65535
	maxUint64     = ^uint64(0)
)

// Load is the busy CPU fraction summed over CPUs, in hundredths: 25 is
// "0.25", 150 is "1.50" (docs/protocol.md §3 Fields, load).
type Load uint32

const maxLoad = Load(maxLoadInt*100 + 99)

// LoadOf converts a fraction to a Load, rounding to the nearest hundredth
// and clamping to 0.00–65535.99 (NaN is 0).
func LoadOf(f float64) Load {
	switch {
	case !(f > 0): // also NaN
		return 0
	case f >= float64(maxLoad)/100:
		return maxLoad
	}
	return Load(f*100 + 0.5)
}

func (l Load) String() string { return string(l.append(nil)) }

func (l Load) append(b []byte) []byte {
	b = strconv.AppendUint(b, uint64(l/100), 10)
	return append(b, '.', byte('0'+l%100/10), byte('0'+l%10))
}

// Message is one datagram of the protocol. Which fields are used depends
// on Kind (docs/protocol.md §2 Messages):
//
//	ANNOUNCE  ID Addr Name CPUs MemTotal MemFree Containers
//	HEARTBEAT ID Load MemFree Containers
//	LEAVE     ID
//	PROBE     ID To
//	ASK       ID To
//	RELAY     ID Relayed
//	SYNC      ID Addr (where it was sent)
//	STATE     ID State
type Message struct {
	Kind       Kind
	ID         string     // node_id: 8 lowercase hex digits
	Addr       netip.Addr // ANNOUNCE: the sender's IPv4 address; SYNC: the address it was sent to
	Name       string     // ANNOUNCE: 1–63 of [A-Za-z0-9._-]
	CPUs       int        // ANNOUNCE: 1–65535
	MemTotal   uint64     // ANNOUNCE: bytes
	MemFree    uint64     // ANNOUNCE, HEARTBEAT: bytes (≤ MemTotal in ANNOUNCE)
	Containers int        // ANNOUNCE, HEARTBEAT: 0–65535 running containers
	Load       Load       // HEARTBEAT
	To         string     // PROBE, ASK: the node_id of the peer probed
	// Relayed is the HEARTBEAT a RELAY carries, signed if the RELAY is.
	Relayed *Message
	// State is what a STATE carries (codec_state.go).
	State *Snapshot

	// A keyed message (docs/protocol.md §9) also carries these; KeyID is
	// empty in a plain one.
	Inc   uint64 // the sender's incarnation: its wall clock at start, in ms
	Seq   uint64 // its wall clock at sending, in ms, increasing within an incarnation
	KeyID string // the fingerprint of the key that signed it
	Tag   string // 32 lowercase hex digits: HMAC-SHA256 of what precedes it
}

// Keyed reports whether m carries the keyed trailer.
func (m Message) Keyed() bool { return m.KeyID != "" }

// Reason is why a datagram was dropped; its String is the stats name
// (docs/protocol.md §6 Validation).
type Reason uint8

// Drop reasons, in the order the stats file lists them.
const (
	ReasonOversize       Reason = iota // longer than MaxMessageSize
	ReasonMalformed                    // bad bytes, field count, or field
	ReasonUnknownVerb                  // first field is not a known verb
	ReasonForeignSubnet                // source is not a host of our subnet
	ReasonOwnID                        // our node_id, from another address
	ReasonOwnAddr                      // another node_id, from our address
	ReasonAddrMismatch                 // ANNOUNCE addr differs from the source
	ReasonSourceMismatch               // HEARTBEAT/LEAVE not from the peer's recorded addr
	ReasonUnknownID                    // HEARTBEAT/LEAVE from an id not in the table
	ReasonTableFull                    // new id while the table holds MaxPeers and no dead entry to evict
	ReasonLeft                         // received while the node has left
	ReasonUnkeyed                      // plain message while signatures are required (§9)
	ReasonUnknownKey                   // signed with a key not in the keyring
	ReasonBadTag                       // tag does not match
	ReasonStale                        // seq (the send time) outside the clock window
	ReasonReplay                       // (inc, seq) not newer than the last accepted from the id
	ReasonAddrConflict                 // ANNOUNCE of an online or suspect id from another address
	ReasonWrongTarget                  // PROBE naming another node_id than ours
	ReasonForeignPort                  // source port is not the cluster's port (§1)
	ReasonSeenFull                     // new signer while the replay memory is full (§9.2)
	ReasonIDsPerAddr                   // new signer from an address that brought too many (§9.2)
	ReasonUnasked                      // RELAY we did not ask for, or of a dead peer (§4.5)
	numReasons
)

var reasonNames = [numReasons]string{
	ReasonOversize: "oversize", ReasonMalformed: "malformed", ReasonUnknownVerb: "unknown_verb",
	ReasonForeignSubnet: "foreign_subnet", ReasonOwnID: "own_id", ReasonOwnAddr: "own_addr",
	ReasonAddrMismatch: "addr_mismatch", ReasonSourceMismatch: "source_mismatch",
	ReasonUnknownID: "unknown_id", ReasonTableFull: "table_full", ReasonLeft: "left",
	ReasonUnkeyed: "unkeyed", ReasonUnknownKey: "unknown_key", ReasonBadTag: "bad_tag",
	ReasonStale: "stale", ReasonReplay: "replay", ReasonAddrConflict: "addr_conflict",
	ReasonWrongTarget: "wrong_target", ReasonForeignPort: "foreign_port", ReasonSeenFull: "seen_full",
	ReasonIDsPerAddr: "ids_per_addr", ReasonUnasked: "unasked",
}

func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return "Reason(" + strconv.Itoa(int(r)) + ")"
}

// DropError reports a datagram that must be dropped, and why.
type DropError struct {
	Reason Reason
	Detail string
}

func (e *DropError) Error() string { return e.Reason.String() + ": " + e.Detail }

func dropf(r Reason, format string, args ...any) *DropError {
	return &DropError{Reason: r, Detail: fmt.Sprintf(format, args...)}
}

// Parse decodes one datagram (docs/protocol.md §2–§3). Checks run in the
// order of §6 step 3 and the first that fails decides the error, a *DropError
// with Reason ReasonOversize, ReasonUnknownVerb or ReasonMalformed.
func Parse(b []byte) (Message, error) {
	if len(b) > MaxMessageSize {
		return Message{}, dropf(ReasonOversize, "%d bytes, limit %d", len(b), MaxMessageSize)
	}
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
	}
	if len(b) == 0 {
		return Message{}, dropf(ReasonMalformed, "empty message")
	}
	for _, c := range b {
		if c < ' ' || c > '~' {
			return Message{}, dropf(ReasonMalformed, "byte 0x%02x is not printable ASCII", c)
		}
	}
	f := strings.Split(string(b), " ")
	for _, s := range f {
		if s == "" {
			return Message{}, dropf(ReasonMalformed, "empty field (leading, trailing or double space)")
		}
	}
	return parseFields(f)
}

// parseFields decodes a message split into its fields: Parse's work
// after the byte checks, and a RELAY's for the HEARTBEAT it carries.
func parseFields(f []string) (Message, error) {
	k := kindNamed(f[0])
	if k == 0 {
		v := f[0]
		if len(v) > 16 {
			v = v[:16] + "..."
		}
		return Message{}, dropf(ReasonUnknownVerb, "unknown verb %q", v)
	}
	if k == State {
		return parseState(f)
	}
	m, v := Message{Kind: k}, k.verb()
	plain, signed := v.fields, v.fields+keyedFields
	if k == Relay {
		signed += keyedFields // signed, and so is what it carries
	}
	switch len(f) {
	case plain:
	case signed:
		if err := m.parseTrailer(f[len(f)-keyedFields:]); err != nil {
			return Message{}, err
		}
		f = f[:len(f)-keyedFields]
	default:
		return Message{}, dropf(ReasonMalformed, "%v has %d fields, want %d (or %d signed)",
			k, len(f), plain, signed)
	}
	if !ValidID(f[1]) {
		return Message{}, badField("node_id", f[1], "8 lowercase hex digits")
	}
	m.ID = f[1]
	if k == Relay {
		if f[2] != verbs[Heartbeat].name {
			return Message{}, badField("relayed verb", clip(f[2]), "HEARTBEAT")
		}
		in, err := parseFields(f[2:])
		if err != nil {
			return Message{}, err
		}
		m.Relayed = &in
		return m, nil
	}
	if v.parse == nil {
		return m, nil
	}
	m, err := v.parse(m, f[2:])
	if err != nil {
		return Message{}, err
	}
	return m, nil
}

// keyedFields is the number of fields of the keyed trailer: inc seq key tag.
const keyedFields = 4

// parseTrailer parses the keyed trailer (docs/protocol.md §9.1).
func (m *Message) parseTrailer(f []string) error {
	bad := func(field, val, want string) error { return badField(field, clip(val), want) }
	var ok bool
	if m.Inc, ok = parseUint(f[0], maxUint64); !ok || m.Inc == 0 {
		return bad("inc", f[0], "a decimal 1-18446744073709551615")
	}
	if m.Seq, ok = parseUint(f[1], maxUint64); !ok {
		return bad("seq", f[1], "a 64-bit unsigned decimal")
	}
	if !ValidID(f[2]) {
		return bad("key", f[2], "8 lowercase hex digits")
	}
	if !isLowerHex(f[3], 2*TagSize) {
		return bad("tag", f[3], "32 lowercase hex digits")
	}
	m.KeyID, m.Tag = f[2], f[3]
	return nil
}

func isLowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// Sign makes m a keyed message of incarnation inc and sequence seq,
// signed with key (docs/protocol.md §9.1).
func (m *Message) Sign(key []byte, inc, seq uint64) { newSigner(key).sign(m, inc, seq) }

// Verify reports whether m's tag is right for key. m must be keyed.
func (m Message) Verify(key []byte) bool { return newSigner(key).verify(&m) }

// appendSigned appends the bytes a keyed message's tag covers: all of it
// up to the space before the tag (docs/protocol.md §9.1).
func (m Message) appendSigned(b []byte) []byte {
	b = m.appendBody(b)
	return m.appendKey(b)
}

// appendTrailer appends the keyed trailer: inc seq key tag, each after
// a space.
func (m Message) appendTrailer(b []byte) []byte {
	b = m.appendKey(b)
	b = append(b, ' ')
	return append(b, m.Tag...)
}

// appendKey appends inc seq key, each after a space.
func (m Message) appendKey(b []byte) []byte {
	b = append(b, ' ')
	b = strconv.AppendUint(b, m.Inc, 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, m.Seq, 10)
	b = append(b, ' ')
	return append(b, m.KeyID...)
}

// Validate reports whether m would pass Parse after Append: the same
// field rules, as a plain error naming the field.
func (m Message) Validate() error {
	v := m.Kind.verb()
	if v == nil {
		return fmt.Errorf("bad kind %d", m.Kind)
	}
	if !ValidID(m.ID) {
		return fmt.Errorf("bad node_id %q: want 8 lowercase hex digits", m.ID)
	}
	if v.check != nil {
		if err := v.check(m); err != nil {
			return err
		}
	}
	if m.Keyed() && (m.Inc == 0 || !ValidID(m.KeyID) || !isLowerHex(m.Tag, 2*TagSize)) {
		return fmt.Errorf("bad keyed trailer: inc %d seq %d key %q tag %q", m.Inc, m.Seq, m.KeyID, m.Tag)
	}
	return nil
}

// Append appends the canonical wire form of m, trailing newline included
// (docs/protocol.md §2). m must be valid (see Validate); Parse of the
// result returns m with the fields its Kind does not use zeroed.
func (m Message) Append(b []byte) []byte {
	if m.Keyed() {
		b = m.appendSigned(b)
		b = append(b, ' ')
		b = append(b, m.Tag...)
	} else {
		b = m.appendBody(b)
	}
	return append(b, '\n')
}

// appendBody appends the fields of docs/protocol.md §2, without newline.
func (m Message) appendBody(b []byte) []byte {
	b = append(b, m.Kind.String()...)
	b = append(b, ' ')
	b = append(b, m.ID...)
	if v := m.Kind.verb(); v != nil && v.format != nil {
		b = v.format(m, b)
	}
	return b
}

// String returns the wire form without the trailing newline.
func (m Message) String() string {
	b := m.Append(nil)
	return string(b[:len(b)-1])
}

// ValidID reports whether s is a node_id: exactly 8 of [0-9a-f].
func ValidID(s string) bool { return names.ValidID(s) }

// ValidName reports whether s is a node name: 1–63 of [A-Za-z0-9._-].
func ValidName(s string) bool { return names.ValidName(s) }

// parseUint parses a canonical unsigned decimal no larger than max: digits
// only, no sign, no leading zero unless the number is "0".
func parseUint(s string, max uint64) (uint64, bool) {
	if s == "" || len(s) > 20 || s[0] == '0' && len(s) > 1 {
		return 0, false
	}
	var v uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if v > (max-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	return v, true
}

// parseLoad parses int "." 2DIGIT with int a canonical decimal ≤ 65535.
func parseLoad(s string) (Load, bool) {
	i, frac, ok := strings.Cut(s, ".")
	if !ok || len(frac) != 2 || frac[0] < '0' || frac[0] > '9' || frac[1] < '0' || frac[1] > '9' {
		return 0, false
	}
	v, ok := parseUint(i, maxLoadInt)
	if !ok {
		return 0, false
	}
	return Load(v*100 + uint64(frac[0]-'0')*10 + uint64(frac[1]-'0')), true
}

// parseIPv4 parses a canonical dotted quad: four decimals 0–255 without
// leading zeros.
func parseIPv4(s string) (netip.Addr, bool) {
	var a [4]byte
	for i := range a {
		var part string
		if i < 3 {
			var ok bool
			if part, s, ok = strings.Cut(s, "."); !ok {
				return netip.Addr{}, false
			}
		} else {
			part = s
		}
		v, ok := parseUint(part, 255)
		if !ok {
			return netip.Addr{}, false
		}
		a[i] = byte(v)
	}
	return netip.AddrFrom4(a), true
}
