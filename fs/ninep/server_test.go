package ninep

import (
	"encoding/binary"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"9fans.net/go/plan9/client"
)

func TestConcurrentClients(t *testing.T) {
	sp := space(t)
	_, addr := start(t, sp, Config{})
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

func TestMaxConns(t *testing.T) {
	sp := space(t)
	s, addr := start(t, sp, Config{})
	for range MaxConns {
		mount(t, addr)
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Error("connection 17 was not closed")
	}
	if s.Stats.Refused.Load() != 1 || s.Stats.Conns.Load() != MaxConns {
		t.Errorf("refused %d, serving %d", s.Stats.Refused.Load(), s.Stats.Conns.Load())
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
