package ninep

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"path"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"9fans.net/go/plan9"

	"fornax/cluster"
	"fornax/fs/ns"
)

// TestTree walks the whole tree with a real client: every directory's
// entries are the name space's, every file reads as ReadFile does, stat
// tells modes, length 0 and the qid of the directory entry.
func TestTree(t *testing.T) {
	sp := space(t)
	_, addr := start(t, sp, Config{})
	fsys := mount(t, addr)
	files := 0
	var walk func(dir string)
	walk = func(dir string) {
		fid, err := fsys.Open(dir, plan9.OREAD)
		if err != nil {
			t.Fatalf("open %s: %v", dir, err)
		}
		ents, err := fid.Dirreadall()
		fid.Close()
		if err != nil {
			t.Fatalf("dirread %s: %v", dir, err)
		}
		want, _ := sp.ReadDir(dir)
		if len(ents) != len(want) {
			t.Errorf("%s: %d entries, want %d", dir, len(ents), len(want))
		}
		for i, d := range ents {
			p := path.Join(dir, d.Name)
			if i < len(want) && strings.TrimSuffix(want[i], "/") != d.Name {
				t.Errorf("%s: entry %d is %q, want %q", dir, i, d.Name, want[i])
			}
			st, err := fsys.Stat(p)
			if err != nil {
				t.Fatalf("stat %s: %v", p, err)
			}
			if st.Qid.Path != d.Qid.Path || st.Qid.Type != d.Qid.Type || st.Mode != d.Mode || st.Length != 0 {
				t.Errorf("%s: stat %v, dir entry %v", p, st, d)
			}
			if d.Mode&plan9.DMDIR != 0 {
				if d.Mode != plan9.DMDIR|0o555 || d.Qid.Type != plan9.QTDIR {
					t.Errorf("%s: mode %v qid %v", p, d.Mode, d.Qid)
				}
				walk(p)
				continue
			}
			files++
			if p == "/cluster/events" {
				continue // a stream: reads wait for events (TestClusterEvents)
			}
			if d.Mode != 0o444 {
				t.Errorf("%s: mode %o, want 0444 (read-only server)", p, d.Mode)
			}
			want, err := sp.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			got := readAll(t, fsys, p)
			if path.Base(p) != "resources" && path.Base(p) != "stats" && !bytes.Equal(got, want) {
				t.Errorf("%s: read %q, want %q", p, got, want)
			}
		}
	}
	walk("/")
	if files < 50 {
		t.Errorf("read %d files, expected more", files)
	}
	if got := string(readAll(t, fsys, "/cluster/self/id")); got != "0a0b0c0d\n" {
		t.Errorf("self/id = %q", got)
	}
	if got := readAll(t, fsys, "/dev/big"); len(got) != 160000 {
		t.Errorf("/dev/big: %d bytes", len(got))
	}
	st, err := fsys.Stat("/")
	if err != nil || st.Name != "/" || st.Mode != plan9.DMDIR|0o555 {
		t.Errorf("stat / = %v, %v", st, err)
	}
	if _, err := fsys.Stat("/dev/nope"); err == nil {
		t.Errorf("stat of a missing file: %v", err)
	}
}

func TestWrite(t *testing.T) {
	sp := space(t)
	_, roAddr := start(t, sp, Config{})
	ro := mount(t, roAddr)
	if _, err := ro.Open("/cluster/ctl", plan9.OWRITE); err == nil || err.Error() != "permission denied" {
		t.Errorf("open ctl for writing on a read-only server: %v", err)
	}
	if _, err := ro.Open("/dev", plan9.OWRITE); err == nil {
		t.Error("opened a directory for writing")
	}

	_, rwAddr := start(t, sp, Config{Writable: true})
	rw := mount(t, rwAddr)
	if _, err := rw.Open("/dev/sysname", plan9.OWRITE); err == nil {
		t.Error("opened a read-only file for writing")
	}
	if st, err := rw.Stat("/cluster/ctl"); err != nil || st.Mode != 0o664 {
		t.Errorf("stat ctl = %v, %v", st, err)
	}
	fid, err := rw.Open("/cluster/ctl", plan9.OWRITE|plan9.OTRUNC)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fid.Write([]byte("name x\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := fid.Write([]byte("jion")); err == nil || !strings.Contains(err.Error(), `bad ctl message: "jion"`) {
		t.Errorf("bad ctl write: %v", err)
	}
	fid.Close()
	if got := string(readAll(t, rw, "/cluster/self/name")); got != "x\n" {
		t.Errorf("self/name after a rename = %q", got)
	}
	fid, err = rw.Open("/dev/ctl", plan9.ORDWR)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fid.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	fid.Close()
	if got := string(readAll(t, rw, "/dev/ctl")); got != "hello" {
		t.Errorf("/dev/ctl = %q", got)
	}
}

// TestSnapshot: an open file reads one snapshot, whatever changes after.
func TestSnapshot(t *testing.T) {
	sp := space(t)
	_, addr := start(t, sp, Config{Writable: true})
	fsys := mount(t, addr)
	fid, err := fsys.Open("/dev/ctl", plan9.OREAD)
	if err != nil {
		t.Fatal(err)
	}
	defer fid.Close()
	b := make([]byte, 4)
	if n, _ := fid.ReadAt(b, 0); string(b[:n]) != "noth" {
		t.Fatalf("first read %q", b[:n])
	}
	sp.WriteFile("/dev/ctl", []byte("changed"))
	if n, _ := fid.ReadAt(b, 4); string(b[:n]) != "ing " {
		t.Errorf("second read %q: not the snapshot", b[:n])
	}
	if n, err := fid.ReadAt(b, 1000); n != 0 {
		t.Errorf("read past the end: %d, %v", n, err)
	}
}

// TestWstatTruncate: Linux truncates a file it opens with O_TRUNC by a
// Twstat of length 0 that also sets the times; on a writable file that
// is a no-op, elsewhere an error.
func TestWstatTruncate(t *testing.T) {
	sp := space(t)
	for _, writable := range []bool{true, false} {
		r := dialRaw(t, New(sp, Config{Writable: writable}))
		r.attach(8192)
		r.rpc(&Fcall{Type: Twalk, Tag: 1, Fid: 0, Newfid: 1, Wname: []string{"dev", "ctl"}})
		r.rpc(&Fcall{Type: Twalk, Tag: 1, Fid: 0, Newfid: 2, Wname: []string{"dev", "sysname"}})
		trunc := &Dir{Mode: ^uint32(0), Atime: ^uint32(0), Mtime: 1764493690, Length: 0}
		st := trunc.Append(nil)
		if writable {
			if rf := r.rpc(&Fcall{Type: Twstat, Tag: 1, Fid: 1, Stat: st}); rf.Type != Rwstat {
				t.Errorf("truncate ctl: %+v", rf)
			}
		} else {
			r.wantErr(&Fcall{Type: Twstat, Tag: 1, Fid: 1, Stat: st}, "wstat")
		}
		r.wantErr(&Fcall{Type: Twstat, Tag: 1, Fid: 2, Stat: st}, "wstat")
		chmod := &Dir{Mode: 0o777, Atime: ^uint32(0), Mtime: ^uint32(0), Length: ^uint64(0)}
		r.wantErr(&Fcall{Type: Twstat, Tag: 1, Fid: 1, Stat: chmod.Append(nil)}, "wstat")
	}
}

// allWritable makes every file of a name space writable.
type allWritable struct{ *ns.Namespace }

func (allWritable) Writable(string) bool { return true }

// TestWriteOnlyNoSnapshot: an open for writing only takes no snapshot,
// so it costs nothing of MaxSnapshot however big the file reads.
func TestWriteOnlyNoSnapshot(t *testing.T) {
	s := New(allWritable{space(t)}, Config{Writable: true, MaxSnapshot: 1000})
	r := dialRaw(t, s)
	r.attach(8192)
	r.rpc(&Fcall{Type: Twalk, Tag: 1, Fid: 0, Newfid: 1, Wname: []string{"dev", "big"}})
	if rf := r.rpc(&Fcall{Type: Topen, Tag: 1, Fid: 1, Mode: OWRITE}); rf.Type != Ropen {
		t.Errorf("write-only open of a big file: %+v", rf)
	}
	r.rpc(&Fcall{Type: Twalk, Tag: 1, Fid: 0, Newfid: 2, Wname: []string{"dev", "big"}})
	r.wantErr(&Fcall{Type: Topen, Tag: 1, Fid: 2, Mode: ORDWR}, "too much open")
}

// counted is a name space whose /dev files count their reads.
func counted(t *testing.T) (*ns.Namespace, *atomic.Int64) {
	var reads atomic.Int64
	dev := ns.NewDir()
	for _, name := range []string{"a", "b", "ctl"} {
		dev.File(name, ns.File{Read: func() ([]byte, error) { reads.Add(1); return []byte("x\n"), nil }})
	}
	sp := ns.New()
	if err := sp.Mount("/dev", dev); err != nil {
		t.Fatal(err)
	}
	return sp, &reads
}

// TestStatReadsNothing: a stat, a walk and a directory open read no
// file: synthetic files have length 0. Only an open for reading does.
func TestStatReadsNothing(t *testing.T) {
	sp, reads := counted(t)
	_, addr := start(t, sp, Config{Writable: true})
	fsys := mount(t, addr)
	for _, name := range []string{"/dev/a", "/dev/ctl"} {
		if d, err := fsys.Stat(name); err != nil || d.Length != 0 {
			t.Errorf("stat %s = %v, %v; want length 0", name, d, err)
		}
	}
	fid, err := fsys.Open("/dev", plan9.OREAD)
	if err != nil {
		t.Fatal(err)
	}
	ents, err := fid.Dirreadall()
	fid.Close()
	if err != nil || len(ents) != 3 {
		t.Fatalf("dirread /dev: %d entries, %v", len(ents), err)
	}
	if n := reads.Load(); n != 0 {
		t.Errorf("stat and dirread read files %d times", n)
	}
	if fid, err = fsys.Open("/dev/ctl", plan9.OWRITE|plan9.OTRUNC); err != nil {
		t.Fatal(err)
	}
	fid.Close()
	if n := reads.Load(); n != 0 {
		t.Errorf("an open for writing read the file")
	}
	readAll(t, fsys, "/dev/b")
	if n := reads.Load(); n != 1 {
		t.Errorf("an open for reading read the file %d times", n)
	}
}

// TestOpenModes: open(5)'s rules, through a real client: OTRUNC needs
// write permission and is no way to open a directory; no file may be
// opened OEXEC (mode 0444 or 0664), a directory may; OWRITE|OTRUNC of a
// writable ctl works, as Linux sends it for `echo > ctl`.
func TestOpenModes(t *testing.T) {
	sp := space(t)
	for _, writable := range []bool{false, true} {
		_, addr := start(t, sp, Config{Writable: writable})
		fsys := mount(t, addr)
		for _, tc := range []struct {
			name string
			mode uint8
			want string // error text, "" for success
		}{
			{"/dev/sysname", plan9.OREAD | plan9.OTRUNC, "permission denied"},
			{"/dev/sysname", plan9.OEXEC, "permission denied"},
			{"/dev", plan9.OREAD | plan9.OTRUNC, "is a directory"},
			{"/dev", plan9.OEXEC, ""},
			{"/dev/ctl", plan9.OEXEC, "permission denied"},
			{"/dev/ctl", plan9.OWRITE | plan9.OTRUNC, map[bool]string{false: "permission denied", true: ""}[writable]},
			{"/dev/ctl", plan9.OREAD | plan9.OTRUNC, map[bool]string{false: "permission denied", true: ""}[writable]},
		} {
			fid, err := fsys.Open(tc.name, tc.mode)
			got := ""
			if err != nil {
				got = err.Error()
			} else {
				fid.Close()
			}
			if got != tc.want {
				t.Errorf("writable %v: open %s mode %#x: %q, want %q", writable, tc.name, tc.mode, got, tc.want)
			}
		}
	}
}

// TestErrorTexts: Plan 9's texts, not Go's: Tcreate of an unknown fid
// is "unknown fid", a malformed stat buffer is named so, a cancelled
// context is "interrupted".
func TestErrorTexts(t *testing.T) {
	r := dialRaw(t, New(space(t), Config{Writable: true}))
	r.attach(8192)
	r.wantErr(&Fcall{Type: Tcreate, Tag: 1, Fid: 7, Name: "x", Perm: 0o666}, "unknown fid")
	r.wantErr(&Fcall{Type: Tcreate, Tag: 1, Fid: 0, Name: "x", Perm: 0o666}, "permission denied")
	r.rpc(&Fcall{Type: Twalk, Tag: 1, Fid: 0, Newfid: 1, Wname: []string{"dev", "ctl"}})
	r.wantErr(&Fcall{Type: Tcreate, Tag: 1, Fid: 1, Name: "x", Perm: 0o666}, "not a directory")
	rf := r.rpc(&Fcall{Type: Twstat, Tag: 1, Fid: 1, Stat: []byte{3, 0, 1, 2}})
	if rf.Type != Rerror || rf.Ename != "malformed stat buffer" {
		t.Errorf("malformed wstat: %+v", rf)
	}
	for err, want := range map[error]string{
		context.Canceled:         "interrupted",
		context.DeadlineExceeded: "interrupted",
		&fs.PathError{Op: "read", Path: "/dev/x", Err: fs.ErrNotExist}:     "file does not exist",
		&fs.PathError{Op: "write", Path: "/dev/x", Err: fs.ErrPermission}:  "permission denied",
		&fs.PathError{Op: "write", Path: "/x", Err: errors.New("bad ctl")}: "bad ctl",
	} {
		if got := ename(err); got != want {
			t.Errorf("ename(%v) = %q, want %q", err, got, want)
		}
	}
}

// TestQidVersion: through a real client, the qid of a peer's file has a
// version that stays while its content does and changes with it, in
// walks, stats and opens alike; view's changes at every look.
func TestQidVersion(t *testing.T) {
	c := newCrowd(t, 3)
	_, addr := start(t, c.ns, Config{})
	fsys := mount(t, addr)
	name := "/cluster/nodes/" + c.ids[1] + "/name"
	vers := func() (stat, open uint32, content string) {
		t.Helper()
		d, err := fsys.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		fid, err := fsys.Open(name, plan9.OREAD)
		if err != nil {
			t.Fatal(err)
		}
		defer fid.Close()
		b, err := io.ReadAll(fid)
		if err != nil {
			t.Fatal(err)
		}
		return d.Qid.Vers, fid.Qid().Vers, string(b)
	}
	s1, o1, b1 := vers()
	if s2, o2, b2 := vers(); s1 != o1 || s2 != s1 || o2 != o1 || b1 != b2 {
		t.Errorf("%s unchanged (%q, %q): versions %d %d, then %d %d", name, b1, b2, s1, o1, s2, o2)
	}
	if err := c.sendAs(1, cluster.Message{Kind: cluster.Announce, ID: c.ids[1], Addr: peerAddr(1),
		Name: "renamed", CPUs: 4, MemTotal: 1 << 30, MemFree: 1 << 29}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the rename", func() bool { _, _, b := vers(); return b == "renamed\n" })
	if s2, o2, _ := vers(); s2 == s1 || o2 != s2 {
		t.Errorf("%s renamed: versions %d %d, were %d %d", name, s2, o2, s1, o1)
	}
	v1, err := fsys.Stat("/cluster/view")
	if err != nil {
		t.Fatal(err)
	}
	if v2, err := fsys.Stat("/cluster/view"); err != nil || v2.Qid.Vers == v1.Qid.Vers {
		t.Errorf("view: version %d twice (%v)", v1.Qid.Vers, err)
	}
}

// TestBudget: a connection within its burst never waits; past it, it
// waits share times what it spent, and time pays its debt back at
// 1/share of its rate. Alone (share 1), a connection that is never busy
// longer than the time that passed never waits.
func TestBudget(t *testing.T) {
	const share = 16
	var b budget
	now := time.Unix(1764493690, 0)
	ms := time.Millisecond
	if w := b.charge(now, budgetBurst-ms, share); w != 0 {
		t.Errorf("within the burst: wait %v", w)
	}
	if w := b.charge(now, 2*ms, share); w != ms*share {
		t.Errorf("1 ms past the burst: wait %v, want %v", w, ms*share)
	}
	now = now.Add(ms * share) // waited
	if w := b.charge(now, 0, share); w != 0 {
		t.Errorf("after the wait: wait %v", w)
	}
	now = now.Add(budgetBurst * share) // idle long enough to pay it all back
	if w := b.charge(now, budgetBurst, share); w != 0 || b.debt != budgetBurst {
		t.Errorf("after a long idle: wait %v, debt %v", w, b.debt)
	}

	var alone budget
	for i := range 10000 { // busy 0.9 ms of each ms, for 10 s
		now = now.Add(ms)
		if w := alone.charge(now, 900*time.Microsecond, 1); w != 0 {
			t.Fatalf("alone, request %d: wait %v, debt %v", i, w, alone.debt)
		}
	}
	var crowded budget
	waited := time.Duration(0)
	for range 10000 { // the same among 4 users: held to 1/4
		now = now.Add(ms + waited)
		waited = crowded.charge(now, 900*time.Microsecond, 4)
	}
	if waited == 0 {
		t.Errorf("among 4 users, busy 90 %% of the time: never waited (debt %v)", crowded.debt)
	}
}

// TestShareOf: alone, all the time; among n, 1/(2n) each, half in all.
func TestShareOf(t *testing.T) {
	for n, want := range map[int]int{0: 1, 1: 1, 2: 4, 17: 34} {
		if got := shareOf(n); got != want {
			t.Errorf("shareOf(%d) = %d, want %d", n, got, want)
		}
	}
}

// TestUsers: the share counts the connections whose last request ended
// within budgetBurst.
func TestUsers(t *testing.T) {
	var u users
	a, b, c := &conn{}, &conn{}, &conn{}
	now := time.Unix(1764493690, 0)
	for _, tc := range []struct {
		c    *conn
		dt   time.Duration
		want int
	}{
		{a, 0, 1},                              // at 0: a
		{b, time.Millisecond, 2},               // at 1 ms: a, b
		{c, budgetBurst - time.Millisecond, 2}, // at 50 ms: a's ended 50 ms ago, so b, c
		{c, time.Millisecond, 1},               // at 51 ms: b's ended 50 ms ago, so c
		{b, time.Millisecond, 2},               // at 52 ms: c, b
	} {
		now = now.Add(tc.dt)
		if got := u.used(tc.c, now); got != tc.want {
			t.Errorf("at +%v: %d users, want %d", tc.dt, got, tc.want)
		}
	}
	u.gone(c)
	if got := u.used(b, now); got != 1 {
		t.Errorf("after c is gone, b alone: %d users", got)
	}
}
