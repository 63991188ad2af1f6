package face

import (
	"net/netip"
	"strconv"
	"time"

	"fornax/cluster"
)

// Member is one object of /v1/members and /v1/self: every field the
// /cluster tree shows of a node (docs/guide.md, "The HTTP face").
type Member struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Addr   string `json:"addr"`
	Status string `json:"status"` // self, left (this node); online, suspect, dead
	// HTTP is the member's face, host:port: the port is this node's, as
	// every node of a cluster runs the face on the same port.
	HTTP       string   `json:"http"`
	CPUs       int      `json:"cpus"`
	MemTotal   uint64   `json:"mem_total"`
	MemFree    uint64   `json:"mem_free"`
	Load       *float64 `json:"load"` // null before the first HEARTBEAT
	Containers int      `json:"containers"`
	// Heard is the seconds since the member was last heard; 0 for self.
	Heard float64 `json:"heard"`
	Keyed bool    `json:"keyed"` // its last accepted message was signed
}

// Self is /v1/self: this node's Member and what only it knows of itself.
type Self struct {
	Member
	Profile    string   `json:"profile"`
	Auth       string   `json:"auth"`
	Keys       []string `json:"keys"` // fingerprints, the primary first
	Containers []string `json:"container_names"`
}

func (s *Server) self() Self {
	n := s.cfg.Node
	res := s.cfg.Resources()
	load := float64(cluster.LoadOf(res.Load)) / 100 // as peers hear it
	st, auth, keys := "self", "", []string{}
	if b, err := n.Tree().ReadFile("ctl"); err == nil {
		joined, a, k := parseCtl(b)
		if !joined {
			st = "left"
		}
		auth, keys = a, k
	}
	return Self{
		Member: Member{
			ID: n.ID(), Name: n.Name(), Addr: s.cfg.Addr.String(), Status: st,
			HTTP: s.httpAddr(s.cfg.Addr), CPUs: res.CPUs, MemTotal: res.MemTotal, MemFree: res.MemFree,
			Load: &load, Containers: n.Containers().Len(), Keyed: auth == "keyed",
		},
		Profile: s.cfg.Profile, Auth: auth, Keys: keys, Containers: n.Containers().List(),
	}
}

// members is this node, then its peers in node_id order.
func (s *Server) members(now time.Time) []Member {
	self := s.self()
	peers := s.cfg.Node.Peers()
	l := make([]Member, 0, 1+len(peers))
	l = append(l, self.Member)
	for _, p := range peers {
		l = append(l, s.member(p, now))
	}
	return l
}

func (s *Server) member(p cluster.Peer, now time.Time) Member {
	m := Member{
		ID: p.ID, Name: p.Name, Addr: p.Addr.String(), Status: p.Status.String(),
		HTTP: s.httpAddr(p.Addr), CPUs: p.CPUs, MemTotal: p.MemTotal, MemFree: p.MemFree,
		Containers: p.Containers, Heard: max(now.Sub(p.LastHeard), 0).Round(time.Millisecond).Seconds(),
		Keyed: p.Keyed,
	}
	if p.HasLoad {
		l := float64(p.Load) / 100
		m.Load = &l
	}
	return m
}

func (s *Server) httpAddr(a netip.Addr) string {
	return netip.AddrPortFrom(a, s.cfg.Port).String()
}

// TargetGroup is one entry of Prometheus' http_sd_configs answer.
type TargetGroup struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels"`
}

// sd is the http_sd_configs answer: one group per online member (this
// node while joined, and its online peers), labelled with what
// relabelling rules want to keep (__meta_ labels are dropped by
// Prometheus unless relabelled).
func (s *Server) sd(now time.Time) []TargetGroup {
	var l []TargetGroup
	for _, m := range s.members(now) {
		if m.Status != "self" && m.Status != "online" {
			continue
		}
		l = append(l, TargetGroup{
			Targets: []string{m.HTTP},
			Labels: map[string]string{
				"__meta_fornax_id":      m.ID,
				"__meta_fornax_name":    m.Name,
				"__meta_fornax_status":  m.Status,
				"__meta_fornax_profile": s.cfg.Profile,
				"__meta_fornax_self":    strconv.FormatBool(m.Status == "self"),
			},
		})
	}
	if l == nil {
		l = []TargetGroup{}
	}
	return l
}
