package cluster

// The node is an I/O shell around small pure parts. Each decides one
// thing, with the time passed in, and knows no clock, socket or lock:
//
//   - table (table.go): the peers and their states (§5);
//   - schedule (schedule.go): the periodic messages and the missed-tick
//     rule (§4.2);
//   - replier (replier.go): fast-join replies, one by one or by
//     broadcast, and refutations of a claim of our node_id (§4.1, §5);
//   - prober (prober.go, prober_ask.go): probes of quiet and suspect
//     peers, direct and through helpers, the answers to theirs and the
//     ASKs of others, within their budgets (§4.5);
//   - spanner (span.go): the state exchange and the seeds: whom to ask,
//     whom to answer within the budgets, seeds to try with backoff,
//     addresses off the subnet learned, introductions (§4.6);
//   - sequencer (sequencer.go): the incarnation and seq of what we sign
//     (§9.1);
//   - logLimiter (limit.go): the log budgets (§8.3).
//
// The node takes its lock, asks each part what is due, sends and logs;
// it wakes at the earliest of their next times. Config is in config.go;
// Run, its timer and fire in run.go; handle, what arrives, in
// receive.go; building, signing and writing messages in send.go; probes
// in probe.go; SYNC and STATE in state.go and state_recv.go; the log
// lines in logs.go.
//
// Locks: sendMu, then mu, then Containers' lock. decide is the one
// prologue of everything that sends. A method of Node that needs its
// caller to hold mu ends in Locked, and no other does; the tree's view
// functions (tree.go) run under mu too. mu.Unlock writes the log lines
// queued under mu (mu.logf) once it is released, so Config.Logf never
// runs under it.

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"
)

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
	sendMu sync.Mutex

	mu      nodeMu // guards what follows
	name    string
	joined  bool // state of ctl: joined or left
	running bool // Run (or the test stepper) is driving the node
	tab     *table
	sched   schedule
	rep     replier
	probe   prober
	span    spanner   // seeds and the state exchange (§4.6)
	quietAt time.Time // when the next peer turns quiet (§4.5); zero if none
	seq     sequencer
	st      stats

	dropLogged [numReasons]time.Time // last drop logged, per reason
	logLim     logLimiter
	events     *eventRing // /cluster/events (docs/protocol.md §8.4)

	// Signing (docs/protocol.md §9).
	ring keyring
	auth AuthMode
	// bornWall and bornAt are when the node was made, by the wall clock
	// (ms) and by Clock: for a window after, signed messages sent before
	// it are refused, since the replay memory starts empty (§9.2).
	bornWall int64
	bornAt   time.Time
}

type stats struct {
	received, accepted, echo, sent, sendErrors uint64
	answers, refutes                           uint64
	probes, probesHeld                         uint64
	probeAnswers, probeAnswersHeld             uint64
	probeStats
	spanStats
	dropped [numReasons]uint64
	// acceptedKind and sentKind break accepted and sent down by verb.
	acceptedKind, sentKind [len(verbs)]uint64
}

// nodeMu is the node's lock, with the log lines queued under it: Unlock
// writes them once the lock is released, so that Config.Logf, the
// caller's code, never runs under it.
type nodeMu struct {
	m     sync.Mutex
	logs  []string
	write func(format string, args ...any) // Config.Logf
}

func (l *nodeMu) Lock() { l.m.Lock() }

// Unlock releases the lock, then writes the queued log lines.
func (l *nodeMu) Unlock() {
	logs := l.logs
	l.logs = nil
	l.m.Unlock()
	for _, s := range logs {
		l.write("%s", s)
	}
}

// logf queues a log line. The caller holds the lock.
func (l *nodeMu) logf(format string, args ...any) {
	l.logs = append(l.logs, fmt.Sprintf(format, args...))
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
	wall := cfg.WallClock().UnixMilli()
	n := &Node{
		cfg:    cfg,
		conn:   conn,
		dst:    net.UDPAddrFromAddrPort(netip.AddrPortFrom(broadcastAddr(prefix), uint16(cfg.Port))),
		clock:  cfg.Clock,
		reg:    new(Containers),
		kick:   make(chan struct{}, 1),
		mu:     nodeMu{write: cfg.Logf},
		name:   cfg.Name,
		joined: true,
		events: newEventRing(cfg.Clock.Now()),
		tab: newTable(cfg.ID, cfg.Addr, prefix, cfg.Port, cfg.SuspectAfter, cfg.DeadAfter,
			cfg.RemoveAfter, cfg.Window, cfg.MaxPeers),
		sched: schedule{interval: cfg.Interval},
		rep: replier{every: cfg.AnswerEvery, interval: cfg.Interval, jitter: cfg.ReplyJitter,
			rng: cfg.Rand, maxFar: cfg.MaxRemotePeers},
		span: spanner{interval: cfg.Interval, wait: cfg.ReplyJitter, window: cfg.AnswerEvery, maxAnswers: cfg.MaxSyncAnswers,
			maxRemote: cfg.MaxRemotePeers, seeds: remoteSeeds(cfg.Seeds, prefix), spans: len(cfg.Seeds) > 0},
		probe:    prober{interval: cfg.Interval, maxPeers: cfg.MaxPeers, rng: cfg.Rand},
		auth:     cfg.Auth,
		seq:      newSequencer(wall, cfg.Window),
		bornWall: wall,
		bornAt:   cfg.Clock.Now(),
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
	n.tab.maxRemote, n.tab.spans = cfg.MaxRemotePeers, len(cfg.Seeds) > 0
	n.tree = &Tree{n: n}
	return n, nil
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
	defer n.mu.Unlock()
	n.tickLocked(n.clock.Now(), false)
	return n.tab.list()
}

// Join makes a node that has left a member again: it announces at once
// and restarts its periodic schedule (docs/protocol.md §4.1). Joining a
// joined node does nothing. Without Run, the ANNOUNCE waits for Run.
func (n *Node) Join() {
	n.decide(true, func(res Resources) []outgoing {
		if n.joined {
			return nil
		}
		n.joined = true
		n.mu.logf("cluster: joined as %s (%s)", n.cfg.ID, n.name)
		n.noteJoinedLocked()
		n.poke() // Run rearms its timer once mu is released
		if !n.running {
			return nil
		}
		return n.beginLocked(n.clock.Now(), res)
	})
}

// Leave broadcasts LEAVE, stops sending, forgets every peer and ignores
// what it hears until Join (docs/protocol.md §5). Leaving a node that has
// left does nothing. Stopping Run does not leave: peers then see the node
// fail; call Leave first for a clean exit.
func (n *Node) Leave() {
	n.decide(false, func(Resources) []outgoing {
		if !n.joined {
			return nil
		}
		out := n.toAllLocked(Message{Kind: Leave, ID: n.cfg.ID}) // before the table is emptied
		n.joined = false
		n.quietLocked()
		n.tab.clear()
		n.mu.logf("cluster: left")
		n.noteSelfLocked("left")
		n.poke()
		return out
	})
}

// Rename changes the node's name and, while it is joined, broadcasts an
// ANNOUNCE at once so peers see the new name.
func (n *Node) Rename(name string) error {
	if !ValidName(name) {
		return fmt.Errorf("bad name: %q", clip(name))
	}
	n.decide(true, func(res Resources) []outgoing {
		if n.name != name {
			n.mu.logf("cluster: renamed from %s to %s", n.name, name)
			n.name = name
			n.noteSelfLocked("renamed " + name)
			n.checkNameLocked(n.cfg.ID, name, n.clock.Now())
		}
		if !n.activeLocked() {
			return nil
		}
		n.rep.cancelReply() // the ANNOUNCE answers it
		return n.toAllLocked(n.announceLocked(res))
	})
	return nil
}

// decide is the lock prologue of everything that sends. It fetches the
// node's resources if withRes, under neither lock since they are the
// caller's code; takes sendMu, then mu; lets build decide under mu what
// to send; releases mu and sends that, in order, still under sendMu, so
// that messages leave in the order their content was decided.
func (n *Node) decide(withRes bool, build func(res Resources) []outgoing) {
	var res Resources
	if withRes {
		res = n.resources()
	}
	n.sendMu.Lock()
	defer n.sendMu.Unlock()
	n.mu.Lock()
	out := build(res)
	n.mu.Unlock()
	n.sendAll(out)
}

// activeLocked reports whether the node sends: Run drives it and it is
// joined.
func (n *Node) activeLocked() bool { return n.running && n.joined }

// quietLocked forgets what the node was due to send: its schedule,
// replies, refutations, probes and answers.
func (n *Node) quietLocked() {
	n.sched.stop()
	n.rep.drop()
	n.probe.reset()
	n.span.stop()
}

// poke wakes Run to recompute its timer.
func (n *Node) poke() {
	select {
	case n.kick <- struct{}{}:
	default:
	}
}
