package cluster

import (
	"fmt"
	"strconv"
)

// Kind is a message verb.
type Kind uint8

// The verbs (docs/protocol.md §2 Messages).
const (
	Announce Kind = iota + 1
	Heartbeat
	Leave
	// Probe asks a quiet or suspect peer, by unicast, whether it is
	// alive; it answers with a HEARTBEAT (docs/protocol.md §4.5).
	Probe
	// Ask asks a peer, by unicast, to probe another for us: an indirect
	// probe (docs/protocol.md §4.5).
	Ask
	// Relay carries, by unicast, the HEARTBEAT a peer answered an Ask's
	// probe with, verbatim, to the node that asked (docs/protocol.md §4.5).
	Relay
	// Sync asks for a peer's view of the cluster: a STATE answer
	// (docs/protocol.md §4.6).
	Sync
	// State carries peers' ANNOUNCEs, verbatim: one part of the answer to
	// a SYNC, or an introduction (docs/protocol.md §4.6).
	State
)

// verb is what the codec knows of one Kind: Parse, Append and Validate
// read the grammar of docs/protocol.md §2 from this table alone.
//
// parse, format and check deal with the fields after the node_id, which
// the codec handles for every verb; they are nil for LEAVE, which has
// none, and parse is nil for RELAY, whose HEARTBEAT parseFields parses,
// and for STATE, whose fields parseState parses (codec_state.go): their
// number is fields only for a STATE of no entries, which is malformed.
type verb struct {
	name   string // the first field
	fields int    // fields of a plain message, verb included
	// parse fills m from the fields after the node_id (fields-2 of them,
	// non-empty, printable ASCII); its errors are *DropError, malformed.
	parse func(m Message, f []string) (Message, error)
	// format appends those fields, each after a space.
	format func(m Message, b []byte) []byte
	// check is Validate's rule for the fields parse fills.
	check func(m Message) error
}

// verbs is the verb table, indexed by Kind. Messages go by value
// through its functions so that Parse and Append, on the receive and
// send paths, do not allocate for them.
var verbs = [...]verb{
	Announce:  {"ANNOUNCE", 8, parseAnnounce, appendAnnounce, checkAnnounce},
	Heartbeat: {"HEARTBEAT", 5, parseHeartbeat, appendHeartbeat, checkHeartbeat},
	Leave:     {"LEAVE", 2, nil, nil, nil},
	Probe:     {"PROBE", 3, parseProbe, appendProbe, checkProbe},
	Ask:       {"ASK", 3, parseProbe, appendProbe, checkProbe},
	Relay:     {"RELAY", 2 + 5, nil, nil, nil}, // see init
	Sync:      {"SYNC", 3, parseSync, appendSync, checkSync},
	State:     {"STATE", stateHead, nil, nil, nil}, // see init; parseState parses it
}

// init completes RELAY's row, whose functions format and check the
// HEARTBEAT it carries through this table: in the literal they would
// make an initialization cycle; so would STATE's, which carry
// ANNOUNCEs. A RELAY's fields are those of the
// HEARTBEAT it carries, and it is signed if and only if that HEARTBEAT
// is: 7 fields, or 15 signed (parseFields, which parses what it carries).
func init() {
	verbs[Relay].format, verbs[Relay].check = appendRelay, checkRelay
	verbs[State].format, verbs[State].check = appendState, checkState
}

// verb returns k's row of the table, or nil if k is no verb.
func (k Kind) verb() *verb {
	if k == 0 || int(k) >= len(verbs) {
		return nil
	}
	return &verbs[k]
}

// kindNamed returns the Kind whose verb is s, or 0.
func kindNamed(s string) Kind {
	for k := range verbs {
		if k > 0 && verbs[k].name == s {
			return Kind(k)
		}
	}
	return 0
}

func (k Kind) String() string {
	if v := k.verb(); v != nil {
		return v.name
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// badField is Parse's error for a field that breaks its rule.
func badField(field, val, want string) error {
	return dropf(ReasonMalformed, "bad %s %q: want %s", field, val, want)
}

// parseAnnounce parses addr name cpu_count mem_total mem_free
// container_count (docs/protocol.md §3).
func parseAnnounce(m Message, f []string) (Message, error) {
	var ok bool
	var v uint64
	if m.Addr, ok = parseIPv4(f[0]); !ok {
		return m, badField("addr", f[0], "dotted IPv4")
	}
	if !ValidName(f[1]) {
		return m, badField("name", f[1], "1-63 of [A-Za-z0-9._-]")
	}
	m.Name = f[1]
	if v, ok = parseUint(f[2], maxCPUs); !ok || v == 0 {
		return m, badField("cpu_count", f[2], "1-65535")
	}
	m.CPUs = int(v)
	if m.MemTotal, ok = parseUint(f[3], maxUint64); !ok {
		return m, badField("mem_total", f[3], "a 64-bit unsigned decimal")
	}
	if m.MemFree, ok = parseUint(f[4], maxUint64); !ok || m.MemFree > m.MemTotal {
		return m, badField("mem_free", f[4], "a decimal no larger than mem_total")
	}
	if v, ok = parseUint(f[5], maxContainers); !ok {
		return m, badField("container_count", f[5], "0-65535")
	}
	m.Containers = int(v)
	return m, nil
}

func appendAnnounce(m Message, b []byte) []byte {
	b = append(b, ' ')
	b = m.Addr.AppendTo(b)
	b = append(b, ' ')
	b = append(b, m.Name...)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(m.CPUs), 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, m.MemTotal, 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, m.MemFree, 10)
	b = append(b, ' ')
	return strconv.AppendInt(b, int64(m.Containers), 10)
}

func checkAnnounce(m Message) error {
	switch {
	case !m.Addr.Is4():
		return fmt.Errorf("bad addr %v: want IPv4", m.Addr)
	case !ValidName(m.Name):
		return fmt.Errorf("bad name %q: want 1-63 of [A-Za-z0-9._-]", m.Name)
	case m.CPUs < 1 || m.CPUs > maxCPUs:
		return fmt.Errorf("bad cpu_count %d: want 1-65535", m.CPUs)
	case m.MemFree > m.MemTotal:
		return fmt.Errorf("bad mem_free %d: larger than mem_total %d", m.MemFree, m.MemTotal)
	}
	return checkHeartbeat(m) // the figures both carry
}

// parseHeartbeat parses load mem_free container_count (docs/protocol.md §3).
func parseHeartbeat(m Message, f []string) (Message, error) {
	var ok bool
	var v uint64
	if m.Load, ok = parseLoad(f[0]); !ok {
		return m, badField("load", f[0], "a decimal 0.00-65535.99 with two decimals")
	}
	if m.MemFree, ok = parseUint(f[1], maxUint64); !ok {
		return m, badField("mem_free", f[1], "a 64-bit unsigned decimal")
	}
	if v, ok = parseUint(f[2], maxContainers); !ok {
		return m, badField("container_count", f[2], "0-65535")
	}
	m.Containers = int(v)
	return m, nil
}

func appendHeartbeat(m Message, b []byte) []byte {
	b = append(b, ' ')
	b = m.Load.append(b)
	b = append(b, ' ')
	b = strconv.AppendUint(b, m.MemFree, 10)
	b = append(b, ' ')
	return strconv.AppendInt(b, int64(m.Containers), 10)
}

func checkHeartbeat(m Message) error {
	if m.Containers < 0 || m.Containers > maxContainers {
		return fmt.Errorf("bad container_count %d: want 0-65535", m.Containers)
	}
	if m.Load > maxLoad {
		return fmt.Errorf("bad load %v: want at most 65535.99", m.Load)
	}
	return nil
}

// parseProbe parses the target of a PROBE or ASK (docs/protocol.md §3).
func parseProbe(m Message, f []string) (Message, error) {
	if !ValidID(f[0]) {
		return m, badField("target", f[0], "8 lowercase hex digits")
	}
	m.To = f[0]
	return m, nil
}

func appendProbe(m Message, b []byte) []byte {
	b = append(b, ' ')
	return append(b, m.To...)
}

func checkProbe(m Message) error {
	if !ValidID(m.To) {
		return fmt.Errorf("bad target %q: want 8 lowercase hex digits", m.To)
	}
	return nil
}

// appendRelay appends the HEARTBEAT a RELAY carries, with its trailer
// if signed (docs/protocol.md §2, §4.5).
func appendRelay(m Message, b []byte) []byte {
	b = append(b, ' ')
	b = m.Relayed.appendBody(b)
	if m.Relayed.Keyed() {
		b = m.Relayed.appendTrailer(b)
	}
	return b
}

func checkRelay(m Message) error {
	r := m.Relayed
	switch {
	case r == nil || r.Kind != Heartbeat:
		return fmt.Errorf("bad relayed message: want a HEARTBEAT")
	case r.Keyed() != m.Keyed():
		return fmt.Errorf("bad relayed message: signed %v in a RELAY signed %v", r.Keyed(), m.Keyed())
	}
	if err := r.Validate(); err != nil {
		return fmt.Errorf("relayed: %w", err)
	}
	return nil
}
