package ninep

import (
	"bytes"
	"path"
	"strings"
	"testing"

	"9fans.net/go/plan9"

	"fornax/fs/ns"
)

// TestTree walks the whole tree with a real client: every directory's
// entries are the name space's, every file reads as ReadFile does, stat
// tells true sizes and modes.
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
			if st.Qid != d.Qid || st.Mode != d.Mode {
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
			if path.Base(p) == "sysname" && st.Length != uint64(len(want)) {
				t.Errorf("%s: length %d, want %d", p, st.Length, len(want))
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
