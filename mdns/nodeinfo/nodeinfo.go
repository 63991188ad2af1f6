// Package nodeinfo is what a cluster node publishes over mDNS (package
// mdns), shared by the programs that run one: fornaxd and the cluster
// image. It sits above both mdns and cluster, neither of which knows the
// other.
package nodeinfo

import (
	"context"
	"net/netip"
	"strings"
	"time"

	"fornax/cluster"
	"fornax/mdns"
)

// Recheck is how often Follow looks at the node when no event of its
// own came: the auth mode changes without an event (a key given through
// ctl). A rename, leave or join is an event (§8.4 of docs/protocol.md)
// and reaches mDNS at once, with no timer waking an idle node.
const Recheck = 5 * time.Second

// Ports are the node's TCP services to publish beside its gossip; 0 is
// not served.
type Ports struct {
	NineP uint16 // 9P, as _9p._tcp
	HTTP  uint16 // the face, as _http._tcp and _prometheus-http._tcp
}

// Info is what node publishes: its A record for addr and its services,
// _fornax._udp (gossip), _9p._tcp and the face as _http._tcp (path=/)
// and _prometheus-http._tcp (path=/metrics), each with TXT id, profile
// and auth (never a key). joined is false once the node has left: the
// responder then says goodbye (docs/guide.md "Names (mDNS)").
func Info(node *cluster.Node, addr netip.Addr, profile string, ports Ports) (info mdns.Info, joined bool) {
	ctl, _ := node.Tree().ReadFile("ctl")
	return fromCtl(string(ctl), node.ID(), node.Name(), addr, profile, ports)
}

// fromCtl is Info from the text of the node's ctl file.
func fromCtl(ctl, id, name string, addr netip.Addr, profile string, ports Ports) (mdns.Info, bool) {
	joined := strings.HasPrefix(ctl, "joined\n")
	auth := "plain"
	for _, l := range strings.Split(ctl, "\n") {
		if a, ok := strings.CutPrefix(l, "auth "); ok {
			auth = a
		}
	}
	txt := []string{"id=" + id, "profile=" + profile, "auth=" + auth}
	info := mdns.Info{Name: name, Addr: addr, Services: []mdns.Service{{Type: "_fornax._udp", Port: cluster.DefaultPort, TXT: txt}}}
	if ports.NineP != 0 {
		info.Services = append(info.Services, mdns.Service{Type: "_9p._tcp", Port: ports.NineP, TXT: txt})
	}
	if ports.HTTP != 0 {
		info.Services = append(info.Services,
			mdns.Service{Type: "_http._tcp", Port: ports.HTTP, TXT: append([]string{"path=/"}, txt...)},
			mdns.Service{Type: "_prometheus-http._tcp", Port: ports.HTTP, TXT: append([]string{"path=/metrics"}, txt...)})
	}
	return info, joined
}

// Changes returns a channel that gets a value soon after each event of
// node's own id in /cluster/events (joined, left, renamed), or after
// events were lost, until ctx is done.
func Changes(ctx context.Context, node *cluster.Node) (<-chan struct{}, error) {
	read, closeEvents, err := node.Tree().OpenStream("events")
	if err != nil {
		return nil, err
	}
	c := make(chan struct{}, 1)
	go func() {
		defer closeEvents()
		buf := make([]byte, 4096)
		for {
			n, err := read(ctx, buf)
			if err != nil {
				return
			}
			if ownEvent(string(buf[:n]), node.ID()) {
				select {
				case c <- struct{}{}:
				default:
				}
			}
		}
	}()
	return c, nil
}

// ownEvent reports whether lines of /cluster/events hold one of id's or
// say that events were lost.
func ownEvent(lines, id string) bool {
	for l := range strings.Lines(lines) {
		f := strings.Fields(l)
		if len(f) >= 2 && (f[1] == id || f[0] == "lost") {
			return true
		}
	}
	return false
}

// Follow hands the node's state, info(), to the responder at once, then
// at each value of changed and every Recheck, until ctx is done; a Set
// that fails is logged once until one works.
func Follow(ctx context.Context, s *mdns.Server, info func() (mdns.Info, bool), changed <-chan struct{}, logf func(string, ...any)) {
	t := time.NewTicker(Recheck)
	defer t.Stop()
	var failed bool
	for {
		i, on := info()
		err := s.Set(i, on)
		if err != nil && !failed {
			logf("%v", err) // "mdns: ...": the package's errors name it
		}
		failed = err != nil
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-t.C:
		}
	}
}
