package cluster

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"fornax/internal/units"
)

// viewLater is the view file (docs/protocol.md §8): the cluster on one
// screen, a table of aligned columns with a header line, this node first,
// then the peers in node_id order:
//
//	ID        NAME       ADDR      STATUS  HEARD  LOAD  MEM
//	00000001  fornax-01  10.0.0.1  self    -      0.25  128M/256M
//	00000002  fornax-02  10.0.0.2  online  1.2    0.10  100M/256M
//
// STATUS is self (left, once this node has left) or the peer's state,
// HEARD the seconds since the peer was last heard, LOAD the last load
// heard (- before the first HEARTBEAT), MEM free/total. Under the node's
// lock, with v.res, it copies the peers; the returned function sorts and
// formats them after the lock is released.
func viewLater(v *view) func() []byte {
	n := v.n
	self := viewSelf{id: n.cfg.ID, name: n.name, addr: n.cfg.Addr, joined: n.joined, res: v.res}
	now, peers := n.clock.Now(), n.peersLocked()
	return func() []byte { return viewText(self, peers, now) }
}

// viewSelf is what the view shows of this node.
type viewSelf struct {
	id, name string
	addr     netip.Addr
	joined   bool
	res      Resources
}

func viewText(self viewSelf, peers []Peer, now time.Time) []byte {
	status := "self"
	if !self.joined {
		status = "left"
	}
	rows := [][]string{
		{"ID", "NAME", "ADDR", "STATUS", "HEARD", "LOAD", "MEM"},
		{self.id, self.name, self.addr.String(), status, "-", LoadOf(self.res.Load).String(),
			units.Bytes(self.res.MemFree) + "/" + units.Bytes(self.res.MemTotal)},
	}
	slices.SortFunc(peers, func(a, b Peer) int { return strings.Compare(a.ID, b.ID) })
	for _, p := range peers {
		load := "-"
		if p.HasLoad {
			load = p.Load.String()
		}
		heard := max(now.Sub(p.LastHeard), 0)
		rows = append(rows, []string{p.ID, p.Name, p.Addr.String(), p.Status.String(),
			fmt.Sprintf("%.1f", heard.Seconds()), load,
			units.Bytes(p.MemFree) + "/" + units.Bytes(p.MemTotal)})
	}
	return columns(rows)
}

// columns lays rows out in columns two spaces apart, without trailing
// blanks.
func columns(rows [][]string) []byte {
	var width []int
	for _, r := range rows {
		for i, c := range r {
			if i == len(width) {
				width = append(width, 0)
			}
			width[i] = max(width[i], len(c))
		}
	}
	var b strings.Builder
	for _, r := range rows {
		for i, c := range r {
			b.WriteString(c)
			if i < len(r)-1 {
				b.WriteString(strings.Repeat(" ", width[i]-len(c)+2))
			}
		}
		b.WriteByte('\n')
	}
	return []byte(b.String())
}
