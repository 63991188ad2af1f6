package face

import (
	"bufio"
	"bytes"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"fornax/cluster"
	"fornax/fs/ninep"
)

// statNames names the counters of /cluster/stats (docs/protocol.md §8.2)
// by Prometheus' conventions. A line not listed here becomes
// fornax_cluster_<name>_total, so a counter added to the file is not lost.
var statNames = map[string]struct{ name, help string }{
	"received":           {"fornax_cluster_datagrams_received_total", "Datagrams received on the cluster port."},
	"accepted":           {"fornax_cluster_datagrams_accepted_total", "Datagrams accepted as valid messages."},
	"echo":               {"fornax_cluster_echoes_total", "Our own broadcasts heard back."},
	"sent":               {"fornax_cluster_datagrams_sent_total", "Datagrams sent."},
	"send_errors":        {"fornax_cluster_send_errors_total", "Sends that failed."},
	"answers":            {"fornax_cluster_join_answers_total", "Fast-join answers sent (protocol §4.1)."},
	"refutes":            {"fornax_cluster_refutes_total", "Refutations of claims of our own id (protocol §5)."},
	"log_held":           {"fornax_cluster_log_lines_held_total", "Log lines held back by the log rate limit."},
	"events_lost":        {"fornax_cluster_events_lost_total", "Event lines readers of /cluster/events lost, all readers together."},
	"probes":             {"fornax_cluster_probes_sent_total", "Probes sent to quiet peers (protocol §4.5)."},
	"probes_held":        {"fornax_cluster_probes_held_total", "Probes held back by the probe budget."},
	"probe_answers":      {"fornax_cluster_probe_answers_total", "Probes answered."},
	"probe_answers_held": {"fornax_cluster_probe_answers_held_total", "Probes left unanswered by the answer budgets."},
	"asks":               {"fornax_cluster_asks_sent_total", "ASKs sent: helpers asked to probe a quiet peer (protocol §4.5)."},
	"asks_held":          {"fornax_cluster_asks_held_total", "Valid ASKs not acted on: over a budget."},
	"asks_refused":       {"fornax_cluster_asks_refused_total", "Valid ASKs not acted on: about a peer not listed live."},
	"ask_probes":         {"fornax_cluster_ask_probes_total", "Probes sent for others' ASKs."},
	"relays":             {"fornax_cluster_relays_sent_total", "RELAYs sent: a probed peer's HEARTBEAT forwarded to the asker."},
	"relays_refused":     {"fornax_cluster_relays_refused_total", "RELAYs dropped for what they carry."},
	"syncs":              {"fornax_cluster_syncs_sent_total", "SYNCs sent: state requests of the join, its retries and seeds (protocol §4.6)."},
	"seed_tries":         {"fornax_cluster_seed_tries_total", "Seeds tried: an ANNOUNCE and a SYNC to a seed not listed live."},
	"sync_answers":       {"fornax_cluster_sync_answers_total", "SYNCs answered with our state."},
	"syncs_held":         {"fornax_cluster_syncs_held_total", "Valid SYNCs left unanswered by the answer budgets."},
	"state_listed":       {"fornax_cluster_state_listed_total", "Peers listed from entries of STATEs (second-hand)."},
	"state_candidates":   {"fornax_cluster_state_candidates_total", "Addresses off the subnet learned from plain STATE entries, not yet heard."},
	"state_refused":      {"fornax_cluster_state_refused_total", "STATE entries not taken: they failed a check."},
	"intros":             {"fornax_cluster_intros_sent_total", "ANNOUNCEs sent by unicast to peers and candidates off the subnet."},
	"pushes":             {"fornax_cluster_pushes_sent_total", "Introductions (STATE part 0) sent."},
}

// ClusterCollector reports node's figures: the counters of
// /cluster/stats, the peers by status, the auth mode and the keys by
// fingerprint (never a key), the name conflicts, and whether the node is
// joined.
func ClusterCollector(node *cluster.Node, profile string) Collector {
	return func(m *Metrics) {
		tree := node.Tree()
		m.Gauge("fornax_cluster_info", "This node: its id, name and timing profile.", 1,
			"id", node.ID(), "name", node.Name(), "profile", profile)
		if b, err := tree.ReadFile("stats"); err == nil {
			statsMetrics(m, b)
		}
		counts := map[cluster.Status]int{}
		for _, p := range node.Peers() {
			counts[p.Status]++
		}
		for _, s := range []cluster.Status{cluster.Online, cluster.Suspect, cluster.Dead} {
			m.Gauge("fornax_cluster_peers", "Peers in the table, by status.", float64(counts[s]), "status", s.String())
		}
		if b, err := tree.ReadFile("ctl"); err == nil {
			ctlMetrics(m, b)
		}
		if b, err := tree.ReadFile("conflicts"); err == nil {
			m.Gauge("fornax_cluster_name_conflicts", "Names that more than one node goes by (/cluster/conflicts).", float64(bytes.Count(b, []byte("\n"))))
		}
	}
}

// statsMetrics turns the lines "name value" of /cluster/stats into
// counters. dropped_<reason> lines are one family with a reason label;
// the "dropped" line, their sum, and "peers", which the table gives by
// status, are left out.
func statsMetrics(m *Metrics, b []byte) {
	for name, v := range keyValues(b) {
		switch {
		case name == "dropped" || name == "peers":
		case strings.HasPrefix(name, "dropped_"):
			m.Counter("fornax_cluster_dropped_total", "Datagrams dropped, by reason (protocol §8.2).", v, "reason", strings.TrimPrefix(name, "dropped_"))
		case strings.HasPrefix(name, "accepted_"):
			m.Counter("fornax_cluster_messages_accepted_total", "Messages accepted, by verb.", v, "kind", strings.TrimPrefix(name, "accepted_"))
		case strings.HasPrefix(name, "sent_"):
			m.Counter("fornax_cluster_messages_sent_total", "Messages sent, by verb.", v, "kind", strings.TrimPrefix(name, "sent_"))
		default:
			s, ok := statNames[name]
			if !ok {
				s.name, s.help = "fornax_cluster_"+name+"_total", "The "+name+" line of /cluster/stats."
			}
			if validName(s.name) {
				m.Counter(s.name, s.help, v)
			}
		}
	}
}

// ctlMetrics reports what /cluster/ctl says: joined or left, the auth
// mode, the keys by fingerprint.
func ctlMetrics(m *Metrics, b []byte) {
	joined, auth, keys := parseCtl(b)
	j := 0.0
	if joined {
		j = 1
	}
	m.Gauge("fornax_cluster_joined", "1 while the node is joined, 0 after a leave.", j)
	m.Gauge("fornax_cluster_auth_info", "The auth mode (protocol §9.3).", 1, "mode", auth)
	for i, fp := range keys {
		m.Gauge("fornax_cluster_key_info", "A key of the keyring, by fingerprint (protocol §9).", 1,
			"fingerprint", fp, "primary", strconv.FormatBool(i == 0))
	}
}

// parseCtl reads /cluster/ctl (docs/protocol.md §8.1): joined or left,
// the auth mode, the keys' fingerprints with the primary first.
func parseCtl(b []byte) (joined bool, auth string, keys []string) {
	keys = []string{}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	joined = lines[0] == "joined"
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		switch {
		case len(f) == 2 && f[0] == "auth":
			auth = f[1]
		case len(f) >= 2 && f[0] == "key":
			if len(f) == 3 && f[2] == "primary" {
				keys = append([]string{f[1]}, keys...)
			} else {
				keys = append(keys, f[1])
			}
		}
	}
	return joined, auth, keys
}

// keyValues yields the "name value" lines of b whose value is a number,
// in order.
func keyValues(b []byte) func(yield func(string, float64) bool) {
	return func(yield func(string, float64) bool) {
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			name, val, ok := strings.Cut(sc.Text(), " ")
			if !ok {
				continue
			}
			v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
			if err != nil || !validName(name) {
				continue
			}
			if !yield(name, v) {
				return
			}
		}
	}
}

// KeyValues reports each "name value" line of the file read returns as
// a metric prefix+name: a gauge if name is in gauges, else a counter,
// with _total added. /net/services is such a file.
func KeyValues(prefix, help string, read func() ([]byte, error), gauges ...string) Collector {
	return func(m *Metrics) {
		b, err := read()
		if err != nil {
			return
		}
		for name, v := range keyValues(b) {
			if slices.Contains(gauges, name) {
				m.Gauge(prefix+name, help, v)
			} else {
				m.Counter(prefix+name+"_total", help, v)
			}
		}
	}
}

// RuntimeCollector reports the Go runtime's goroutines and memory.
func RuntimeCollector(m *Metrics) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m.Gauge("fornax_goroutines", "Goroutines that exist now.", float64(runtime.NumGoroutine()))
	m.Gauge("fornax_runtime_sys_bytes", "Bytes the Go runtime has obtained (runtime.MemStats.Sys).", float64(ms.Sys))
	m.Gauge("fornax_runtime_heap_inuse_bytes", "Bytes in in-use heap spans.", float64(ms.HeapInuse))
}

// NinePCollector reports a 9P server's counters.
func NinePCollector(st *ninep.Stats) Collector {
	return func(m *Metrics) {
		m.Gauge("fornax_9p_connections", "9P connections open now.", float64(st.Conns.Load()))
		m.Counter("fornax_9p_connections_accepted_total", "9P connections accepted.", float64(st.Accepted.Load()))
		m.Counter("fornax_9p_connections_refused_total", "9P connections closed at once, over the limit.", float64(st.Refused.Load()))
		m.Counter("fornax_9p_connections_evicted_total", "Idle 9P connections closed to admit a newcomer.", float64(st.Evicted.Load()))
		m.Counter("fornax_9p_requests_total", "9P requests (T-messages).", float64(st.Requests.Load()))
		m.Counter("fornax_9p_errors_total", "9P Rerror replies.", float64(st.Errors.Load()))
	}
}

// MachineCollector reports the machine's figures: uptime, memory, load.
func MachineCollector(uptime func() time.Duration, res func() cluster.Resources) Collector {
	return func(m *Metrics) {
		r := res()
		m.Gauge("fornax_uptime_seconds", "Time since the node started.", uptime().Seconds())
		m.Gauge("fornax_cpus", "CPUs of the machine.", float64(r.CPUs))
		m.Gauge("fornax_memory_total_bytes", "Memory of the machine.", float64(r.MemTotal))
		m.Gauge("fornax_memory_free_bytes", "Memory free.", float64(r.MemFree))
		m.Gauge("fornax_load", "Busy CPUs over the last interval, summed (protocol §3).", r.Load)
	}
}
