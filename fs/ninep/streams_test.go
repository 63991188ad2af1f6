package ninep

import (
	"bufio"
	"context"
	"fmt"
	"io/fs"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"9fans.net/go/plan9"

	"fornax/fs/file"
	"fornax/fs/ns"
)

// TestClusterEvents reads /cluster/events, a stream, as a client does.
func TestClusterEvents(t *testing.T) {
	sp := space(t)
	_, addr := start(t, sp, Config{Writable: true})
	fsys := mount(t, addr)
	fid, err := fsys.Open("/cluster/events", plan9.OREAD)
	if err != nil {
		t.Fatal(err)
	}
	defer fid.Close()
	got := make(chan string, 1)
	go func() {
		b := make([]byte, 1024)
		n, err := fid.Read(b)
		if err != nil {
			got <- err.Error()
			return
		}
		got <- string(b[:n])
	}()
	time.Sleep(50 * time.Millisecond)
	ctl, err := fsys.Open("/cluster/ctl", plan9.OWRITE)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ctl.Write([]byte("name renamed")); err != nil {
		t.Fatal(err)
	}
	ctl.Close()
	select {
	case line := <-got:
		if !strings.Contains(line, "renamed") {
			t.Errorf("event %q", line)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no event")
	}
	// A Go client follows the stream: its next read waits for the
	// next event instead of returning 0 bytes, which it takes for EOF.
	b := make([]byte, 1024)
	go func() {
		n, err := fid.Read(b)
		if err != nil {
			got <- err.Error()
			return
		}
		got <- string(b[:n])
	}()
	time.Sleep(50 * time.Millisecond)
	select {
	case line := <-got:
		t.Fatalf("read after data did not wait: %q", line)
	default:
	}
	ctl, err = fsys.Open("/cluster/ctl", plan9.OWRITE)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ctl.Write([]byte("name again")); err != nil {
		t.Fatal(err)
	}
	ctl.Close()
	select {
	case line := <-got:
		if !strings.Contains(line, "again") {
			t.Errorf("second event %q", line)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no second event")
	}
}

// streamFS makes /dev/x/events of a name space a stream.
type streamFS struct {
	*ns.Namespace
	events  chan []byte
	started atomic.Int32
	closed  atomic.Int32
	ended   atomic.Int32 // reads ended by their context
}

func (s *streamFS) OpenStream(name string) (func(context.Context, []byte) (int, error), func(), error) {
	if name != "/dev/x/events" {
		return nil, nil, fmt.Errorf("%s: %w", name, file.ErrNotStream)
	}
	read := func(ctx context.Context, p []byte) (int, error) {
		s.started.Add(1)
		select {
		case b := <-s.events:
			return copy(p, b), nil
		case <-ctx.Done():
			s.ended.Add(1)
			return 0, ctx.Err()
		}
	}
	return read, func() { s.closed.Add(1) }, nil
}

func TestStream(t *testing.T) {
	sp := space(t)
	sp.Mount("/dev/x", ns.NewDir().File("events", ns.File{Read: func() ([]byte, error) { return nil, nil }}))
	sfs := &streamFS{Namespace: sp, events: make(chan []byte)}
	// 1 s: a test goroutine paused under load must not look idle.
	s := New(sfs, Config{IdleTimeout: time.Second})

	// v9fs asks for 9P2000.L: its reads get the burst rule.
	r := dialRaw(t, s)
	r.attachAs(8192, "9P2000.L")
	r.rpc(&Fcall{Type: Twalk, Tag: 1, Fid: 0, Newfid: 1, Wname: []string{"dev", "x", "events"}})
	if rf := r.rpc(&Fcall{Type: Topen, Tag: 1, Fid: 1, Mode: OREAD}); rf.Type != Ropen {
		t.Fatalf("open: %+v", rf)
	}
	// A read waits for an event, and past the idle timeout.
	r.send(&Fcall{Type: Tread, Tag: 2, Fid: 1, Count: 100})
	time.Sleep(1300 * time.Millisecond)
	sfs.events <- []byte("node up\n")
	if rf, err := r.recv(); err != nil || rf.Tag != 2 || string(rf.Data) != "node up\n" {
		t.Fatalf("stream read: %+v %v", rf, err)
	}
	// The read after data does not wait: 0 bytes end the burst.
	if rf := r.rpc(&Fcall{Type: Tread, Tag: 3, Fid: 1, Count: 100}); rf.Type != Rread || len(rf.Data) != 0 {
		t.Fatalf("read after a burst: %+v, want an empty Rread", rf)
	}
	// The next waits; a flush ends it: Rflush, with no Rread before it.
	r.send(&Fcall{Type: Tread, Tag: 3, Fid: 1, Count: 100})
	waitFor(t, "the read", func() bool { return sfs.started.Load() == 3 })
	time.Sleep(20 * time.Millisecond)
	r.send(&Fcall{Type: Tflush, Tag: 4, Oldtag: 3})
	if rf, err := r.recv(); err != nil || rf.Type != Rflush || rf.Tag != 4 {
		t.Fatalf("flush: %+v %v", rf, err)
	}
	if sfs.ended.Load() != 2 {
		t.Errorf("%d reads ended by their context, want 2 (the burst's end, the flush)", sfs.ended.Load())
	}
	// Flushing what is not pending answers at once.
	if rf := r.rpc(&Fcall{Type: Tflush, Tag: 5, Oldtag: 3}); rf.Type != Rflush {
		t.Errorf("flush of nothing: %+v", rf)
	}
	// Pending reads are bounded.
	for i := range MaxPending {
		r.send(&Fcall{Type: Tread, Tag: uint16(10 + i), Fid: 1, Count: 100})
	}
	r.wantErr(&Fcall{Type: Tread, Tag: 20, Fid: 1, Count: 100}, "too many pending")
	r.wantErr(&Fcall{Type: Tstat, Tag: 10, Fid: 1}, "tag in use")
	// Clunk ends them and closes the stream once.
	r.send(&Fcall{Type: Tclunk, Tag: 30, Fid: 1})
	got := map[uint16]uint8{}
	for range MaxPending + 1 {
		rf, err := r.recv()
		if err != nil {
			t.Fatal(err)
		}
		got[rf.Tag] = rf.Type
	}
	if got[30] != Rclunk || got[10] != Rerror {
		t.Errorf("replies: %v", got)
	}
	waitFor(t, "the close", func() bool { return sfs.closed.Load() == 1 })

	// A connection that ends with a read pending closes its streams.
	r2 := dialRaw(t, s)
	r2.attach(8192)
	r2.rpc(&Fcall{Type: Twalk, Tag: 1, Fid: 0, Newfid: 1, Wname: []string{"dev", "x", "events"}})
	r2.rpc(&Fcall{Type: Topen, Tag: 1, Fid: 1, Mode: OREAD})
	r2.send(&Fcall{Type: Tread, Tag: 2, Fid: 1, Count: 100})
	r2.c.Close()
	waitFor(t, "the close", func() bool { return sfs.closed.Load() == 2 })

	// Other files are snapshots.
	r3 := dialRaw(t, s)
	r3.attach(8192)
	r3.rpc(&Fcall{Type: Twalk, Tag: 1, Fid: 0, Newfid: 1, Wname: []string{"dev", "sysname"}})
	r3.rpc(&Fcall{Type: Topen, Tag: 1, Fid: 1, Mode: OREAD})
	if rf := r3.rpc(&Fcall{Type: Tread, Tag: 1, Fid: 1, Count: 100}); string(rf.Data) != "fornax-01\n" {
		t.Errorf("snapshot read %+v", rf)
	}
}

// TestFlushAfterReply: a Tflush that comes while the reply of its
// stream read is being sent gets its Rflush after that reply, never
// before: flush(5) lets the client reuse the old tag once it has the
// Rflush, so a later Rread of that tag would answer the wrong request.
func TestFlushAfterReply(t *testing.T) {
	sp := space(t)
	sp.Mount("/dev/x", ns.NewDir().File("events", ns.File{Read: func() ([]byte, error) { return nil, nil }}))
	sfs := &streamFS{Namespace: sp, events: make(chan []byte)}
	s := New(sfs, Config{})
	replying, release := make(chan struct{}), make(chan struct{})
	hook := func() {
		close(replying)
		select { // with the fix the hook holds the replies back
		case <-release:
		case <-time.After(200 * time.Millisecond):
		}
	}
	testHookReplying.Store(&hook)
	t.Cleanup(func() { testHookReplying.Store(nil) })

	r := dialRaw(t, s)
	r.attach(8192)
	r.rpc(&Fcall{Type: Twalk, Tag: 1, Fid: 0, Newfid: 1, Wname: []string{"dev", "x", "events"}})
	r.rpc(&Fcall{Type: Topen, Tag: 1, Fid: 1, Mode: OREAD})
	r.send(&Fcall{Type: Tread, Tag: 2, Fid: 1, Count: 100})
	sfs.events <- []byte("node up\n")
	<-replying
	r.send(&Fcall{Type: Tflush, Tag: 3, Oldtag: 2})
	var order []uint8
	for range 2 {
		rf, err := r.recv()
		if err != nil {
			t.Fatal(err)
		}
		order = append(order, rf.Type)
	}
	close(release)
	if order[0] != Rread || order[1] != Rflush {
		t.Errorf("replies %v, want Rread then Rflush", order)
	}
}

// brokenStream makes /dev/sysname a stream that cannot be opened, with
// an error that wraps fs.ErrInvalid but is not file.ErrNotStream.
type brokenStream struct{ *ns.Namespace }

var errBroken = fmt.Errorf("stream broken: %w", fs.ErrInvalid)

func (b brokenStream) OpenStream(name string) (func(context.Context, []byte) (int, error), func(), error) {
	if name == "/dev/sysname" {
		return nil, nil, errBroken
	}
	return b.Namespace.OpenStream(name)
}

// TestNotStream: only file.ErrNotStream makes a file a snapshot file;
// any other error of OpenStream is the open's.
func TestNotStream(t *testing.T) {
	_, addr := start(t, brokenStream{space(t)}, Config{})
	fsys := mount(t, addr)
	if _, err := fsys.Open("/dev/sysname", plan9.OREAD); err == nil || err.Error() != errBroken.Error() {
		t.Errorf("open of a broken stream: %v, want %q", err, errBroken)
	}
	if got := readAll(t, fsys, "/cluster/stats"); !strings.HasPrefix(string(got), "received ") {
		t.Errorf("/cluster/stats, refused as a stream with file.ErrNotStream, reads %q", got)
	}
}

// attachAs starts a session with a Tversion of version, then attaches.
func (r *raw) attachAs(msize uint32, version string) {
	r.t.Helper()
	if rf := r.rpc(&Fcall{Type: Tversion, Tag: NoTag, Msize: msize, Version: version}); rf.Type != Rversion {
		r.t.Fatalf("version: %+v", rf)
	}
	if rf := r.rpc(&Fcall{Type: Tattach, Tag: 1, Fid: 0, Afid: NoFid, Uname: "u"}); rf.Type != Rattach {
		r.t.Fatalf("attach: %+v", rf)
	}
}

// TestStreamBlocks: outside a 9P2000.L session, the read after one that
// returned data waits, as Plan 9's event files do; 0 bytes would be EOF
// to go-p9p, 9fans.net/go and the others.
func TestStreamBlocks(t *testing.T) {
	sp := space(t)
	sp.Mount("/dev/x", ns.NewDir().File("events", ns.File{Read: func() ([]byte, error) { return nil, nil }}))
	sfs := &streamFS{Namespace: sp, events: make(chan []byte)}
	s := New(sfs, Config{})
	r := dialRaw(t, s)
	r.attach(8192)
	r.rpc(&Fcall{Type: Twalk, Tag: 1, Fid: 0, Newfid: 1, Wname: []string{"dev", "x", "events"}})
	r.rpc(&Fcall{Type: Topen, Tag: 1, Fid: 1, Mode: OREAD})
	r.send(&Fcall{Type: Tread, Tag: 2, Fid: 1, Count: 100})
	sfs.events <- []byte("a\n")
	if rf, err := r.recv(); err != nil || string(rf.Data) != "a\n" {
		t.Fatalf("first read: %+v %v", rf, err)
	}
	r.send(&Fcall{Type: Tread, Tag: 3, Fid: 1, Count: 100})
	r.c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := r.recv(); err == nil {
		t.Fatal("the read after data was answered before any data came")
	}
	sfs.events <- []byte("b\n")
	if rf, err := r.recv(); err != nil || rf.Tag != 3 || string(rf.Data) != "b\n" {
		t.Fatalf("second read: %+v %v", rf, err)
	}
}

// TestEventsScanner follows /cluster/events the way a Go program does:
// a bufio.Scanner on a 9fans.net/go fid, across a pause between events.
func TestEventsScanner(t *testing.T) {
	_, addr := start(t, space(t), Config{Writable: true})
	fsys := mount(t, addr)
	fid, err := fsys.Open("/cluster/events", plan9.OREAD)
	if err != nil {
		t.Fatal(err)
	}
	defer fid.Close()
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(fid)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines) // the scanner ended: what the test must not see
	}()
	for _, name := range []string{"first", "second"} {
		time.Sleep(300 * time.Millisecond) // a pause with a read pending
		ctl, err := fsys.Open("/cluster/ctl", plan9.OWRITE)
		if err != nil {
			t.Fatal(err)
		}
		ctl.Write([]byte("name " + name))
		ctl.Close()
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("the scanner ended before the %s event", name)
			}
			if !strings.HasSuffix(l, "renamed "+name) {
				t.Errorf("event %q", l)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no %s event", name)
		}
	}
}
