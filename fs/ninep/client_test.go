package ninep

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"9fans.net/go/plan9"
	"9fans.net/go/plan9/client"

	"fornax/cluster"
	"fornax/fs/file"
	"fornax/fs/ns"
)

// The kernel's name space is what the server serves, streams included.
var (
	_ file.Server   = (*ns.Namespace)(nil)
	_ file.Streamer = (*ns.Namespace)(nil)
)

// packetConn is a UDP socket that sends nowhere and receives nothing,
// enough for cluster.New.
type packetConn struct {
	once   sync.Once
	closed chan struct{}
}

func newPacketConn() *packetConn { return &packetConn{closed: make(chan struct{})} }

func (p *packetConn) ReadFrom([]byte) (int, net.Addr, error) {
	<-p.closed
	return 0, nil, net.ErrClosed
}
func (p *packetConn) WriteTo(b []byte, _ net.Addr) (int, error) { return len(b), nil }
func (p *packetConn) Close() error                              { p.once.Do(func() { close(p.closed) }); return nil }
func (p *packetConn) LocalAddr() net.Addr {
	return net.UDPAddrFromAddrPort(netip.MustParseAddrPort("10.0.0.2:9710"))
}
func (p *packetConn) SetDeadline(time.Time) error      { return nil }
func (p *packetConn) SetReadDeadline(time.Time) error  { return nil }
func (p *packetConn) SetWriteDeadline(time.Time) error { return nil }

// space is a name space like the kernel's: a /dev of ns.Dir files and a
// cluster node's tree at /cluster.
func space(t testing.TB) *ns.Namespace {
	t.Helper()
	var mu sync.Mutex
	last := []byte("nothing written\n")
	dev := ns.NewDir().
		File("sysname", ns.File{Read: func() ([]byte, error) { return []byte("fornax-01\n"), nil }}).
		File("big", ns.File{Read: func() ([]byte, error) { return bytes.Repeat([]byte("0123456789abcdef"), 10000), nil }}).
		File("empty", ns.File{Read: func() ([]byte, error) { return nil, nil }}).
		File("ctl", ns.File{
			Read: func() ([]byte, error) { mu.Lock(); defer mu.Unlock(); return last, nil },
			Write: func(b []byte) error {
				if string(b) == "fail" {
					return errors.New("bad ctl message: \"fail\"")
				}
				mu.Lock()
				defer mu.Unlock()
				last = b
				return nil
			}})
	sub := dev.Dir("sub")
	for i := range 40 {
		sub.File(fmt.Sprintf("file-with-a-rather-long-name-%02d", i), ns.File{Read: func() ([]byte, error) { return fmt.Appendf(nil, "%d\n", i), nil }})
	}
	node, err := cluster.New(cluster.Config{ID: "0a0b0c0d", Name: "n1", Addr: netip.MustParseAddr("10.0.0.2"),
		Prefix: netip.MustParsePrefix("10.0.0.2/24")}, newPacketConn())
	if err != nil {
		t.Fatal(err)
	}
	s := ns.New()
	if err := s.Mount("/dev", dev); err != nil {
		t.Fatal(err)
	}
	if err := s.Mount("/cluster", node.Tree()); err != nil {
		t.Fatal(err)
	}
	return s
}

// start serves fsys on a loopback port and returns its address.
func start(t testing.TB, fsys file.Server, cfg Config) (*Server, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := New(fsys, cfg)
	go s.Serve(l)
	t.Cleanup(func() { l.Close() })
	return s, l.Addr().String()
}

func mount(t testing.TB, addr string) *client.Fsys {
	t.Helper()
	c, err := client.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fsys, err := c.Attach(nil, "glenda", "")
	if err != nil {
		t.Fatal(err)
	}
	return fsys
}

func readAll(t testing.TB, fsys *client.Fsys, name string) []byte {
	t.Helper()
	fid, err := fsys.Open(name, plan9.OREAD)
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	defer fid.Close()
	b, err := io.ReadAll(fid)
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return b
}

// raw is a client speaking 9P by hand, for what the real one would not send.
type raw struct {
	t testing.TB
	c net.Conn
}

func dialRaw(t testing.TB, s *Server) *raw {
	a, b := net.Pipe()
	done := make(chan struct{})
	go func() { s.ServeConn(b); close(done) }()
	t.Cleanup(func() {
		a.Close()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("ServeConn did not return after the close")
		}
	})
	return &raw{t, a}
}

func (r *raw) send(f *Fcall) {
	r.t.Helper()
	r.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := r.c.Write(f.Append(nil)); err != nil {
		r.t.Fatalf("send %d: %v", f.Type, err)
	}
}

func (r *raw) recv() (*Fcall, error) {
	r.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var hdr [4]byte
	if _, err := io.ReadFull(r.c, hdr[:]); err != nil {
		return nil, err
	}
	b := make([]byte, binary.LittleEndian.Uint32(hdr[:]))
	copy(b, hdr[:])
	if _, err := io.ReadFull(r.c, b[4:]); err != nil {
		return nil, err
	}
	return Decode(b)
}

func (r *raw) rpc(f *Fcall) *Fcall {
	r.t.Helper()
	r.send(f)
	rf, err := r.recv()
	if err != nil {
		r.t.Fatalf("reply to %d: %v", f.Type, err)
	}
	if rf.Tag != f.Tag {
		r.t.Fatalf("reply tag %d to tag %d", rf.Tag, f.Tag)
	}
	return rf
}

// wantErr checks for an Rerror containing text.
func (r *raw) wantErr(f *Fcall, text string) {
	r.t.Helper()
	rf := r.rpc(f)
	if rf.Type != Rerror || !strings.Contains(rf.Ename, text) {
		r.t.Errorf("message %d: got type %d %q, want Rerror %q", f.Type, rf.Type, rf.Ename, text)
	}
}

func (r *raw) attach(msize uint32) {
	r.t.Helper()
	rf := r.rpc(&Fcall{Type: Tversion, Tag: NoTag, Msize: msize, Version: "9P2000"})
	if rf.Type != Rversion {
		r.t.Fatalf("version: %+v", rf)
	}
	if rf = r.rpc(&Fcall{Type: Tattach, Tag: 1, Fid: 0, Afid: NoFid, Uname: "u"}); rf.Type != Rattach {
		r.t.Fatalf("attach: %+v", rf)
	}
}

// closed checks that the server closes the connection within d.
func (r *raw) closed(d time.Duration) {
	r.t.Helper()
	r.c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, r.c)
	if err != nil {
		r.t.Errorf("connection not closed: %v", err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for range 500 {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}
