package face

import (
	"bytes"
	"net"
	"strconv"
	"time"
)

// response is a whole answer, built before anything is written.
type response struct {
	status int
	ctype  string // text/plain when empty
	body   []byte
	allow  bool // a 405: name the methods there are
	csp    bool // the page: no assets from elsewhere
}

var statusText = map[int]string{
	200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
	431: "Request Header Fields Too Large", 500: "Internal Server Error", 505: "HTTP Version Not Supported",
}

// writeResponse writes resp to c, with its body unless method is HEAD,
// within writeTimeout; last says that the connection closes after it.
func writeResponse(c net.Conn, method string, resp response, last bool) error {
	var b bytes.Buffer
	b.WriteString("HTTP/1.1 " + strconv.Itoa(resp.status) + " " + statusText[resp.status] + "\r\n")
	ctype := resp.ctype
	if ctype == "" {
		ctype = "text/plain; charset=utf-8"
	}
	b.WriteString("Content-Type: " + ctype + "\r\n")
	b.WriteString("Content-Length: " + strconv.Itoa(len(resp.body)) + "\r\n")
	b.WriteString("Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n")
	if resp.allow {
		b.WriteString("Allow: GET, HEAD\r\n")
	}
	if resp.csp {
		b.WriteString("Content-Security-Policy: default-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'\r\n")
	}
	if last {
		b.WriteString("Connection: close\r\n")
	}
	b.WriteString("\r\n")
	if method != "HEAD" {
		b.Write(resp.body)
	}
	c.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, err := c.Write(b.Bytes())
	return err
}
