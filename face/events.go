package face

import (
	"bytes"
	"context"
	"errors"
	"net"
	"time"
)

// events answers GET /v1/events on c: the lines of /cluster/events
// (docs/protocol.md §8.4) as Server-Sent Events, until the client goes.
// Each request reads the events that come after it, as each open of the
// file does; a reader fallen more than cluster.EventBacklog events behind
// gets an event "lost" whose data is the file's "lost N events" line. A
// comment every 15 s keeps idle connections (and proxies) open; a reader
// that takes more than 10 s to take a write is cut off. The response has
// no length: it ends when the connection closes.
func (s *Server) events(c net.Conn) {
	read, closeStream, err := s.cfg.Node.Tree().OpenStream("events")
	if err != nil {
		writeResponse(c, "GET", response{status: 500, body: []byte(err.Error() + "\n")}, true)
		return
	}
	defer closeStream()
	s.Stats.Streams.Add(1)
	defer s.Stats.Streams.Add(-1)

	// The client sends nothing more; when it closes, or sends anyway,
	// the stream ends.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c.SetReadDeadline(time.Time{})
	go func() {
		var b [1]byte
		c.Read(b[:])
		cancel()
	}()

	send := func(b []byte) bool {
		c.SetWriteDeadline(time.Now().Add(writeTimeout))
		_, err := c.Write(b)
		if err != nil && ctx.Err() == nil {
			s.Stats.StreamsEnded.Add(1)
		}
		return err == nil
	}
	if !send([]byte("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\n" +
		"X-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n: fornax events\n\n")) {
		return
	}
	buf := make([]byte, 4096)
	for {
		rctx, rcancel := context.WithTimeout(ctx, keepAlive)
		n, err := read(rctx, buf)
		rcancel()
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			if !send([]byte(": keepalive\n\n")) {
				return
			}
			continue
		case err != nil:
			return
		}
		if !send(sse(buf[:n])) {
			return
		}
	}
}

// sse frames event lines: "data: <line>\n\n" each, and "event: lost"
// before a "lost N events" line.
func sse(lines []byte) []byte {
	var b bytes.Buffer
	for l := range bytes.Lines(lines) {
		l = bytes.TrimSuffix(l, []byte("\n"))
		if bytes.HasPrefix(l, []byte("lost ")) {
			b.WriteString("event: lost\n")
		}
		b.WriteString("data: ")
		b.Write(l)
		b.WriteString("\n\n")
	}
	return b.Bytes()
}
