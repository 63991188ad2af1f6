package ninep

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"
)

// seeds are one message of each kind a client sends.
func seeds() [][]byte {
	fs := []*Fcall{
		{Type: Tversion, Tag: NoTag, Msize: 8192, Version: "9P2000"},
		{Type: Tattach, Tag: 1, Fid: 0, Afid: NoFid, Uname: "u"},
		{Type: Twalk, Tag: 2, Fid: 0, Newfid: 1, Wname: []string{"dev", "sysname"}},
		{Type: Topen, Tag: 3, Fid: 1},
		{Type: Tread, Tag: 4, Fid: 1, Count: 100},
		{Type: Twrite, Tag: 5, Fid: 1, Data: []byte("name x")},
		{Type: Tstat, Tag: 6, Fid: 1},
		{Type: Twstat, Tag: 7, Fid: 1, Stat: (&Dir{Name: "x"}).Append(nil)},
		{Type: Tflush, Tag: 8, Oldtag: 4},
		{Type: Tclunk, Tag: 9, Fid: 1},
		{Type: Tcreate, Tag: 10, Fid: 0, Name: "f", Perm: 0o644},
		{Type: Rerror, Tag: 11, Ename: "no"},
		{Type: Rwalk, Tag: 12, Wqid: []Qid{{Type: QTDIR, Path: 1}}},
	}
	var out [][]byte
	for _, f := range fs {
		out = append(out, f.Append(nil))
	}
	return out
}

// FuzzDecode: whatever the bytes, Decode returns; what it accepts
// encodes back to the same bytes.
func FuzzDecode(f *testing.F) {
	for _, s := range seeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fc, err := Decode(b)
		if err != nil {
			return
		}
		if again := fc.Append(nil); !bytes.Equal(again, b) {
			t.Fatalf("decoded %+v, encodes as %x, was %x", fc, again, b)
		}
		UnpackDir(fc.Stat)
	})
}

// FuzzServe: a session of arbitrary bytes after a proper start never
// crashes the server, and the session ends when the client goes.
func FuzzServe(f *testing.F) {
	all := seeds()
	f.Add(bytes.Join(all[2:], nil))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add(all[0])
	sp := space(f)
	s := New(&streamFS{Namespace: sp, events: make(chan []byte)}, Config{Writable: true, IdleTimeout: 50 * time.Millisecond, MsgTimeout: 50 * time.Millisecond})
	start := bytes.Join(all[:2], nil)
	f.Fuzz(func(t *testing.T, b []byte) {
		a, c := net.Pipe()
		done := make(chan struct{})
		go func() { s.ServeConn(c); close(done) }()
		go io.Copy(io.Discard, a)
		a.SetWriteDeadline(time.Now().Add(time.Second))
		a.Write(start)
		a.Write(b)
		a.Close()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("ServeConn did not return")
		}
	})
}
