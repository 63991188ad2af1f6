package cluster

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
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
)

// announceEvery makes every third periodic message an ANNOUNCE
// (docs/protocol.md §4.2).
const announceEvery = 3

// Probes of suspect peers and their answers (docs/protocol.md §4.5).
const (
	// probesPerInterval: a suspect peer is probed every Interval/5, so
	// 15 times before it is dead; each round trip survives 10 % loss
	// per datagram with p = 0.81, so all 15 fail with p = 0.19^15 ≈ 1.5e-11.
	probesPerInterval = 5
	// probeAfter: a peer is probed only once it has been heard this
	// many times. One ANNOUNCE with a spoofed source (keyless mode)
	// draws no probe.
	probeAfter = 2
	// probeBurst is how many probes a node sends at once, all peers
	// together; then probeBurst per Interval. Made-up peers that go
	// silent (keyless mode) cannot make a node send more.
	probeBurst = 10
	// answerBurst is how many probes a node answers at once, all peers
	// together; then answerBurst per Interval. A probe flood costs at
	// most this many HEARTBEATs, each to a listed peer.
	answerBurst = 16
	// peerAnswerBurst is how many probes of one peer a node answers at
	// once; then one per Interval/probesPerInterval, the rate a peer
	// probes at.
	peerAnswerBurst = 2
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
// Run drives it; Join, Leave, Rename, Containers, Peers and Tree may be
// used from any goroutine.
type Node struct {
	cfg   Config
	conn  net.PacketConn
	dst   *net.UDPAddr
	clock Clock
	reg   *Containers
	tree  *Tree
	kick  chan struct{}

	// sendMu orders sends: it is held from building a message until it is
	// written, so messages leave in the order their content was decided.
	// Lock order: sendMu, mu, Containers' lock.
	sendMu sync.Mutex

	mu      sync.Mutex
	name    string
	joined  bool      // state of ctl: joined or left
	running bool      // Run (or the test stepper) is driving the node
	base    time.Time // start of the periodic schedule: the join
	seq     int64     // number of the next periodic message; 0 was the join ANNOUNCE
	next    time.Time // when it is due; zero while not sending
	reply   time.Time // a pending fast-join reply; zero if none
	// replyTo is whom the pending reply answers, one datagram each;
	// replyAll, that they are too many, so one ANNOUNCE goes to the
	// broadcast address instead (docs/protocol.md §4.1).
	replyTo       []netip.Addr
	replyAll      bool
	lastBroadcast time.Time // when the last broadcast answer was sent
	prompt        time.Time // last reply prompted by an unknown HEARTBEAT
	tab           *table
	rng           *rand.Rand
	st            stats
	logs          []string // flushed by unlock

	dropLogged [numReasons]time.Time // last drop logged, per reason
	logLim     logLimiter
	events     *eventRing // /cluster/events (docs/protocol.md §8.4)

	// Fast-join answers and refutations (docs/protocol.md §4.1, §5).
	lastAnnounce time.Time // when the last ANNOUNCE was sent
	refute       time.Time // a pending refutation; zero if none
	lastRefute   time.Time

	// Signing (docs/protocol.md §9).
	ring    keyring
	auth    AuthMode
	inc     uint64 // our incarnation
	lastSeq uint64 // seq of the last signed message

	// Probes (docs/protocol.md §4.5).
	probing     timers             // suspect peer -> when its next probe is due
	probeBudget bucket             // probes sent, node-wide
	answerAll   bucket             // answers to probes, node-wide
	answerPeer  map[string]*bucket // answers to probes, per peer
	answerTo    []netip.Addr       // pending answers, one HEARTBEAT each
	answerAt    time.Time          // when they are due; zero if none
}

type stats struct {
	received, accepted, echo, sent, sendErrors uint64
	answers, refutes                           uint64
	probes, probesHeld                         uint64
	probeAnswers, probeAnswersHeld             uint64
	dropped                                    [numReasons]uint64
}

// New checks cfg, fills in its defaults and returns a node that will send
// and receive on conn, normally a UDP socket bound to the port with
// broadcast enabled. The node starts joined; Run sends its first ANNOUNCE.
func New(cfg Config, conn net.PacketConn) (*Node, error) {
	if conn == nil {
		return nil, errors.New("cluster: nil conn")
	}
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	prefix := cfg.Prefix.Masked()
	n := &Node{
		cfg:    cfg,
		conn:   conn,
		dst:    net.UDPAddrFromAddrPort(netip.AddrPortFrom(broadcastAddr(prefix), uint16(cfg.Port))),
		clock:  cfg.Clock,
		reg:    new(Containers),
		kick:   make(chan struct{}, 1),
		name:   cfg.Name,
		joined: true,
		events: newEventRing(cfg.Clock.Now()),
		tab: newTable(cfg.ID, cfg.Addr, prefix, cfg.SuspectAfter, cfg.DeadAfter,
			cfg.RemoveAfter, cfg.Window, cfg.MaxPeers),
		rng:  cfg.Rand,
		auth: cfg.Auth,
		inc:  max(uint64(cfg.WallClock().UnixMilli()), 1),

		answerPeer: make(map[string]*bucket),
	}
	for _, k := range cfg.Keys {
		if _, err := n.ring.add(k); err != nil {
			return nil, fmt.Errorf("cluster: Keys: %w", err)
		}
	}
	if n.auth == AuthDefault {
		n.auth = AuthPlain
		if len(cfg.Keys) > 0 {
			n.auth = AuthKeyed
		}
	}
	if n.auth != AuthPlain && len(cfg.Keys) == 0 {
		return nil, fmt.Errorf("cluster: Auth %v needs Keys", n.auth)
	}
	n.tree = &Tree{n: n}
	return n, nil
}

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
	return nil
}

// Tree returns the /cluster file tree of the node.
func (n *Node) Tree() *Tree { return n.tree }

// Containers returns the node's container registry.
func (n *Node) Containers() *Containers { return n.reg }

// ID returns the node's node_id.
func (n *Node) ID() string { return n.cfg.ID }

// Peers returns a snapshot of the table, in node_id order.
func (n *Node) Peers() []Peer {
	n.mu.Lock()
	n.tickLocked(n.clock.Now(), false)
	ps := n.tab.list()
	n.unlock()
	return ps
}

// Join makes a node that has left a member again: it announces at once
// and restarts its periodic schedule (docs/protocol.md §4.1). Joining a
// joined node does nothing. Without Run, the ANNOUNCE waits for Run.
func (n *Node) Join() {
	res := n.resources()
	n.sendMu.Lock()
	defer n.sendMu.Unlock()
	n.mu.Lock()
	if n.joined {
		n.unlock()
		return
	}
	n.joined = true
	n.logf("cluster: joined as %s (%s)", n.cfg.ID, n.name)
	n.noteJoined()
	var out []Message
	if n.running {
		out = append(out, n.beginLocked(n.clock.Now(), res))
	}
	n.unlock()
	n.send(out...)
	n.poke()
}

// Leave broadcasts LEAVE, stops sending, forgets every peer and ignores
// what it hears until Join (docs/protocol.md §5). Leaving a node that has
// left does nothing. Stopping Run does not leave: peers then see the node
// fail; call Leave first for a clean exit.
func (n *Node) Leave() {
	n.sendMu.Lock()
	defer n.sendMu.Unlock()
	n.mu.Lock()
	if !n.joined {
		n.unlock()
		return
	}
	n.joined = false
	n.next, n.reply = time.Time{}, time.Time{}
	n.tab.clear()
	n.clearProbesLocked()
	n.logf("cluster: left")
	n.noteSelf("left")
	n.unlock()
	n.send(Message{Kind: Leave, ID: n.cfg.ID})
	n.poke()
}

// Rename changes the node's name and, while it is joined, broadcasts an
// ANNOUNCE at once so peers see the new name.
func (n *Node) Rename(name string) error {
	if !ValidName(name) {
		return fmt.Errorf("bad name: %q", clip(name))
	}
	res := n.resources()
	n.sendMu.Lock()
	defer n.sendMu.Unlock()
	n.mu.Lock()
	var out []Message
	if n.name != name {
		n.logf("cluster: renamed from %s to %s", n.name, name)
		n.name = name
		n.noteSelf("renamed " + name)
		n.checkNameLocked(n.cfg.ID, name, n.clock.Now())
	}
	if n.running && n.joined {
		out = append(out, n.announceLocked(res))
		n.reply = time.Time{}
	}
	n.unlock()
	n.send(out...)
	return nil
}

// Run drives the node until ctx is done: it sends the join ANNOUNCE (if
// joined), reads datagrams in a goroutine and does everything else in one
// loop. It returns nil when ctx is done, or the error that stopped
// reading (a closed conn, say). On return the reader has stopped, unless
// conn cannot SetReadDeadline. Run does not send LEAVE.
func (n *Node) Run(ctx context.Context) error {
	if ctx.Err() != nil {
		return nil
	}
	if err := n.start(); err != nil {
		return err
	}
	defer n.stop()

	type packet struct {
		b   []byte
		src net.Addr
	}
	pkts := make(chan packet, 64)
	rerr := make(chan error, 1)
	go func() {
		for {
			buf := make([]byte, MaxMessageSize+1) // one more, to see oversize
			k, src, err := n.conn.ReadFrom(buf)
			if k > 0 || err == nil { // an empty datagram is malformed (§6)
				select {
				case pkts <- packet{buf[:k], src}:
				case <-ctx.Done():
				}
			}
			if err != nil || ctx.Err() != nil {
				if ctx.Err() != nil {
					err = nil
				}
				rerr <- err
				return
			}
		}
	}()

	var (
		timer Timer
		armed time.Time
	)
	stopTimer := func() {
		if timer != nil {
			timer.Stop()
			timer, armed = nil, time.Time{}
		}
	}
	defer stopTimer()
	for {
		if w := n.nextWake(); !w.Equal(armed) {
			stopTimer()
			if !w.IsZero() {
				timer, armed = n.clock.TimerAt(w), w
			}
		}
		var tc <-chan time.Time
		if timer != nil {
			tc = timer.C()
		}
		select {
		case <-ctx.Done():
			// Unblock the reader and wait for it.
			if n.conn.SetReadDeadline(time.Unix(1, 0)) == nil {
				<-rerr
				n.conn.SetReadDeadline(time.Time{})
			}
			return nil
		case err := <-rerr:
			if err == nil { // ctx is done
				return nil
			}
			return fmt.Errorf("cluster: read: %w", err)
		case p := <-pkts:
			n.handle(p.b, p.src)
		case <-tc:
			timer, armed = nil, time.Time{}
			// Datagrams already here count before thresholds due now
			// (docs/protocol.md §4.3).
			for k := len(pkts); k > 0; k-- {
				p := <-pkts
				n.handle(p.b, p.src)
			}
			n.fire()
		case <-n.kick:
		}
	}
}

// The step API: Run is start, then handle and fire as datagrams and
// nextWake come, then stop. Tests call them directly with a fake clock.

// start marks the node running and, if joined, sends the join ANNOUNCE.
func (n *Node) start() error {
	res := n.resources()
	n.sendMu.Lock()
	defer n.sendMu.Unlock()
	n.mu.Lock()
	if n.running {
		n.unlock()
		return errors.New("cluster: Run is already running")
	}
	n.running = true
	var out []Message
	if n.joined {
		n.logf("cluster: joined as %s (%s) at %v", n.cfg.ID, n.name, n.cfg.Addr)
		n.noteJoined()
		out = append(out, n.beginLocked(n.clock.Now(), res))
	}
	n.unlock()
	n.send(out...)
	return nil
}

// stop marks the node not running: it sends nothing until started again.
func (n *Node) stop() {
	n.mu.Lock()
	n.running = false
	n.next, n.reply = time.Time{}, time.Time{}
	n.clearProbesLocked()
	n.unlock()
}

// nextWake is when fire has work next, or the zero time for never.
func (n *Node) nextWake() time.Time {
	n.mu.Lock()
	defer n.mu.Unlock()
	w := n.tab.next()
	if n.running && n.joined {
		w = earliest(earliest(earliest(w, n.next), n.reply), n.refute)
		w = earliest(earliest(w, n.answerAt), n.probing.next())
	}
	return w
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || !b.IsZero() && b.Before(a) {
		return b
	}
	return a
}

// handle processes one datagram received now from src (docs/protocol.md §6).
func (n *Node) handle(b []byte, src net.Addr) {
	now := n.clock.Now()
	n.mu.Lock()
	defer n.unlock()
	n.st.received++
	if !n.joined {
		n.st.dropped[ReasonLeft]++
		return
	}
	ip, err := n.tab.source(src)
	if err != nil {
		n.countDrop(err, src, now)
		return
	}
	m, err := Parse(b)
	if err == nil {
		err = n.checkSigned(m)
	}
	if err == nil && m.ID == n.cfg.ID && m.Keyed() && ip != n.cfg.Addr && n.lastSeq > 0 &&
		!(seenMsg{n.inc, n.lastSeq, time.Time{}}).newer(m.Inc, m.Seq) {
		// One of our own signed messages, replayed from elsewhere: not
		// newer than the last we sent (inc first, then seq, as for any
		// sender), so not a claim to refute (docs/protocol.md §9.2).
		err = dropf(ReasonReplay, "%v of our own (inc %d seq %d) replayed from %v", m.Kind, m.Inc, m.Seq, ip)
	}
	if err != nil {
		n.countDrop(err, src, now)
		return
	}
	n.tickLocked(now, true)
	ev, err := n.tab.observe(m, ip, now)
	if err != nil {
		n.countDrop(err, src, now)
		switch err.(*DropError).Reason {
		case ReasonOwnID:
			n.refuteLocked(now, ip)
		case ReasonUnknownID:
			// Prompt a peer known only by its HEARTBEAT (docs/protocol.md §4.1).
			if m.Kind == Heartbeat && !n.tab.full() &&
				(n.prompt.IsZero() || now.Sub(n.prompt) >= n.cfg.Interval) {
				n.prompt = now
				n.replyLocked(now, ip)
			}
		}
		return
	}
	if ev.kind == evEcho {
		n.st.echo++
		return
	}
	n.st.accepted++
	n.logEvent(ev, now)
	if ev.kind == evRevived || ev.kind == evLeft {
		n.probing.remove(ev.peer.ID)
	}
	if m.Kind == Probe {
		n.answerProbeLocked(ev.peer, now)
	}
	if m.Kind != Announce {
		return
	}
	// Answer whoever may not know us: a new id, one back from silence,
	// one restarted. Not a move or a refresh (docs/protocol.md §4.1).
	if ev.kind == evAdded || ev.kind == evRevived || ev.kind == evRestarted {
		n.replyLocked(now, ip)
	}
	if ev.kind != evUpdated || ev.oldName != ev.peer.Name {
		n.checkNameLocked(ev.peer.ID, ev.peer.Name, now)
	}
}

// checkSigned applies the signature rules (docs/protocol.md §6 step 4,
// §9.2): what the auth mode accepts, a known key, the tag, the window.
func (n *Node) checkSigned(m Message) error {
	if !m.Keyed() {
		if n.auth == AuthKeyed {
			return dropf(ReasonUnkeyed, "%v of %s is not signed, and this node accepts only signed messages", m.Kind, m.ID)
		}
		return nil
	}
	s, ok := n.ring.lookup(m.KeyID)
	if !ok {
		return dropf(ReasonUnknownKey, "%v of %s is signed with key %s, which is not in our keyring", m.Kind, m.ID, m.KeyID)
	}
	if !s.verify(&m) {
		return dropf(ReasonBadTag, "%v of %s has a bad tag for key %s", m.Kind, m.ID, m.KeyID)
	}
	wall := n.cfg.WallClock().UnixMilli()
	w := uint64(n.cfg.Window.Milliseconds())
	if wall > 0 && (uint64(wall) > w && m.Seq < uint64(wall)-w || m.Seq > uint64(wall) && m.Seq-uint64(wall) > w) {
		off := float64(int64(m.Seq-uint64(wall))) / 1000 // two's complement: negative when old
		return dropf(ReasonStale, "%v of %s was sent %+.1f s from our clock; accepted within ±%v (are both clocks right?)",
			m.Kind, m.ID, off, n.cfg.Window)
	}
	return nil
}

// refuteLocked answers a claim of our id from elsewhere with an ANNOUNCE
// at once, at most one per AnswerEvery; with a key, under a higher
// incarnation (docs/protocol.md §5).
func (n *Node) refuteLocked(now time.Time, from netip.Addr) {
	if !n.running || !n.refute.IsZero() ||
		!n.lastRefute.IsZero() && now.Sub(n.lastRefute) < n.cfg.AnswerEvery {
		return
	}
	n.refute, n.lastRefute = now, now
	n.st.refutes++
	n.inc++
	n.limitedLogf("", now, "cluster: %v claims our node_id %s: refuting", from, n.cfg.ID)
}

// checkNameLocked flags a name held by more than one id (docs/protocol.md §8).
func (n *Node) checkNameLocked(id, name string, now time.Time) {
	held := n.tab.named(name)
	if n.name == name {
		held++
	}
	if held <= 1 {
		return // the common case, found without visiting every peer
	}
	if ids := n.holdersLocked(name); len(ids) > 1 {
		n.limitedLogf(id, now, "cluster: name %s is claimed by %s", name, strings.Join(ids, " "))
	}
}

// holdersLocked lists the ids, ours included, that go by name.
func (n *Node) holdersLocked(name string) []string {
	var ids []string
	if n.name == name {
		ids = append(ids, n.cfg.ID)
	}
	for _, p := range n.tab.peers {
		if p.Name == name {
			ids = append(ids, p.ID)
		}
	}
	slices.Sort(ids)
	return ids
}

// countDrop counts a dropped datagram under its reason and logs it, at
// most once per reason and interval, so an operator can see what is being
// dropped and from where without a flood of junk flooding the log.
func (n *Node) countDrop(err error, src net.Addr, now time.Time) {
	var de *DropError
	if !errors.As(err, &de) {
		return
	}
	n.st.dropped[de.Reason]++
	if last := n.dropLogged[de.Reason]; last.IsZero() || now.Sub(last) >= n.cfg.Interval {
		n.dropLogged[de.Reason] = now
		n.limitedLogf("", now, "cluster: dropped a datagram from %v: %v", src, de)
	}
}

// maxUnicastAnswers is how many nodes one reply answers one by one; more
// are answered by one broadcast (docs/protocol.md §4.1).
const maxUnicastAnswers = 4

// replyLocked schedules a fast-join reply to the node at addr to, no
// sooner than AnswerEvery after our last ANNOUNCE, sent to it alone. A
// reply that would answer more than maxUnicastAnswers nodes goes to the
// broadcast address instead, at most once per Interval
// (docs/protocol.md §4.1).
func (n *Node) replyLocked(now time.Time, to netip.Addr) {
	if !n.running {
		return
	}
	if n.reply.IsZero() {
		n.replyTo, n.replyAll = n.replyTo[:0], false
		at := now
		if !n.lastAnnounce.IsZero() {
			at = later(at, n.lastAnnounce.Add(n.cfg.AnswerEvery))
		}
		n.reply = at.Add(time.Duration(n.rng.Int64N(int64(n.cfg.ReplyJitter) + 1)))
	}
	switch {
	case n.replyAll || slices.Contains(n.replyTo, to):
	case len(n.replyTo) < maxUnicastAnswers:
		n.replyTo = append(n.replyTo, to)
	default:
		n.replyAll = true
		if !n.lastBroadcast.IsZero() {
			n.reply = later(n.reply, n.lastBroadcast.Add(n.cfg.Interval))
		}
	}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// fire does what is due now: peers' transitions, the periodic message,
// a pending reply.
func (n *Node) fire() {
	now := n.clock.Now()
	n.sendMu.Lock()
	defer n.sendMu.Unlock()
	n.mu.Lock()
	n.tickLocked(now, false)
	due := n.running && n.joined &&
		(reached(now, n.next) || reached(now, n.reply) || reached(now, n.refute) ||
			reached(now, n.answerAt) || reached(now, n.probing.next()))
	n.unlock()
	if !due {
		return
	}
	res := n.resources() // not under mu: it is the caller's code
	n.mu.Lock()
	var (
		out   []Message // to the broadcast address
		uni   Message   // an answer to each of uniTo
		uniTo []*net.UDPAddr
		more  []unicast // probes and their answers
	)
	if n.running && n.joined {
		if !n.next.IsZero() && !now.Before(n.next) {
			// The schedule is exact (docs/protocol.md §4.2): message k is
			// due at base + k*Interval;
			// ticks missed while late are not sent in a burst: one message
			// goes out, an ANNOUNCE if any missed tick was one.
			last := int64(now.Sub(n.base) / n.cfg.Interval)
			announce := false
			for k := n.seq; k <= last && k < n.seq+announceEvery; k++ {
				announce = announce || k%announceEvery == 0
			}
			if announce {
				out = append(out, n.announceLocked(res))
				// an ANNOUNCE answers any pending reply or refutation
				n.reply, n.refute = time.Time{}, time.Time{}
			} else {
				out = append(out, n.heartbeatLocked(res))
			}
			n.seq = last + 1
			n.next = n.base.Add(time.Duration(n.seq) * n.cfg.Interval)
		}
		switch {
		case reached(now, n.refute):
			out = append(out, n.announceLocked(res))
		case reached(now, n.reply):
			n.st.answers++
			if n.replyAll {
				out = append(out, n.announceLocked(res))
				n.lastBroadcast = now
				break
			}
			// A few nodes to answer: no need to wake every other.
			uni = n.announceLocked(res)
			for _, a := range n.replyTo {
				uniTo = append(uniTo, n.unicastTo(a))
			}
		}
		if reached(now, n.reply) || reached(now, n.refute) {
			n.reply, n.refute = time.Time{}, time.Time{}
		}
		more = n.probeAnswersLocked(now, res)
		more = append(more, n.probesLocked(now)...)
	}
	n.unlock()
	n.send(out...)
	for _, to := range uniTo {
		n.sendTo(to, uni)
	}
	for _, u := range more {
		n.sendTo(u.to, u.m)
	}
}

// unicast is a message to one node.
type unicast struct {
	to *net.UDPAddr
	m  Message
}

// unicastTo is port Port of a.
func (n *Node) unicastTo(a netip.Addr) *net.UDPAddr {
	return net.UDPAddrFromAddrPort(netip.AddrPortFrom(a, uint16(n.cfg.Port)))
}

// probesLocked returns the probes due at now: one to each suspect peer
// whose turn has come, at its recorded address, within the node-wide
// budget. A peer no longer suspect is probed no more; one left out for
// the budget waits for its next turn (docs/protocol.md §4.5).
func (n *Node) probesLocked(now time.Time) []unicast {
	var due []Peer
	for {
		id, at, ok := n.probing.min()
		if !ok || !reached(now, at) {
			break
		}
		p, ok := n.tab.get(id)
		if !ok || p.Status != Suspect {
			n.probing.remove(id)
			continue
		}
		due = append(due, p)
		n.probing.set(id, now.Add(n.cfg.Interval/probesPerInterval))
	}
	// When the budget is short, the peers closest to dead go first.
	slices.SortFunc(due, func(a, b Peer) int {
		if c := a.LastHeard.Compare(b.LastHeard); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	var out []unicast
	for _, p := range due {
		id := p.ID
		if !n.probeBudget.take(now, probeBurst, n.cfg.Interval/probeBurst) {
			n.st.probesHeld++
			continue
		}
		n.st.probes++
		out = append(out, unicast{n.unicastTo(p.Addr), Message{Kind: Probe, ID: n.cfg.ID, To: id}})
	}
	return out
}

// answerProbeLocked queues the answer to a valid PROBE from p, which the
// table has just accepted from p's recorded address: our HEARTBEAT, to
// that address alone, within p's budget and the node's
// (docs/protocol.md §4.5).
func (n *Node) answerProbeLocked(p Peer, now time.Time) {
	if !n.running || slices.Contains(n.answerTo, p.Addr) {
		return
	}
	if len(n.answerPeer) > 2*n.cfg.MaxPeers {
		clear(n.answerPeer) // bounded: forget the budgets
	}
	b := n.answerPeer[p.ID]
	if b == nil {
		b = new(bucket)
		n.answerPeer[p.ID] = b
	}
	if !b.take(now, peerAnswerBurst, n.cfg.Interval/probesPerInterval) ||
		!n.answerAll.take(now, answerBurst, n.cfg.Interval/answerBurst) {
		n.st.probeAnswersHeld++
		return
	}
	n.answerTo = append(n.answerTo, p.Addr)
	if n.answerAt.IsZero() {
		n.answerAt = now
	}
}

// probeAnswersLocked returns the answers due at now.
func (n *Node) probeAnswersLocked(now time.Time, res Resources) []unicast {
	if !reached(now, n.answerAt) {
		return nil
	}
	hb := n.heartbeatLocked(res)
	var out []unicast
	for _, a := range n.answerTo {
		out = append(out, unicast{n.unicastTo(a), hb})
	}
	n.st.probeAnswers += uint64(len(out))
	n.answerTo, n.answerAt = n.answerTo[:0], time.Time{}
	return out
}

// clearProbesLocked forgets the probes to send and the answers to give.
func (n *Node) clearProbesLocked() {
	n.probing.reset()
	n.answerTo, n.answerAt = n.answerTo[:0], time.Time{}
}

// reached reports whether a pending time t (zero: none) has come.
func reached(now, t time.Time) bool { return !t.IsZero() && !now.Before(t) }

// beginLocked starts the periodic schedule at now and returns the join
// ANNOUNCE, message 0 of the schedule.
func (n *Node) beginLocked(now time.Time, res Resources) Message {
	n.base, n.seq = now, 1
	n.next = now.Add(n.cfg.Interval)
	n.reply, n.refute = time.Time{}, time.Time{}
	return n.announceLocked(res)
}

// announceLocked builds our ANNOUNCE; it is sent at once.
func (n *Node) announceLocked(res Resources) Message {
	n.lastAnnounce = n.clock.Now()
	return Message{Kind: Announce, ID: n.cfg.ID, Addr: n.cfg.Addr, Name: n.name,
		CPUs: res.CPUs, MemTotal: res.MemTotal, MemFree: res.MemFree, Containers: n.reg.Len()}
}

func (n *Node) heartbeatLocked(res Resources) Message {
	return Message{Kind: Heartbeat, ID: n.cfg.ID, Load: LoadOf(res.Load),
		MemFree: res.MemFree, Containers: n.reg.Len()}
}

// resources calls cfg.Resources and clamps what it returns to the ranges
// of docs/protocol.md §3.
func (n *Node) resources() Resources {
	r := n.cfg.Resources()
	r.CPUs = min(max(r.CPUs, 1), maxCPUs)
	r.MemFree = min(r.MemFree, r.MemTotal)
	return r
}

// send writes messages to the broadcast address, signed unless the auth
// mode is plain. The caller holds sendMu and not mu.
func (n *Node) send(ms ...Message) { n.sendTo(n.dst, ms...) }

// sendTo is send to dst.
func (n *Node) sendTo(dst *net.UDPAddr, ms ...Message) {
	for _, m := range ms {
		n.mu.Lock()
		n.signLocked(&m)
		n.mu.Unlock()
		err := m.Validate()
		if err == nil {
			_, err = n.conn.WriteTo(m.Append(nil), dst)
		}
		n.mu.Lock()
		if err != nil {
			n.st.sendErrors++
			n.logf("cluster: send %v: %v", m.Kind, err)
		} else {
			n.st.sent++
		}
		n.unlock()
	}
}

// signLocked signs m with the primary key, under our incarnation and the
// next seq: the wall clock in ms, raised past the last seq if the clock
// has not moved on. A clock set back by more than half the window starts
// a new incarnation instead, so that seq follows the clock again
// (docs/protocol.md §9.1).
func (n *Node) signLocked(m *Message) {
	s, ok := n.ring.signer()
	if n.auth == AuthPlain || !ok {
		return
	}
	wall := uint64(max(n.cfg.WallClock().UnixMilli(), 0))
	if half := uint64(n.cfg.Window.Milliseconds() / 2); wall+half < n.lastSeq {
		n.inc++
		n.lastSeq = 0
	}
	n.lastSeq = max(wall, n.lastSeq+1)
	s.sign(m, n.inc, n.lastSeq)
}

// poke wakes Run to recompute its timer.
func (n *Node) poke() {
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

// tickLocked applies the table's due transitions and logs them.
func (n *Node) tickLocked(now time.Time, strict bool) {
	for _, ev := range n.tab.tick(now, strict) {
		n.logEvent(ev, now)
		if ev.kind == evSuspect && ev.peer.msgs >= probeAfter {
			// Probe it at once, then every Interval/5 while it stays
			// suspect (docs/protocol.md §4.5).
			n.probing.set(ev.peer.ID, now)
		}
	}
}

// logEvent logs a membership change, within the peer's and the node's
// log budgets (docs/protocol.md §8.3).
func (n *Node) logEvent(ev event, now time.Time) {
	n.notePeer(ev, now) // not rate-limited: the ring bounds it
	p := ev.peer
	logf := func(format string, args ...any) { n.limitedLogf(p.ID, now, format, args...) }
	switch ev.kind {
	case evAdded:
		logf("cluster: %s (%s) joined from %v", p.ID, p.Name, p.Addr)
	case evRevived:
		if ev.oldAddr.IsValid() && ev.oldAddr != p.Addr {
			logf("cluster: %s (%s) is online again, moved from %v to %v", p.ID, p.Name, ev.oldAddr, p.Addr)
		} else {
			logf("cluster: %s (%s) is online again", p.ID, p.Name)
		}
	case evRestarted:
		logf("cluster: %s (%s) restarted (incarnation %d)", p.ID, p.Name, p.Inc)
	case evLeft:
		logf("cluster: %s (%s) left", p.ID, p.Name)
	case evSuspect, evDead:
		logf("cluster: %s (%s) is %v", p.ID, p.Name, p.Status)
	case evRemoved:
		logf("cluster: %s (%s) removed", p.ID, p.Name)
	}
	if ev.oldName != "" && ev.oldName != p.Name {
		logf("cluster: %s renamed from %s to %s", p.ID, ev.oldName, p.Name)
	}
	for _, g := range ev.gone {
		n.limitedLogf(g.peer.ID, now, "cluster: %s (%s) at %v removed: %s", g.peer.ID, g.peer.Name, g.peer.Addr, g.why)
	}
}

// limitedLogf logs a line about peer id ("" for none) if the log
// budgets allow it (docs/protocol.md §8.3), saying first how many lines
// were held back before it.
func (n *Node) limitedLogf(id string, now time.Time, format string, args ...any) {
	ok, held := n.logLim.allow(id, now, n.cfg.Interval, n.cfg.MaxPeers)
	if !ok {
		return
	}
	if held > 0 {
		n.logf("cluster: %d log lines held back (rate limit)", held)
	}
	n.logf(format, args...)
}

// logf queues a log line; unlock writes it once mu is released.
func (n *Node) logf(format string, args ...any) {
	n.logs = append(n.logs, fmt.Sprintf(format, args...))
}

// unlock releases mu, then writes the queued log lines.
func (n *Node) unlock() {
	logs := n.logs
	n.logs = nil
	n.mu.Unlock()
	for _, l := range logs {
		n.cfg.Logf("%s", l)
	}
}
