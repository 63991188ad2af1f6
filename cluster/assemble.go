package cluster

// Assemble: a node put together the one way the programs that run one
// (the kernel, cmd/fornaxd) do.

import (
	crand "crypto/rand"
	"encoding/binary"
	"math/rand/v2"
	"net"
	"strconv"
)

// Assemble returns a node of cfg, run with profile's timings, on conn,
// and its description. Beyond New, it gives the node a Rand seeded from
// crypto/rand when cfg has none, rather than New's default from the ID and
// the clock, so that nodes booted together do not draw the same reply
// jitter; and it clears cfg.Keys once New has copied them, whether New
// succeeds or not, so that the program's copies of the keys do not
// outlive its start. New's errors are returned as they are.
func Assemble(cfg Config, profile Profile, conn net.PacketConn) (*Node, Description, error) {
	defer func() {
		for _, k := range cfg.Keys {
			clear(k)
		}
	}()
	desc := Description{Key: "no key", Profile: profile.Name, Seeds: len(cfg.Seeds)}
	if len(cfg.Keys) > 0 {
		desc.Key = "key " + Fingerprint(cfg.Keys[0])
	}
	if cfg.Rand == nil {
		var seed [16]byte
		crand.Read(seed[:])
		cfg.Rand = rand.New(rand.NewPCG(binary.LittleEndian.Uint64(seed[:8]), binary.LittleEndian.Uint64(seed[8:])))
	}
	profile.Apply(&cfg)
	node, err := New(cfg, conn)
	if err != nil {
		return nil, Description{}, err
	}
	return node, desc, nil
}

// Description says what a node runs with, for the line a program prints
// when it starts: its key by fingerprint, never the key itself
// (docs/protocol.md §9), and its profile.
type Description struct {
	Key     string // "key 1a2b3c4d", the primary key's Fingerprint, or "no key"
	Profile string // the profile's name
	Seeds   int    // how many seeds it was given (docs/protocol.md §4.6)
}

// String is Key, followed by the profile when it is not the default one
// ("key 1a2b3c4d, profile fast"): every node of a cluster must run the
// same profile (docs/protocol.md §4.4), so a departure is worth a word;
// and by the number of seeds, if any ("no key, 2 seeds").
func (d Description) String() string {
	s := d.Key
	if d.Profile != Profiles[0].Name {
		s += ", profile " + d.Profile
	}
	switch {
	case d.Seeds == 1:
		s += ", 1 seed"
	case d.Seeds > 1:
		s += ", " + strconv.Itoa(d.Seeds) + " seeds"
	}
	return s
}
