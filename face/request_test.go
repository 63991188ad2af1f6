package face

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestReadRequest(t *testing.T) {
	big := "GET / HTTP/1.1\r\nHost: x\r\nX-Pad: " + strings.Repeat("a", maxHeaderBytes) + "\r\n\r\n"
	for _, c := range []struct {
		in     string
		status int // 0: accepted
		want   request
	}{
		{"GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n", 0, request{method: "GET", path: "/metrics"}},
		{"HEAD /v1/self?x=1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", 0, request{method: "HEAD", path: "/v1/self", close: true}},
		{"GET / HTTP/1.0\r\n\r\n", 0, request{method: "GET", path: "/", close: true}},
		{"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", 0, request{method: "GET", path: "/"}},
		{"GET / HTTP/1.1\nHost: a\n\n", 0, request{method: "GET", path: "/"}}, // bare LF, RFC 9112 §2.2
		{"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", 0, request{method: "POST", path: "/"}},
		{"GET / HTTP/1.1\r\n\r\n", 400, request{}},                       // no Host
		{"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, request{}}, // two
		{"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505, request{}},            // version
		{"GET http://x/ HTTP/1.1\r\nHost: a\r\n\r\n", 400, request{}},    // absolute form
		{"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400, request{}},           // double space
		{"GET / HTTP/1.1 x\r\nHost: a\r\n\r\n", 505, request{}},          // junk after version
		{"G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400, request{}},            // method not a token
		{"GET / HTTP/1.1\r\nHost a\r\n\r\n", 400, request{}},             // no colon
		{"GET / HTTP/1.1\r\nHo st: a\r\n\r\n", 400, request{}},           // name not a token
		{"GET / HTTP/1.1\r\nHost: a\x00\r\n\r\n", 400, request{}},        // NUL
		{"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello", 400, request{}},
		{"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", 400, request{}},
		{big, 431, request{}},
	} {
		got, err := readRequest(bufio.NewReaderSize(strings.NewReader(c.in), maxHeaderBytes))
		var he *httpError
		switch {
		case c.status == 0 && err != nil:
			t.Errorf("%q: %v", c.in, err)
		case c.status == 0 && got != c.want:
			t.Errorf("%q: %+v, want %+v", c.in, got, c.want)
		case c.status != 0 && (!errors.As(err, &he) || he.status != c.status):
			t.Errorf("%q: %v, want %d", clip(c.in), err, c.status)
		}
	}
	// A head cut short is a connection error, not an answer.
	if _, err := readRequest(bufio.NewReader(strings.NewReader("GET / HTTP/1.1\r\nHost: a\r\n"))); !errors.Is(err, io.EOF) {
		t.Errorf("cut short: %v", err)
	}
}

func clip(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}

// FuzzReadRequest: any bytes give a request, an *httpError or a read
// error; never a panic, never an accepted request that breaks the rules.
func FuzzReadRequest(f *testing.F) {
	f.Add([]byte("GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n"))
	f.Add([]byte("HEAD / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n"))
	f.Add([]byte("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := readRequest(bufio.NewReaderSize(strings.NewReader(string(b)), maxHeaderBytes))
		if err != nil {
			return
		}
		if !token(req.method) || !strings.HasPrefix(req.path, "/") || strings.ContainsAny(req.path, "? \t\r\n") {
			t.Fatalf("accepted %q as %+v", b, req)
		}
	})
}
