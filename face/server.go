package face

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"fornax/cluster"
	"fornax/internal/ipv4"
)

// Defaults of Config.
const (
	DefaultPort         = 9711
	DefaultMaxConns     = 32
	DefaultMaxPerSource = 8 // a browser opens up to 6 to one host
)

// Timeouts and bounds of a connection (docs/protocol.md §10).
const (
	headerTimeout = 5 * time.Second  // a request head, from its first byte; a new connection's first
	idleTimeout   = 30 * time.Second // between requests on a kept-alive connection
	writeTimeout  = 10 * time.Second // any one write
	maxRequests   = 100              // on one connection
	keepAlive     = 15 * time.Second // an event stream's comment when nothing happens
)

// Config configures a Server. Node, Addr and Resources are required.
type Config struct {
	Node *cluster.Node
	// Addr is the node's cluster address; the targets of /sd are every
	// member's address with Port.
	Addr netip.Addr
	// Port is the face's TCP port, the same on every node (DefaultPort
	// when 0).
	Port uint16
	// Profile names the node's timing profile (cluster.Profiles).
	Profile string
	// Resources gives the node's own figures, as the cluster's Config does.
	Resources func() cluster.Resources
	// Collectors add the program's figures to /metrics: the machine's,
	// the network's, the services'.
	Collectors []Collector
	// MaxConns and MaxPerSource bound the connections, in all and from
	// one address (DefaultMaxConns, DefaultMaxPerSource when 0).
	MaxConns, MaxPerSource int
	// Now is the wall clock (time.Now when nil); only "heard" uses it.
	Now func() time.Time
}

// Stats counts what the face did; /metrics reports them.
type Stats struct {
	Conns        atomic.Int64  // open now
	Accepted     atomic.Uint64 // connections
	Refused      atomic.Uint64 // connections closed at once: over a limit
	Requests     atomic.Uint64 // answered, refused ones included
	BadRequests  atomic.Uint64 // refused: malformed, method, path
	Streams      atomic.Int64  // event streams open now
	StreamsEnded atomic.Uint64 // event streams cut off: the reader stopped reading
}

// Server is the HTTP face of one node.
type Server struct {
	cfg   Config
	Stats Stats

	mu    sync.Mutex
	total int
	per   map[netip.Addr]int
}

// New checks cfg and returns a Server.
func New(cfg Config) (*Server, error) {
	if cfg.Node == nil || !cfg.Addr.IsValid() || cfg.Resources == nil {
		return nil, errors.New("face: Config needs Node, Addr and Resources")
	}
	if cfg.Port == 0 {
		cfg.Port = DefaultPort
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.MaxPerSource <= 0 {
		cfg.MaxPerSource = DefaultMaxPerSource
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Server{cfg: cfg, per: map[netip.Addr]int{}}, nil
}

// Addr is the face's listen address, ":port".
func (s *Server) Addr() string { return fmt.Sprintf(":%d", s.cfg.Port) }

// Serve answers the connections of l until l fails; it returns that
// error. A connection over MaxConns, or over MaxPerSource from its
// address, is closed as soon as it is accepted.
func (s *Server) Serve(l net.Listener) error {
	for {
		c, err := l.Accept()
		if err != nil {
			return err
		}
		src := ipv4.Source(c.RemoteAddr())
		if !s.admit(src) {
			s.Stats.Refused.Add(1)
			c.Close()
			continue
		}
		go func() {
			defer s.release(src)
			defer c.Close()
			if s.serveConn(c) {
				lingerClose(c)
			}
		}()
	}
}

func (s *Server) admit(src netip.Addr) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.total >= s.cfg.MaxConns || s.per[src] >= s.cfg.MaxPerSource {
		return false
	}
	s.total++
	s.per[src]++
	s.Stats.Accepted.Add(1)
	s.Stats.Conns.Add(1)
	return true
}

func (s *Server) release(src netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.total--
	if s.per[src]--; s.per[src] <= 0 {
		delete(s.per, src)
	}
	s.Stats.Conns.Add(-1)
}

// serveConn answers the requests of one connection, in order, until the
// client closes it or asks to, a request is refused, a timeout passes,
// or maxRequests have been answered. It reports whether its last answer
// said "Connection: close", so that the client is to close first.
func (s *Server) serveConn(c net.Conn) (closing bool) {
	r := bufio.NewReaderSize(c, maxHeaderBytes)
	for i := 0; i < maxRequests; i++ {
		if i > 0 {
			// Between requests the client may think; then the next head
			// must come whole within headerTimeout.
			c.SetReadDeadline(time.Now().Add(idleTimeout))
			if _, err := r.Peek(1); err != nil {
				return
			}
		}
		c.SetReadDeadline(time.Now().Add(headerTimeout))
		req, err := readRequest(r)
		var he *httpError
		if errors.As(err, &he) {
			s.Stats.Requests.Add(1)
			s.Stats.BadRequests.Add(1)
			return writeResponse(c, "", response{status: he.status, body: []byte(he.why + "\n")}, true) == nil
		}
		if err != nil {
			return false
		}
		s.Stats.Requests.Add(1)
		if req.path == "/v1/events" && req.method == "GET" {
			s.events(c)
			return false
		}
		last := req.close || i == maxRequests-1
		if err := writeResponse(c, req.method, s.route(req), last); err != nil || last {
			return err == nil
		}
	}
	return false
}

// lingerTimeout is how long a connection told "Connection: close" waits
// for its client to close first.
const lingerTimeout = 2 * time.Second

// lingerClose waits, after an answer that ends the connection, for the
// client to close it, so that the client, not the node, holds the
// connection's TIME-WAIT state (RFC 9293 §3.6) — in a VM of a few MB
// of heap, hundreds of them add up. A client that does not close within
// lingerTimeout is closed on.
func lingerClose(c net.Conn) {
	c.SetReadDeadline(time.Now().Add(lingerTimeout))
	io.Copy(io.Discard, io.LimitReader(c, maxHeaderBytes))
}

// route answers every request but a GET of /v1/events.
func (s *Server) route(req request) response {
	if req.method != "GET" && req.method != "HEAD" {
		s.Stats.BadRequests.Add(1)
		return response{status: 405, body: []byte("method not allowed: the face is read-only\n"), allow: true}
	}
	now := s.cfg.Now()
	switch req.path {
	case "/":
		return response{status: 200, ctype: "text/html; charset=utf-8", body: index, csp: true}
	case "/metrics":
		return response{status: 200, ctype: "text/plain; version=0.0.4; charset=utf-8", body: s.metricsText()}
	case "/sd":
		return jsonResponse(s.sd(now))
	case "/v1/self":
		return jsonResponse(s.self())
	case "/v1/members":
		return jsonResponse(s.members(now))
	case "/v1/events": // HEAD
		return response{status: 200, ctype: "text/event-stream"}
	}
	s.Stats.BadRequests.Add(1)
	return response{status: 404, body: []byte("not found: see / for what there is\n")}
}

func jsonResponse(v any) response {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return response{status: 500, body: []byte(err.Error() + "\n")}
	}
	return response{status: 200, ctype: "application/json", body: append(b, '\n')}
}

// metricsText is /metrics: the node's cluster figures, the program's
// collectors', the runtime's and the face's own.
func (s *Server) metricsText() []byte {
	var m Metrics
	ClusterCollector(s.cfg.Node, s.cfg.Profile)(&m)
	for _, c := range s.cfg.Collectors {
		c(&m)
	}
	RuntimeCollector(&m)
	s.collect(&m)
	var b bytes.Buffer
	m.write(&b)
	return b.Bytes()
}

// collect reports the face's own counters.
func (s *Server) collect(m *Metrics) {
	st := &s.Stats
	m.Gauge("fornax_http_connections", "HTTP connections open now.", float64(st.Conns.Load()))
	m.Counter("fornax_http_connections_accepted_total", "HTTP connections accepted.", float64(st.Accepted.Load()))
	m.Counter("fornax_http_connections_refused_total", "HTTP connections closed at once, over a limit.", float64(st.Refused.Load()))
	m.Counter("fornax_http_requests_total", "HTTP requests.", float64(st.Requests.Load()))
	m.Counter("fornax_http_bad_requests_total", "HTTP requests refused: malformed, method or path.", float64(st.BadRequests.Load()))
	m.Gauge("fornax_http_event_streams", "Event streams open now.", float64(st.Streams.Load()))
	m.Counter("fornax_http_event_streams_stalled_total", "Event streams cut off because the reader stopped reading.", float64(st.StreamsEnded.Load()))
}
