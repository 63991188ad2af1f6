package face

// The request side of HTTP/1.1 (RFC 9112), as much as a read-only face
// needs: GET and HEAD, no bodies, origin-form targets. Hand-written
// because net/http would add 2.8 MB of text to a kernel image of 5.6 MB
// (docs/guide.md, "The HTTP face"); FuzzReadRequest keeps it honest.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// maxHeaderBytes bounds the request line and header fields together.
const maxHeaderBytes = 4096

// request is what the face takes of a request.
type request struct {
	method string // GET or HEAD
	path   string // the target's path, query removed
	close  bool   // the client asked for the connection to close after
}

// httpError is a refused request: the status to answer, and why.
type httpError struct {
	status int
	why    string
}

func (e *httpError) Error() string { return fmt.Sprintf("%d %s", e.status, e.why) }

func refuse(status int, format string, args ...any) *httpError {
	return &httpError{status, fmt.Sprintf(format, args...)}
}

// readRequest reads one request head from r: an *httpError for one the
// face refuses (it is answered, then the connection closed), another
// error when the connection failed or timed out.
func readRequest(r *bufio.Reader) (request, error) {
	var req request
	budget := maxHeaderBytes
	line, err := readLine(r, &budget)
	if err != nil {
		return req, err
	}
	method, rest, ok1 := strings.Cut(line, " ")
	target, proto, ok2 := strings.Cut(rest, " ")
	if !ok1 || !ok2 || method == "" || target == "" || strings.ContainsAny(target, " \t") {
		return req, refuse(400, "bad request line")
	}
	switch proto {
	case "HTTP/1.1":
	case "HTTP/1.0":
		req.close = true
	default:
		return req, refuse(505, "HTTP/1.0 or HTTP/1.1 only")
	}
	if !token(method) {
		return req, refuse(400, "bad method")
	}
	if target[0] != '/' {
		return req, refuse(400, "the target must be a path")
	}
	req.method = method
	req.path, _, _ = strings.Cut(target, "?")
	hosts := 0
	for {
		line, err := readLine(r, &budget)
		if err != nil {
			return req, err
		}
		if line == "" {
			break
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok || !token(name) {
			return req, refuse(400, "bad header field")
		}
		value = strings.Trim(value, " \t")
		switch strings.ToLower(name) {
		case "host":
			hosts++
		case "connection":
			for _, o := range strings.Split(value, ",") {
				switch strings.ToLower(strings.TrimSpace(o)) {
				case "close":
					req.close = true
				case "keep-alive":
					if proto == "HTTP/1.0" {
						req.close = false
					}
				}
			}
		case "content-length":
			if value != "0" {
				return req, refuse(400, "no request bodies: the face is read-only")
			}
		case "transfer-encoding":
			return req, refuse(400, "no request bodies: the face is read-only")
		}
	}
	if proto == "HTTP/1.1" && hosts != 1 {
		return req, refuse(400, "HTTP/1.1 needs one Host field") // RFC 9112 §3.2
	}
	return req, nil
}

// readLine reads one CRLF- (or LF-) terminated line within budget.
func readLine(r *bufio.Reader, budget *int) (string, error) {
	var line []byte
	for {
		b, err := r.ReadSlice('\n')
		*budget -= len(b)
		if *budget < 0 {
			return "", refuse(431, "request header over %d bytes", maxHeaderBytes)
		}
		line = append(line, b...)
		if err == nil {
			break
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return "", err
		}
	}
	line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
	for _, c := range line {
		if c < ' ' && c != '\t' || c == 0x7f {
			return "", refuse(400, "control character in the header")
		}
	}
	return string(line), nil
}

// token reports whether s is an RFC 9110 token.
func token(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}
