package main

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"fornax/cluster"
)

// fornaxLAN runs Fornax nodes: the real cluster package over real
// kernel UDP broadcast in the benchmark's namespace, one profile
// (docs/protocol.md §4.4) for all of them.
type fornaxLAN struct {
	profile cluster.Profile
	rec     *recorder
	loss    *loss
}

func (f *fornaxLAN) name() string { return "fornax " + f.profile.Name }

// fornaxNode is one node and what the benchmark keeps of it.
type fornaxNode struct {
	idx     int
	id      string
	node    *cluster.Node
	conn    *dualConn
	t       traffic
	cancel  context.CancelFunc
	done    chan struct{} // closed when Run and the event reader are done
	stopped sync.Once
}

// fornaxID is node k's node_id: 8 lowercase hex digits (docs/protocol.md §7).
func fornaxID(k int) string { return fmt.Sprintf("fb%06x", k) }

func (f *fornaxLAN) start(k int) (member, error) {
	addr := hostAddr(k)
	conn, err := listenDual(addr, broadcastAddr(subnet), cluster.DefaultPort)
	if err != nil {
		return nil, fmt.Errorf("fornax node %d: %w", k, err)
	}
	n := &fornaxNode{idx: k, id: fornaxID(k), conn: conn, done: make(chan struct{})}
	cfg := cluster.Config{
		ID:     n.id,
		Name:   fmt.Sprintf("fx-%03d", k),
		Addr:   addr,
		Prefix: subnet,
	}
	f.profile.Apply(&cfg)
	mc := &meteredConn{PacketConn: conn, self: addr, t: &n.t, d: newDropper(f.loss, uint64(k)+1)}
	created := time.Now()
	node, err := cluster.New(cfg, mc)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("fornax node %d: %w", k, err)
	}
	n.node = node
	read, closeEvents, err := node.Tree().OpenStream("events")
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("fornax node %d: events: %w", k, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = func() { cancel(); closeEvents() }
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); node.Run(ctx) }()
	go func() { defer wg.Done(); f.watch(k, created, read) }()
	go func() { wg.Wait(); close(n.done) }()
	return n, nil
}

// watch records node k's /cluster/events (docs/protocol.md §8.4) until
// the stream is closed. An observation is dated by the earlier of when
// this goroutine read it and the line's own time (the node's clock since
// its creation, in whole ms) plus 1 ms: never before it happened, and
// within 1 ms of it even when this goroutine lags.
func (f *fornaxLAN) watch(k int, created time.Time, read func(context.Context, []byte) (int, error)) {
	buf := make([]byte, 512) // event lines are shorter than 128 bytes (§8.4)
	for {
		n, err := read(context.Background(), buf)
		now := time.Now()
		if err != nil {
			return
		}
		for line := range bytes.Lines(buf[:n]) {
			at, id, what, ok := parseEvent(string(line), created)
			if ok {
				f.rec.add(k, id, what, earlier(now, at.Add(time.Millisecond)))
			}
		}
	}
}

func earlier(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// parseEvent parses "<seconds.ms> <id> <what> ..." and keeps the events
// the benchmark times.
func parseEvent(line string, created time.Time) (time.Time, string, string, bool) {
	f := strings.Fields(line)
	if len(f) < 3 {
		return time.Time{}, "", "", false
	}
	secs, ms, ok := strings.Cut(f[0], ".")
	s, err1 := strconv.ParseInt(secs, 10, 64)
	m, err2 := strconv.ParseInt(ms, 10, 64)
	if !ok || err1 != nil || err2 != nil || len(ms) != 3 {
		return time.Time{}, "", "", false
	}
	at := created.Add(time.Duration(s)*time.Second + time.Duration(m)*time.Millisecond)
	switch f[2] {
	case "joined", "left", "suspect", "dead", "online":
		return at, f[1], f[2], true
	}
	return time.Time{}, "", "", false
}

// converged reports whether every node lists every other one online.
func (f *fornaxLAN) converged(ms []member) bool {
	ids := make(map[string]bool, len(ms))
	for _, m := range ms {
		ids[m.(*fornaxNode).id] = true
	}
	for _, m := range ms {
		n := m.(*fornaxNode)
		online := 0
		for _, p := range n.node.Peers() {
			if p.Status == cluster.Online && ids[p.ID] {
				online++
			}
		}
		if online != len(ms)-1 {
			return false
		}
	}
	return true
}

func (n *fornaxNode) index() int        { return n.idx }
func (n *fornaxNode) target() string    { return n.id }
func (n *fornaxNode) traffic() *traffic { return &n.t }

// leave sends LEAVE (docs/protocol.md §5), then stops the node.
func (n *fornaxNode) leave() {
	n.node.Leave()
	n.crash()
}

// crash stops the node without a word: its socket closes, as when a
// machine dies.
func (n *fornaxNode) crash() {
	n.stopped.Do(func() {
		n.conn.Close()
		n.cancel()
		<-n.done
	})
}
