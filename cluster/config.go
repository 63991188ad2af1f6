package cluster

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Defaults of Config (docs/protocol.md §4 Timing, §5 Membership).
const (
	DefaultInterval     = 5 * time.Second
	DefaultSuspectAfter = 15 * time.Second
	DefaultDeadAfter    = 30 * time.Second
	DefaultRemoveAfter  = 60 * time.Second
	DefaultMaxPeers     = 1024
	DefaultReplyJitter  = 200 * time.Millisecond
	DefaultAnswerEvery  = time.Second
	DefaultWindow       = 30 * time.Second
	// DefaultMaxSyncAnswers is how many SYNCs a node answers with its
	// state at once, and then per Interval (docs/protocol.md §4.6).
	DefaultMaxSyncAnswers = 4
)

// Config configures a Node. Zero fields take the documented defaults;
// New rejects the rest when they make no sense.
type Config struct {
	// ID is the node_id, 8 lowercase hex digits. Required: IDFromMAC
	// derives it from the NIC, unless the operator gave id=.
	ID string
	// Name is the node's name, 1–63 of [A-Za-z0-9._-]. Default "fornax-" + ID.
	Name string
	// Addr is the node's IPv4 address on the interface it gossips on.
	Addr netip.Addr
	// Prefix is that interface's subnet (e.g. 10.0.2.15/24; host bits
	// are ignored). Messages go to its broadcast address and are accepted
	// only from its host addresses, so it must be /30 or shorter.
	Prefix netip.Prefix
	// Port is the UDP port sent to. Default DefaultPort (9710).
	Port int
	// Interval is the period of the node's messages. Default 5 s.
	Interval time.Duration
	// SuspectAfter is the silence after which a peer is suspect. Default 15 s.
	SuspectAfter time.Duration
	// DeadAfter is the silence after which a peer is dead. Default 30 s.
	DeadAfter time.Duration
	// RemoveAfter is how long a dead peer stays listed. Default 60 s.
	RemoveAfter time.Duration
	// MaxPeers caps the table; new ids beyond it are refused. Default 1024.
	MaxPeers int
	// ReplyJitter bounds the random delay of fast-join replies: uniform in
	// [0, ReplyJitter]. Default 200 ms.
	ReplyJitter time.Duration
	// Resources reports the node's own figures. It is called when a
	// message is built and when self/resources is read, must be cheap
	// and must not call back into the Node. Default: runtime.NumCPU()
	// CPUs, nothing else known.
	Resources func() Resources
	// Clock is the source of time. Default RealClock().
	Clock Clock
	// Rand draws the reply jitter; the node uses it under its lock, so it
	// must not be shared. Default: seeded from ID and the clock.
	Rand *rand.Rand
	// Logf, if set, receives membership changes, one line each. It must
	// not call back into the Node.
	Logf func(format string, args ...any)
	// Keys are the cluster keys (KeySize bytes each; see ParseKey), the
	// first one primary. With keys, every message is signed and only
	// signed messages are accepted (docs/protocol.md §9). Default: none,
	// the plain protocol of §2.
	Keys [][]byte
	// Auth is what the node sends and accepts (docs/protocol.md §9.3).
	// Default: AuthKeyed with Keys, AuthPlain without.
	Auth AuthMode
	// WallClock is the time of day, which dates signed messages: their
	// incarnation and seq, and the window they are accepted in. It is
	// not used for membership timing (Clock is). Default time.Now.
	WallClock func() time.Time
	// Window is how far the send time (seq) of a signed message may be
	// from the receiver's WallClock. Default 30 s.
	Window time.Duration
	// AnswerEvery is the least time between an ANNOUNCE and a fast-join
	// answer after it, and between two refutations (docs/protocol.md
	// §4.1). Default 1 s.
	AnswerEvery time.Duration
	// Seeds: addresses of nodes (port Config.Port) this node introduces
	// itself to by unicast, e.g. seeds on other subnets
	// (docs/protocol.md §4.6). Empty: broadcast only, nothing changes
	// byte for byte. Our own address and addresses on our subnet (which
	// our broadcasts reach) are ignored, so every node of a cluster may
	// be given the same list.
	Seeds []netip.Addr
	// MaxRemotePeers caps the peers off our subnet the table lists (each
	// costs a unicast datagram per Interval), the addresses off it
	// learned but not yet heard from, and the introductions sent per
	// Interval (docs/protocol.md §4.6). Default MaxPeers.
	MaxRemotePeers int
	// MaxSyncAnswers caps the SYNCs answered with our state: at once,
	// then per Interval; one per requester per Interval whatever it is.
	// Default 4.
	MaxSyncAnswers int
	// NoJoinSync: the join does not ask for the state (docs/protocol.md
	// §4.6), and the node learns its peers from their answers (§4.1)
	// alone, as before the state exchange. A node with Seeds ignores
	// it: without a state it could not learn, in plain mode, the
	// addresses off its subnet it may take messages from.
	NoJoinSync bool
}

// fill checks c and fills in its defaults.
func (c *Config) fill() error {
	if !ValidID(c.ID) {
		return fmt.Errorf("cluster: bad ID %q: want 8 lowercase hex digits (see IDFromMAC)", c.ID)
	}
	if c.Name == "" {
		c.Name = "fornax-" + c.ID
	}
	if !ValidName(c.Name) {
		return fmt.Errorf("cluster: bad Name %q: want 1-63 of [A-Za-z0-9._-]", c.Name)
	}
	if !c.Addr.Is4() {
		return fmt.Errorf("cluster: Addr %v is not an IPv4 address", c.Addr)
	}
	if !c.Prefix.IsValid() || !c.Prefix.Addr().Is4() {
		return fmt.Errorf("cluster: Prefix %v is not an IPv4 prefix", c.Prefix)
	}
	p := c.Prefix.Masked()
	if p.Bits() > 30 {
		return fmt.Errorf("cluster: Prefix %v leaves no room for hosts and broadcast: want /30 or shorter", c.Prefix)
	}
	if !p.Contains(c.Addr) {
		return fmt.Errorf("cluster: Addr %v is not in Prefix %v", c.Addr, p)
	}
	if c.Addr == p.Addr() || c.Addr == broadcastAddr(p) {
		return fmt.Errorf("cluster: Addr %v is the network or broadcast address of %v", c.Addr, p)
	}
	if c.Port == 0 {
		c.Port = DefaultPort
	}
	if c.Port < 1 || c.Port > 65535 {
		return fmt.Errorf("cluster: bad Port %d: want 1-65535", c.Port)
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"Interval", &c.Interval, DefaultInterval},
		{"SuspectAfter", &c.SuspectAfter, DefaultSuspectAfter},
		{"DeadAfter", &c.DeadAfter, DefaultDeadAfter},
		{"RemoveAfter", &c.RemoveAfter, DefaultRemoveAfter},
		{"ReplyJitter", &c.ReplyJitter, DefaultReplyJitter},
		{"AnswerEvery", &c.AnswerEvery, DefaultAnswerEvery},
		{"Window", &c.Window, DefaultWindow},
	} {
		if *d.v == 0 {
			*d.v = d.def
		}
		if *d.v < 0 {
			return fmt.Errorf("cluster: %s is %v: want a positive duration", d.name, *d.v)
		}
	}
	if c.SuspectAfter <= c.Interval {
		return fmt.Errorf("cluster: SuspectAfter (%v) must exceed Interval (%v)", c.SuspectAfter, c.Interval)
	}
	if c.DeadAfter <= c.SuspectAfter {
		return fmt.Errorf("cluster: DeadAfter (%v) must exceed SuspectAfter (%v)", c.DeadAfter, c.SuspectAfter)
	}
	if c.MaxPeers == 0 {
		c.MaxPeers = DefaultMaxPeers
	}
	if c.MaxPeers < 0 {
		return fmt.Errorf("cluster: MaxPeers is %d: want a positive number", c.MaxPeers)
	}
	if c.MaxRemotePeers == 0 {
		c.MaxRemotePeers = c.MaxPeers
	}
	if c.MaxSyncAnswers == 0 {
		c.MaxSyncAnswers = DefaultMaxSyncAnswers
	}
	if c.MaxRemotePeers < 0 || c.MaxSyncAnswers < 0 {
		return fmt.Errorf("cluster: MaxRemotePeers %d, MaxSyncAnswers %d: want positive numbers", c.MaxRemotePeers, c.MaxSyncAnswers)
	}
	if c.Resources == nil {
		c.Resources = func() Resources { return Resources{CPUs: runtime.NumCPU()} }
	}
	if c.Clock == nil {
		c.Clock = RealClock()
	}
	if c.Rand == nil {
		h := fnv.New64a()
		h.Write([]byte(c.ID))
		c.Rand = rand.New(rand.NewPCG(h.Sum64(), uint64(c.Clock.Now().UnixNano())))
	}
	if c.Logf == nil {
		c.Logf = func(string, ...any) {}
	}
	if c.WallClock == nil {
		c.WallClock = time.Now
	}
	if c.Auth > AuthKeyed {
		return fmt.Errorf("cluster: bad Auth %d", c.Auth)
	}
	for _, a := range c.Seeds {
		if !remoteHost(a) {
			return fmt.Errorf("cluster: seed %v is not a unicast IPv4 address", a)
		}
	}
	if len(c.Seeds) > maxSeeds {
		return fmt.Errorf("cluster: %d seeds: want at most %d", len(c.Seeds), maxSeeds)
	}
	return nil
}

// ParseSeeds parses a list of seeds as fornaxd's -seeds and the
// kernel's seeds= take it: IPv4 addresses separated by commas, such as
// "10.1.0.2,10.2.0.7" (docs/protocol.md §4.6). Empty is none.
func ParseSeeds(s string) ([]netip.Addr, error) {
	if s == "" {
		return nil, nil
	}
	var out []netip.Addr
	for _, f := range strings.Split(s, ",") {
		a, err := netip.ParseAddr(f)
		if err != nil || !a.Is4() || !remoteHost(a) {
			return nil, fmt.Errorf("bad seed %q: want unicast IPv4 addresses separated by commas, e.g. 10.1.0.2,10.2.0.7", clip(f))
		}
		if len(out) >= maxSeeds {
			return nil, fmt.Errorf("more than %d seeds: one or two per subnet are enough", maxSeeds)
		}
		out = append(out, a)
	}
	return out, nil
}

// maxSeeds bounds a list of seeds: each one not a live peer is tried
// every 8 intervals at least.
const maxSeeds = 64

// remoteHost reports whether a may be a node's address seen from
// another subnet: a unicast IPv4 address, not 0.0.0.0/8, loopback,
// link-local, multicast or 255.255.255.255 (docs/protocol.md §6 step 2).
func remoteHost(a netip.Addr) bool {
	a = a.Unmap()
	return a.Is4() && !a.IsUnspecified() && !a.IsLoopback() && !a.IsMulticast() &&
		!a.IsLinkLocalUnicast() && a.As4()[0] != 0 && a != netip.AddrFrom4([4]byte{255, 255, 255, 255})
}

// AuthMode is what a node sends and accepts (docs/protocol.md §9.3).
type AuthMode uint8

// Auth modes, in the order a keyless cluster moves to keyed.
const (
	AuthDefault AuthMode = iota // AuthKeyed with keys, AuthPlain without
	AuthPlain                   // send plain; accept plain, and signed with a known key
	AuthMixed                   // send signed; accept signed and plain
	AuthKeyed                   // send signed; accept only signed
)

func (a AuthMode) String() string {
	switch a {
	case AuthPlain:
		return "plain"
	case AuthMixed:
		return "mixed"
	case AuthKeyed:
		return "keyed"
	}
	return "default"
}

// ParseAuthMode parses plain, mixed or keyed.
func ParseAuthMode(s string) (AuthMode, error) {
	for _, a := range []AuthMode{AuthPlain, AuthMixed, AuthKeyed} {
		if s == a.String() {
			return a, nil
		}
	}
	return 0, fmt.Errorf("bad auth mode %q: want plain, mixed or keyed", clip(s))
}

// Resources are a node's own figures, advertised in its messages and
// shown in /cluster/self/resources (docs/protocol.md §3).
type Resources struct {
	CPUs     int     // clamped to 1–65535
	MemTotal uint64  // bytes
	MemFree  uint64  // bytes; clamped to MemTotal
	Load     float64 // busy CPU fraction over the last interval, summed over CPUs
}

// IDFromMAC derives a node_id from a NIC's MAC address: the FNV-1a 32-bit
// hash of its bytes as 8 lowercase hex digits (docs/protocol.md §7), so a
// restarted machine comes back under the same id.
func IDFromMAC(mac []byte) string {
	h := fnv.New32a()
	h.Write(mac)
	s := strconv.FormatUint(uint64(h.Sum32()), 16)
	return strings.Repeat("0", 8-len(s)) + s
}

// Node is one member of the cluster: it sends its own messages, keeps the
// table of peers and serves both as the /cluster tree.
//
