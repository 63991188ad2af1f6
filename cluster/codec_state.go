package cluster

import (
	"fmt"
	"strconv"
)

// The codec of the state exchange (docs/protocol.md §2, §4.6): SYNC, a
// request for a peer's view of the cluster, and STATE, one part of the
// answer or an introduction, which carries peers' ANNOUNCEs verbatim,
// each after its age.

// Snapshot is what a STATE carries (docs/protocol.md §4.6).
type Snapshot struct {
	// Part and Parts number the datagrams of one answer, 1 to Parts;
	// both are 0 in an introduction, which answers no SYNC.
	Part, Parts int
	// Entries are the peers, each an ANNOUNCE signed if and only if the
	// STATE is, with its age. At least one.
	Entries []Entry
}

// Entry is one peer in a STATE: its last ANNOUNCE, verbatim, and how
// long ago the sender last heard it.
type Entry struct {
	Age uint32 // ms since the sender last heard the peer
	Ann Message
}

// Field counts of a STATE (docs/protocol.md §2): five before the
// entries (verb, node_id, part, parts, count), then each entry's age
// and ANNOUNCE.
const (
	stateHead        = 5
	entryFields      = 1 + 8 // age, then a plain ANNOUNCE
	maxStateParts    = 65535
	maxEntryAge      = 1<<32 - 1
	signedEntryExtra = keyedFields
)

// parseState parses a STATE split into its fields; its signed form has
// four fields more per entry, and its own trailer (docs/protocol.md §2,
// §9.1).
func parseState(f []string) (Message, error) {
	m := Message{Kind: State}
	if len(f) < stateHead {
		return Message{}, dropf(ReasonMalformed, "STATE has %d fields, want at least %d", len(f), stateHead)
	}
	if !ValidID(f[1]) {
		return Message{}, badField("node_id", f[1], "8 lowercase hex digits")
	}
	m.ID = f[1]
	var st Snapshot
	part, ok1 := parseUint(f[2], maxStateParts)
	parts, ok2 := parseUint(f[3], maxStateParts)
	switch {
	case !ok1:
		return Message{}, badField("part", clip(f[2]), "0-65535")
	case !ok2:
		return Message{}, badField("parts", clip(f[3]), "0-65535")
	case parts == 0 && part != 0 || parts > 0 && (part < 1 || part > parts):
		return Message{}, badField("part", f[2], "1 to parts, or 0 with parts 0")
	}
	st.Part, st.Parts = int(part), int(parts)
	count, ok := parseUint(f[4], maxStateParts)
	if !ok || count == 0 {
		return Message{}, badField("count", clip(f[4]), "1-65535")
	}
	per := entryFields
	switch plain, signed := stateHead+int(count)*entryFields, stateHead+int(count)*(entryFields+signedEntryExtra)+keyedFields; len(f) {
	case plain:
	case signed:
		if err := m.parseTrailer(f[len(f)-keyedFields:]); err != nil {
			return Message{}, err
		}
		f = f[:len(f)-keyedFields]
		per += signedEntryExtra
	default:
		return Message{}, dropf(ReasonMalformed, "STATE of %d entries has %d fields, want %d (or %d signed)",
			count, len(f), plain, signed)
	}
	st.Entries = make([]Entry, 0, count)
	for i := stateHead; i < len(f); i += per {
		age, ok := parseUint(f[i], maxEntryAge)
		if !ok {
			return Message{}, badField("age", clip(f[i]), "0-4294967295")
		}
		if f[i+1] != verbs[Announce].name {
			return Message{}, badField("entry verb", clip(f[i+1]), "ANNOUNCE")
		}
		ann, err := parseFields(f[i+1 : i+per])
		if err != nil {
			return Message{}, err
		}
		st.Entries = append(st.Entries, Entry{Age: uint32(age), Ann: ann})
	}
	m.State = &st
	return m, nil
}

// appendState appends part, parts, count and the entries, each entry's
// ANNOUNCE with its trailer if signed.
func appendState(m Message, b []byte) []byte {
	st := m.State
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(st.Part), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(st.Parts), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(len(st.Entries)), 10)
	for _, e := range st.Entries {
		b = append(b, ' ')
		b = strconv.AppendUint(b, uint64(e.Age), 10)
		b = append(b, ' ')
		b = e.Ann.appendBody(b)
		if e.Ann.Keyed() {
			b = e.Ann.appendTrailer(b)
		}
	}
	return b
}

func checkState(m Message) error {
	st := m.State
	switch {
	case st == nil || len(st.Entries) == 0 || len(st.Entries) > maxStateParts:
		return fmt.Errorf("bad STATE: want 1-65535 entries")
	case st.Parts < 0 || st.Parts > maxStateParts || st.Parts == 0 && st.Part != 0 ||
		st.Parts > 0 && (st.Part < 1 || st.Part > st.Parts):
		return fmt.Errorf("bad part %d of %d: want 1 to parts, or 0 of 0", st.Part, st.Parts)
	}
	for i, e := range st.Entries {
		switch {
		case e.Ann.Kind != Announce:
			return fmt.Errorf("entry %d: want an ANNOUNCE", i)
		case e.Ann.Keyed() != m.Keyed():
			return fmt.Errorf("entry %d: signed %v in a STATE signed %v", i, e.Ann.Keyed(), m.Keyed())
		}
		if err := e.Ann.Validate(); err != nil {
			return fmt.Errorf("entry %d: %w", i, err)
		}
	}
	return nil
}

// parseSync parses the address a SYNC was sent to (docs/protocol.md §3).
func parseSync(m Message, f []string) (Message, error) {
	var ok bool
	if m.Addr, ok = parseIPv4(f[0]); !ok {
		return m, badField("to", f[0], "dotted IPv4")
	}
	return m, nil
}

func appendSync(m Message, b []byte) []byte {
	b = append(b, ' ')
	return m.Addr.AppendTo(b)
}

func checkSync(m Message) error {
	if !m.Addr.Is4() {
		return fmt.Errorf("bad to %v: want IPv4", m.Addr)
	}
	return nil
}
