package ninep

import (
	"encoding/binary"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	"9fans.net/go/plan9"
	"9fans.net/go/plan9/client"
)

func TestConcurrentClients(t *testing.T) {
	sp := space(t)
	_, addr := start(t, sp, Config{MaxPerSource: 8}) // all from 127.0.0.1
	var wg sync.WaitGroup
	for range 8 {
		fsys := mount(t, addr)
		wg.Go(func() {
			for range 50 {
				if got := string(readAll(t, fsys, "/cluster/self/id")); got != "0a0b0c0d\n" {
					t.Errorf("self/id = %q", got)
					return
				}
				readAll(t, fsys, "/dev/big")
			}
		})
	}
	wg.Wait()
}

// dialFrom connects to addr from the loopback address from.
func dialFrom(t *testing.T, from, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func mountFrom(t *testing.T, from, addr string) (*client.Fsys, error) {
	c := dialFrom(t, from, addr)
	cl, err := client.NewConn(c)
	if err != nil {
		return nil, err
	}
	return cl.Attach(nil, "glenda", "")
}

// TestSilentConns: 16 connections that never send a byte hold no slot
// an honest client needs: the oldest silent one gives way at once.
func TestSilentConns(t *testing.T) {
	s, addr := start(t, space(t), Config{})
	for range MaxConns {
		dialFrom(t, "127.0.0.1", addr)
	}
	waitFor(t, "the silent connections", func() bool { return s.Stats.Accepted.Load() == MaxConns })
	t0 := time.Now()
	fsys, err := mountFrom(t, "127.0.0.1", addr)
	if err != nil {
		t.Fatalf("honest client after %d silent ones: %v", MaxConns, err)
	}
	if got := string(readAll(t, fsys, "/dev/sysname")); got != "fornax-01\n" {
		t.Errorf("sysname %q", got)
	}
	t.Logf("honest client served %v after %d silent connections (evicted %d, refused %d)",
		time.Since(t0).Round(time.Millisecond), MaxConns, s.Stats.Evicted.Load(), s.Stats.Refused.Load())
	if s.Stats.Conns.Load() > MaxPerSource {
		t.Errorf("%d connections served from one address, cap %d", s.Stats.Conns.Load(), MaxPerSource)
	}
}

// TestEventReaders: 16 clients of one address blocked on /cluster/events
// get MaxPerSource slots; another address is still served.
func TestEventReaders(t *testing.T) {
	s, addr := start(t, space(t), Config{})
	reading := 0
	for range MaxConns {
		fsys, err := mountFrom(t, "127.0.0.1", addr)
		if err != nil {
			continue // refused: the address has its share
		}
		fid, err := fsys.Open("/cluster/events", plan9.OREAD)
		if err != nil {
			continue
		}
		before := s.Stats.Requests.Load()
		go fid.Read(make([]byte, 1024))
		reading++
		waitFor(t, "the read pending", func() bool { return s.Stats.Requests.Load() > before })
		time.Sleep(20 * time.Millisecond) // from received to pending
	}
	if reading != MaxPerSource || s.Stats.Conns.Load() != MaxPerSource {
		t.Errorf("%d readers, %d connections served from one address; want %d", reading, s.Stats.Conns.Load(), MaxPerSource)
	}
	fsys, err := mountFrom(t, "127.0.0.2", addr)
	if err != nil {
		t.Fatalf("another address: %v", err)
	}
	if got := string(readAll(t, fsys, "/dev/sysname")); got != "fornax-01\n" {
		t.Errorf("sysname %q", got)
	}
	if s.Stats.Evicted.Load() != 0 {
		t.Errorf("%d event readers evicted", s.Stats.Evicted.Load())
	}
}

// fakeMember is a member with its idleness set by the test.
type fakeMember struct {
	busy, session bool
	since         time.Time
}

func (f *fakeMember) idle() (bool, bool, time.Time) { return !f.busy, f.session, f.since }

func TestAdmission(t *testing.T) {
	a1, a2, a3 := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.3")
	t0 := time.Unix(1000, 0)
	a := newAdmission(4, 2)
	old := &fakeMember{session: true, since: t0}
	young := &fakeMember{session: true, since: t0.Add(time.Second)}
	for _, m := range []*fakeMember{old, young} {
		if v, ok := a.admit(m, a1); !ok || v != nil {
			t.Fatalf("admit: %v %v", v, ok)
		}
	}
	// a1 is full: its oldest idle member gives way.
	third := &fakeMember{busy: true, since: t0.Add(2 * time.Second)}
	if v, ok := a.admit(third, a1); !ok || v != member(old) {
		t.Fatalf("a1 full: victim %v ok %v, want the oldest", v, ok)
	}
	young.busy = true
	if _, ok := a.admit(&fakeMember{}, a1); ok {
		t.Fatal("a1 full of busy members admitted one more")
	}
	// The total: a sessionless member goes before an older session.
	silent := &fakeMember{since: t0.Add(time.Hour)}
	a.admit(silent, a2)
	a.admit(&fakeMember{busy: true}, a2)
	if v, ok := a.admit(&fakeMember{}, a3); !ok || v != member(silent) {
		t.Fatalf("total full: victim %v ok %v, want the sessionless one", v, ok)
	}
	a.leave(silent) // evicted already: nothing more
	if len(a.members) != 4 || a.bySource[a2] != 1 || a.bySource[a3] != 1 {
		t.Errorf("members %d, by source %v", len(a.members), a.bySource)
	}
}

func TestHostile(t *testing.T) {
	sp := space(t)
	// Timeouts well above a scheduling gap under -race on a loaded
	// machine, so only the subtests that mean to go silent are closed.
	s := New(sp, Config{MsgTimeout: 500 * time.Millisecond, IdleTimeout: time.Second, MaxFids: 8})

	t.Run("version", func(t *testing.T) {
		r := dialRaw(t, s)
		r.wantErr(&Fcall{Type: Tattach, Tag: 1, Fid: 0, Afid: NoFid}, "Tversion first")
		r.wantErr(&Fcall{Type: Tversion, Tag: NoTag, Msize: 100, Version: "9P2000"}, "msize")
		rf := r.rpc(&Fcall{Type: Tversion, Tag: NoTag, Msize: 1 << 20, Version: "9P2000.L"})
		if rf.Msize != MaxMsize || rf.Version != "9P2000" {
			t.Errorf("version: msize %d %q", rf.Msize, rf.Version)
		}
		if rf = r.rpc(&Fcall{Type: Tversion, Tag: NoTag, Msize: 8192, Version: "9P1"}); rf.Version != "unknown" {
			t.Errorf("version 9P1: %q", rf.Version)
		}
	})
	t.Run("fids", func(t *testing.T) {
		r := dialRaw(t, s)
		r.attach(8192)
		r.wantErr(&Fcall{Type: Tstat, Tag: 1, Fid: 99}, "unknown fid")
		r.wantErr(&Fcall{Type: Tread, Tag: 1, Fid: 99, Count: 10}, "unknown fid")
		r.wantErr(&Fcall{Type: Tclunk, Tag: 1, Fid: 99}, "unknown fid")
		r.wantErr(&Fcall{Type: Tattach, Tag: 1, Fid: 0, Afid: NoFid}, "in use")
		r.wantErr(&Fcall{Type: Tauth, Tag: 1, Afid: 5}, "authentication")
		names := make([]string, 17)
		for i := range names {
			names[i] = ".."
		}
		r.wantErr(&Fcall{Type: Twalk, Tag: 1, Fid: 0, Newfid: 1, Wname: names}, "walk of 17")
		r.wantErr(&Fcall{Type: Twalk, Tag: 1, Fid: 0, Newfid: 1, Wname: []string{"dev/sysname"}}, "bad name")
		r.wantErr(&Fcall{Type: Twalk, Tag: 1, Fid: 0, Newfid: 1, Wname: []string{"nope"}}, "does not exist")
		// A partial walk answers the names it walked and makes no fid.
		rf := r.rpc(&Fcall{Type: Twalk, Tag: 1, Fid: 0, Newfid: 1, Wname: []string{"dev", "nope"}})
		if rf.Type != Rwalk || len(rf.Wqid) != 1 {
			t.Errorf("partial walk: %+v", rf)
		}
		r.wantErr(&Fcall{Type: Tstat, Tag: 1, Fid: 1}, "unknown fid")
		for i := uint32(1); i < 8; i++ {
			if rf := r.rpc(&Fcall{Type: Twalk, Tag: 1, Fid: 0, Newfid: i}); rf.Type != Rwalk {
				t.Fatalf("clone %d: %+v", i, rf)
			}
		}
		r.wantErr(&Fcall{Type: Twalk, Tag: 1, Fid: 0, Newfid: 8}, "too many fids")
		r.wantErr(&Fcall{Type: Tcreate, Tag: 1, Fid: 1, Name: "x", Perm: 0o666}, "permission")
		r.wantErr(&Fcall{Type: Tremove, Tag: 1, Fid: 1}, "permission")
		r.wantErr(&Fcall{Type: Tstat, Tag: 1, Fid: 1}, "unknown fid") // remove clunked it
		r.wantErr(&Fcall{Type: Twstat, Tag: 1, Fid: 2, Stat: (&Dir{Name: "x"}).Append(nil)}, "wstat")
		r.wantErr(&Fcall{Type: Tread, Tag: 1, Fid: 2, Count: 10}, "not open")
		r.wantErr(&Fcall{Type: Rread, Tag: 1}, "unexpected")
		// Reads past the end give nothing.
		r.rpc(&Fcall{Type: Twalk, Tag: 1, Fid: 0, Newfid: 9, Wname: []string{"dev", "sysname"}})
		r.rpc(&Fcall{Type: Topen, Tag: 1, Fid: 9, Mode: OREAD})
		if rf := r.rpc(&Fcall{Type: Tread, Tag: 1, Fid: 9, Offset: 1 << 40, Count: 100}); rf.Type != Rread || len(rf.Data) != 0 {
			t.Errorf("read past the end: %+v", rf)
		}
		if rf := r.rpc(&Fcall{Type: Tread, Tag: 1, Fid: 9, Offset: 0, Count: 1 << 30}); string(rf.Data) != "fornax-01\n" {
			t.Errorf("read: %+v", rf)
		}
		r.wantErr(&Fcall{Type: Topen, Tag: 1, Fid: 9, Mode: OREAD}, "is open")
		r.wantErr(&Fcall{Type: Twalk, Tag: 1, Fid: 9, Newfid: 9}, "is open")
		r.wantErr(&Fcall{Type: Twrite, Tag: 1, Fid: 9, Data: []byte("x")}, "not open")
	})
	t.Run("dirread", func(t *testing.T) {
		r := dialRaw(t, s)
		r.attach(8192)
		r.rpc(&Fcall{Type: Twalk, Tag: 1, Fid: 0, Newfid: 1, Wname: []string{"dev", "sub"}})
		r.rpc(&Fcall{Type: Topen, Tag: 1, Fid: 1, Mode: OREAD})
		r.wantErr(&Fcall{Type: Tread, Tag: 1, Fid: 1, Count: 10}, "count too small")
		off, n := uint64(0), 0
		for {
			rf := r.rpc(&Fcall{Type: Tread, Tag: 1, Fid: 1, Offset: off, Count: 300})
			if rf.Type != Rread {
				t.Fatalf("dirread: %+v", rf)
			}
			if len(rf.Data) == 0 {
				break
			}
			for b := rf.Data; len(b) > 0; n++ {
				size := 2 + int(binary.LittleEndian.Uint16(b))
				if _, _, _, err := UnpackDir(b[:size]); err != nil {
					t.Fatalf("entry %d: %v", n, err)
				}
				b = b[size:]
			}
			off += uint64(len(rf.Data))
		}
		if n != 40 {
			t.Errorf("%d entries, want 40", n)
		}
		r.wantErr(&Fcall{Type: Tread, Tag: 1, Fid: 1, Offset: 7, Count: 300}, "bad offset")
	})
	t.Run("bad size", func(t *testing.T) {
		r := dialRaw(t, s)
		r.c.Write([]byte{0xff, 0xff, 0xff, 0x7f, Tversion, 0, 0})
		r.closed(time.Second)
	})
	t.Run("tiny size", func(t *testing.T) {
		r := dialRaw(t, s)
		r.c.Write([]byte{3, 0, 0, 0})
		r.closed(time.Second)
	})
	t.Run("half a message", func(t *testing.T) {
		r := dialRaw(t, s)
		b := (&Fcall{Type: Tversion, Tag: NoTag, Msize: 8192, Version: "9P2000"}).Append(nil)
		r.c.Write(b[:9])
		r.closed(4 * time.Second)
	})
	t.Run("half a header", func(t *testing.T) {
		r := dialRaw(t, s)
		r.c.Write([]byte{19, 0})
		r.closed(4 * time.Second)
	})
	t.Run("idle", func(t *testing.T) {
		r := dialRaw(t, s)
		r.attach(8192)
		r.closed(4 * time.Second)
	})
	t.Run("garbage with a good header", func(t *testing.T) {
		r := dialRaw(t, s)
		r.attach(8192)
		r.c.Write([]byte{12, 0, 0, 0, 200, 7, 0, 1, 2, 3, 4, 5})
		if rf, err := r.recv(); err != nil || rf.Type != Rerror || rf.Tag != 7 {
			t.Errorf("garbage: %+v %v", rf, err)
		}
	})
}

// TestNoLeak: connections that come and go leave no goroutines.
func TestNoLeak(t *testing.T) {
	sp := space(t)
	before := runtime.NumGoroutine()
	_, addr := start(t, sp, Config{})
	for range 20 {
		c, err := client.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		fsys, err := c.Attach(nil, "u", "")
		if err != nil {
			t.Fatal(err)
		}
		readAll(t, fsys, "/dev/sysname")
		c.Close()
	}
	waitFor(t, "goroutines to end", func() bool { return runtime.NumGoroutine() <= before+2 })
}

func BenchmarkRead(b *testing.B) {
	sp := space(b)
	_, addr := start(b, sp, Config{})
	fsys := mount(b, addr)
	for b.Loop() {
		readAll(b, fsys, "/cluster/self/id")
	}
}
