package cluster

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"
	"time"
)

// stream is an open /cluster/events of a node, for tests.
type stream struct {
	t     *testing.T
	read  func(context.Context, []byte) (int, error)
	close func()
}

func openEvents(t *testing.T, n *simNode) *stream {
	t.Helper()
	read, closeFn, err := n.Tree().OpenStream("events")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closeFn)
	return &stream{t, read, closeFn}
}

// drain returns the lines that are there, without waiting.
func (s *stream) drain() []string {
	s.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var all string
	buf := make([]byte, 4096)
	for {
		n, err := s.read(ctx, buf)
		all += string(buf[:n])
		if errors.Is(err, context.Canceled) {
			break
		}
		if err != nil {
			s.t.Fatalf("read: %v", err)
		}
		if n == 0 {
			s.t.Fatal("read returned 0 bytes and no error")
		}
	}
	return strings.Split(strings.TrimSuffix(all, "\n"), "\n")[:strings.Count(all, "\n")]
}

// whats returns the lines there without their times.
func (s *stream) whats() string {
	var l []string
	for _, line := range s.drain() {
		_, rest, _ := strings.Cut(line, " ")
		l = append(l, rest)
	}
	return strings.Join(l, "\n")
}

func wantEvents(t *testing.T, got string, want ...string) {
	t.Helper()
	if w := strings.Join(want, "\n"); got != w {
		t.Errorf("events:\n%s\nwant:\n%s", got, w)
	}
}

func TestEventsSelf(t *testing.T) {
	sm := newSim(t)
	a := sm.start(1, nil)
	ev := openEvents(t, a)
	if got := ev.whats(); got != "" {
		t.Errorf("a new open reads the past: %q", got)
	}
	sm.run(1500 * ms)
	if err := a.Rename("db-1"); err != nil {
		t.Fatal(err)
	}
	a.Rename("db-1") // no change, no event
	a.Leave()
	a.Leave()
	a.Join()
	a.stop()
	a.start()
	lines := ev.drain()
	if len(lines) == 0 || lines[0] != "1.500 00000001 renamed db-1" {
		t.Errorf("first line %q", lines)
	}
	wantEvents(t, ev.whats(), "")
	ev2 := openEvents(t, a)
	a.Rename("n1")
	wantEvents(t, ev2.whats(), "00000001 renamed n1")
	ev3 := openEvents(t, a)
	a.Leave()
	a.Join()
	a.stop()
	a.start()
	wantEvents(t, ev3.whats(), "00000001 left", "00000001 joined n1 10.0.0.1", "00000001 joined n1 10.0.0.1")
}

func TestEventsPeers(t *testing.T) {
	sm := newSim(t)
	a := sm.start(1, nil)
	ev := openEvents(t, a)
	b := sm.start(2, nil)
	sm.run(ms)
	if got := ev.drain(); len(got) != 1 || got[0] != "0.001 00000002 joined n2 10.0.0.2" {
		t.Errorf("join: %q", got)
	}
	sm.run(3 * s)
	b.Rename("db-1")
	sm.run(s)
	wantEvents(t, ev.whats(), "00000002 renamed db-1")

	// Silence: suspect at 15 s, dead at 30 s, removed 60 s later.
	sm.kill(b)
	sm.run(16 * s)
	wantEvents(t, ev.whats(), "00000002 suspect")
	sm.run(15 * s)
	wantEvents(t, ev.whats(), "00000002 dead")
	b = sm.start(2, nil) // back, renamed back
	sm.run(s)
	wantEvents(t, ev.whats(), "00000002 online n2 10.0.0.2", "00000002 renamed n2")
	b.Leave()
	sm.run(s)
	wantEvents(t, ev.whats(), "00000002 left")
	b.Join()
	sm.run(s)
	sm.kill(b)
	sm.run(95 * s)
	wantEvents(t, ev.whats(), "00000002 joined n2 10.0.0.2", "00000002 suspect", "00000002 dead", "00000002 removed")
}

func TestEventsReplacedEvicted(t *testing.T) {
	sm := newSim(t)
	a := sm.start(1, func(c *Config) { c.MaxPeers = 1 })
	ev := openEvents(t, a)
	b := sm.start(2, nil)
	sm.run(ms)
	sm.kill(b)
	// The same address under a new id replaces b.
	sm.start(2, func(c *Config) { c.ID = "000000aa"; c.Name = "n2b" })
	sm.run(s)
	wantEvents(t, ev.whats(), "00000002 joined n2 10.0.0.2", "00000002 replaced by 000000aa", "000000aa joined n2b 10.0.0.2")
	// A full table gives way to a new id by evicting a dead entry.
	sm.kill(sm.nodes[b.addr])
	sm.run(31 * s)
	sm.start(3, nil)
	sm.run(s)
	wantEvents(t, ev.whats(), "000000aa suspect", "000000aa dead", "000000aa evicted", "00000003 joined n3 10.0.0.3")
}

func TestEventsRestarted(t *testing.T) {
	sm := newSim(t)
	a := sm.start(1, keyed)
	b := sm.start(2, keyed)
	sm.run(3 * s)
	ev := openEvents(t, a)
	sm.kill(b)
	sm.run(2 * s)
	sm.start(2, keyed)
	sm.run(1300 * ms)
	wantEvents(t, ev.whats(), "00000002 restarted n2 10.0.0.2")
}

func TestEventsCursors(t *testing.T) {
	sm := newSim(t)
	a := sm.start(1, nil)
	e1 := openEvents(t, a)
	a.Rename("x")
	e2 := openEvents(t, a)
	a.Rename("y")
	wantEvents(t, e1.whats(), "00000001 renamed x", "00000001 renamed y")
	wantEvents(t, e2.whats(), "00000001 renamed y")
	a.Rename("z")
	wantEvents(t, e2.whats(), "00000001 renamed z")
	wantEvents(t, e1.whats(), "00000001 renamed z")
}

func TestEventsLost(t *testing.T) {
	sm := newSim(t)
	a := sm.start(1, nil)
	ev := openEvents(t, a)
	for i := range EventBacklog + 44 {
		a.Rename(fmt.Sprintf("x%d", i))
	}
	// Too small for the next line: an error, and nothing lost by it.
	buf := make([]byte, 5)
	if _, err := ev.read(context.Background(), buf); err == nil || err.Error() != "read buffer too small: 5 bytes, line is 15" {
		t.Errorf("small read: %v", err)
	}
	buf = make([]byte, 40) // one line and a bit
	n, err := ev.read(context.Background(), buf)
	if got := string(buf[:n]); err != nil || got != "lost 44 events\n" {
		t.Errorf("read %q, %v", got, err)
	}
	n, err = ev.read(context.Background(), buf)
	if got := string(buf[:n]); err != nil || got != "0.000 00000001 renamed x44\n" {
		t.Errorf("read %q, %v", got, err)
	}
	lines := ev.drain()
	if len(lines) != EventBacklog-1 || lines[len(lines)-1] != "0.000 00000001 renamed x299" {
		t.Errorf("%d lines, last %q", len(lines), lines[len(lines)-1])
	}
	if got := a.stat("events_lost"); got != 44 {
		t.Errorf("stats: events_lost %d, want 44", got)
	}
}

func TestEventsBlock(t *testing.T) {
	sm := newSim(t)
	a := sm.start(1, nil)
	ev := openEvents(t, a)
	type result struct {
		s   string
		err error
	}
	reads := make(chan result)
	read := func(ctx context.Context) {
		buf := make([]byte, 100)
		n, err := ev.read(ctx, buf)
		reads <- result{string(buf[:n]), err}
	}
	// A read waits for an event.
	go read(context.Background())
	time.Sleep(10 * ms)
	a.Rename("x")
	if r := <-reads; r.err != nil || r.s != "0.000 00000001 renamed x\n" {
		t.Errorf("read %q, %v", r.s, r.err)
	}
	// ...or until its context is done.
	ctx, cancel := context.WithCancel(context.Background())
	go read(ctx)
	time.Sleep(10 * ms)
	cancel()
	if r := <-reads; !errors.Is(r.err, context.Canceled) || r.s != "" {
		t.Errorf("read %q, %v", r.s, r.err)
	}
	// ...or until the stream is closed.
	go read(context.Background())
	time.Sleep(10 * ms)
	ev.close()
	if r := <-reads; !errors.Is(r.err, fs.ErrClosed) {
		t.Errorf("read after close %q, %v", r.s, r.err)
	}
}

func TestEventsFile(t *testing.T) {
	sm := newSim(t)
	a := sm.start(1, nil)
	if got, err := a.Tree().ReadFile("events"); err != nil || got == nil || len(got) != 0 {
		t.Errorf("ReadFile(events) = %q, %v", got, err)
	}
	if isDir, err := a.Tree().Stat("events"); isDir || err != nil {
		t.Errorf("Stat(events) = %v, %v", isDir, err)
	}
	if err := a.Tree().WriteFile("events", []byte("x")); !errors.Is(err, fs.ErrPermission) {
		t.Errorf("WriteFile(events): %v", err)
	}
	for _, name := range []string{"ctl", "nope", ".", "/events", "self/events"} {
		if _, _, err := a.Tree().OpenStream(name); !errors.Is(err, fs.ErrInvalid) {
			t.Errorf("OpenStream(%q): %v", name, err)
		}
	}
}
