package vmtest

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"9fans.net/go/plan9"
	"9fans.net/go/plan9/client"
)

// The 9P client side of the tests (9fans.net/go, 9P2000), shared by the
// VM tests and fornaxd's: each fails the test on an error.

// Dial9P connects to the 9P server at addr (host:port) from inside
// namespace ns; the connection closes when the test ends.
func Dial9P(t testing.TB, ns, addr string) net.Conn {
	t.Helper()
	var c net.Conn
	err := InNetns(ns, func() error {
		var err error
		c, err = net.DialTimeout("tcp4", addr, 10*time.Second)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Mount9P attaches to the 9P server at addr from inside ns.
func Mount9P(t testing.TB, ns, addr string) *client.Fsys {
	t.Helper()
	c, err := client.NewConn(Dial9P(t, ns, addr))
	if err != nil {
		t.Fatal(err)
	}
	fsys, err := c.Attach(nil, "glenda", "")
	if err != nil {
		t.Fatal(err)
	}
	return fsys
}

// Read9P returns the whole of a file.
func Read9P(t testing.TB, fsys *client.Fsys, name string) string {
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
	return string(b)
}

// Ls9P returns the names in a directory, in the server's order.
func Ls9P(t testing.TB, fsys *client.Fsys, name string) []string {
	t.Helper()
	fid, err := fsys.Open(name, plan9.OREAD)
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	defer fid.Close()
	dirs, err := fid.Dirreadall()
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	var names []string
	for _, d := range dirs {
		names = append(names, d.Name)
	}
	return names
}

// ReadStream reads n lines from a stream fid. Its reads wait for lines
// (fs/ninep's doc, "Streams"); a read of 0 bytes, which only a 9P2000.L
// session gets, would end a burst, not the stream: it reads on. A read that
// blocks past the timeout fails the test when the connection closes.
func ReadStream(t testing.TB, fid *client.Fid, n int, timeout time.Duration) []string {
	t.Helper()
	type result struct {
		text string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		var text string
		buf := make([]byte, 4096)
		for strings.Count(text, "\n") < n {
			k, err := fid.Read(buf)
			if err != nil && err != io.EOF {
				done <- result{text, err}
				return
			}
			text += string(buf[:k])
		}
		done <- result{text, nil}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("read the stream: %v (after %q)", r.err, r.text)
		}
		return strings.Split(strings.TrimSuffix(r.text, "\n"), "\n")
	case <-time.After(timeout):
		t.Fatalf("fewer than %d lines in %v", n, timeout)
	}
	return nil
}
