package vmtest

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"9fans.net/go/plan9"
	"9fans.net/go/plan9/client"
)

// routedPrefix names the routed lab's namespaces: never "fornax" (the
// other VM tests' LAN) nor spanPrefix (TestSpanL2's).
const routedPrefix = "fxroute"

// The fast profile's figures (docs/protocol.md §4.4).
const (
	fastInterval = time.Second
	fastSuspect  = 3 * time.Second
	fastDead     = 6 * time.Second
	fastRemove   = 18 * time.Second
)

// TestSpanRouted: two subnets behind a router (scripts/run-lab.sh --link
// routed), two VMs on each and fornaxd on host 1's, keyed, profile fast,
// every node given seeds on the other subnet (docs/protocol.md §4.6).
// Every node lists every other online; the router's link to host 2 is
// cut: each side finds the other suspect then dead on the profile's
// timings, and nobody on its own side is ever anything but online; the
// link restored (before the dead are removed), all are online again
// within one interval plus a state exchange. Each node's /cluster/view
// is read over 9P every 100 ms from its own host's namespace, which the
// cut does not touch, throughout; the figures are printed, and only the
// outcomes (listed, dead, back, no false suspicion) are asserted.
func TestSpanRouted(t *testing.T) {
	k := kernel(t, "FORNAX_KERNEL_CLUSTER")
	if os.Geteuid() != 0 {
		t.Skip("VM TEST SKIPPED: the lab needs root (network namespaces)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("VM TEST SKIPPED: ip is missing (Debian: apt-get install iproute2)")
	}
	key := newClusterKey(t)
	bin := buildFornaxd(t)
	lab := startLab(t, k, LabOptions{Link: "routed", Hosts: 2, PerHost: 2, Prefix: routedPrefix,
		Options: Options{KeyFile: key.path, Append: []string{"profile=fast"}},
		Fornaxd: bin, FornaxdHosts: []int{1}})
	// run-lab.sh returns once every VM is at its prompt (it looks every
	// 50 ms); fornaxd started before the last of them.
	up := time.Now()
	t.Cleanup(func() {
		if t.Failed() {
			if b, err := os.ReadFile(lab.Dir + "/host-1.log"); err == nil {
				t.Logf("fornaxd's log:\n%s", b)
			}
		}
	})

	var ws []*viewWatch
	for i := range lab.VMs() {
		ws = append(ws, &viewWatch{name: Name(i + 1), host: lab.HostOf(i + 1), addr: lab.Addr(i+1) + ":564"})
	}
	ws = append(ws, &viewWatch{name: "host-1", host: 1, addr: "10.1.0.250:564"})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, w := range ws {
		fsys := Mount9P(t, lab.HostNS(w.host), w.addr)
		wg.Add(1)
		go func() { defer wg.Done(); w.run(fsys, stop) }()
	}
	defer func() { close(stop); wg.Wait() }()
	hostOf := map[string]int{}
	for _, w := range ws {
		hostOf[w.name] = w.host
	}

	// (1) Every node lists every other online: within two intervals
	// of the last boot; the assert allows 10 s, for a loaded host.
	listed := waitAllOnline(t, ws, 10*time.Second)
	for _, w := range ws {
		first := ""
		if listed[w.name].Equal(w.firstRead()) {
			first = " (its first read)"
		}
		t.Logf("%s (host %d) lists the %d others online %v after the lab was up%s", w.name, w.host, len(ws)-1, listed[w.name].Sub(up).Round(time.Millisecond), first)
	}
	last := slices.MaxFunc(ws, func(a, b *viewWatch) int { return listed[a.name].Compare(listed[b.name]) })
	t.Logf("all list all %v after the lab was up (%s last)", listed[last.name].Sub(up).Round(time.Millisecond), last.name)
	// The views were read only once the lab was up; the VMs' logs
	// (/dev/kmesg, stamped with the uptime) say when it happened.
	var lastJoin, allListed time.Time
	vmListed := make([]time.Time, len(lab.VMs()))
	for i := range lab.VMs() {
		j := kmesgJoins(t, lab.HostNS(lab.HostOf(i+1)), lab.Addr(i+1)+":564")
		lastJoin = later(lastJoin, j.self)
		l := j.self
		for _, w := range ws {
			if w.name != Name(i+1) {
				if j.peers[w.name].IsZero() {
					t.Errorf("%s's /dev/kmesg does not say %s joined", Name(i+1), w.name)
				}
				l = later(l, j.peers[w.name])
			}
		}
		vmListed[i] = l
		allListed = later(allListed, l)
	}
	for i, l := range vmListed {
		t.Logf("%s lists the %d others %v after the last VM's join, by its log", Name(i+1), len(ws)-1, l.Sub(lastJoin).Round(time.Millisecond))
	}
	t.Logf("every VM lists every other %v after the last VM's join (bound: two intervals, %v); fornaxd by its first read",
		allListed.Sub(lastJoin).Round(time.Millisecond), 2*fastInterval)

	// (2) The router's link to host 2 down: each side sees the other
	// suspect, then dead; its own side stays online.
	r := routedPrefix + "-r"
	cut := time.Now()
	ipNetns(t, r, "link", "set", "fxul2", "down")
	var across [][2]string // observer, peer on the other side
	for _, w := range ws {
		for _, o := range ws {
			if o.host != w.host {
				across = append(across, [2]string{w.name, o.name})
			}
		}
	}
	deadline := time.Now().Add(4 * fastDead)
	for !allStatus(ws, across, "dead") {
		if time.Now().After(deadline) {
			t.Fatalf("the link cut %v ago: not every node finds the other side dead: %s", time.Since(cut).Round(time.Millisecond), views(ws))
		}
		time.Sleep(20 * time.Millisecond)
	}
	allDead := time.Now()

	// (3) The link back, before the dead are removed (RemoveAfter,
	// 18 s fast): the router's route went with its link.
	restored := time.Now()
	ipNetns(t, r, "link", "set", "fxul2", "up")
	ipNetns(t, r, "route", "replace", "10.2.0.0/24", "via", "172.31.2.2")
	if restored.Sub(cut) >= fastRemove {
		t.Logf("the link is back %v after the cut, past RemoveAfter (%v): the figures are the seeds' retries'", restored.Sub(cut).Round(time.Millisecond), fastRemove)
	}
	// Within one interval plus a state exchange; the assert allows 5 s
	// (the seeds' retries after a removal take up to 8 intervals).
	back := waitAllOnline(t, ws, 5*time.Second)
	time.Sleep(2 * fastInterval) // keep watching the own sides a little longer
	end := time.Now()

	var suspectAt, deadAt, backAt []time.Duration
	for _, w := range ws {
		for _, tr := range w.transitions() {
			if tr.at.Before(cut) || tr.at.After(end) {
				continue
			}
			if hostOf[tr.peer] == w.host {
				t.Errorf("%s: %s, on its own side, went %s %v after the cut", w.name, tr.peer, tr.status, tr.at.Sub(cut).Round(time.Millisecond))
				continue
			}
			switch {
			case tr.at.Before(restored) && tr.status == "suspect":
				suspectAt = append(suspectAt, tr.at.Sub(cut))
			case tr.at.Before(restored) && tr.status == "dead":
				deadAt = append(deadAt, tr.at.Sub(cut))
			case tr.at.After(restored) && tr.status == "online":
				backAt = append(backAt, tr.at.Sub(restored))
			}
		}
	}
	if len(suspectAt) != len(across) {
		t.Logf("%d of %d (observer, peer across) pairs seen suspect (a 100 ms poll can miss it)", len(suspectAt), len(across))
	}
	t.Logf("link cut: the other side suspect %s, dead %s after the cut (%d pairs; profile fast: suspect %v, dead %v after the last message heard, one every %v)",
		spread(suspectAt), spread(deadAt), len(across), fastSuspect, fastDead, fastInterval)
	t.Logf("all dead everywhere %v after the cut; link restored then", allDead.Sub(cut).Round(time.Millisecond))
	lastBack := slices.MaxFunc(ws, func(a, b *viewWatch) int { return back[a.name].Compare(back[b.name]) })
	t.Logf("link restored: the other side online again %s after (%d pairs); all online everywhere %v after (%s last; bound: one interval, %v, plus a state exchange)",
		spread(backAt), len(backAt), back[lastBack.name].Sub(restored).Round(time.Millisecond), lastBack.name, fastInterval)
	for _, w := range ws {
		t.Logf("%s's /cluster/stats: %s", w.name, statsLine(t, lab.HostNS(w.host), w.addr))
		if n, err := w.errors(); n > 0 {
			t.Logf("%s: %d reads of /cluster/view failed, the last: %v", w.name, n, err)
		}
	}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// vmJoins is when a VM joined and first listed each peer, by the
// host's clock.
type vmJoins struct {
	self  time.Time
	peers map[string]time.Time // by name
}

// kmesgJoins reads a VM's /dev/kmesg and /proc/uptime over 9P and dates
// its "cluster: joined as" and "cluster: ID (NAME) joined from" lines by
// the host's clock (the uptime's rate is the boot's until RefineClock,
// 10 s after the prompt: the same all along here).
func kmesgJoins(t *testing.T, ns, addr string) vmJoins {
	t.Helper()
	fsys := Mount9P(t, ns, addr)
	t0 := time.Now()
	ut := Read9P(t, fsys, "/proc/uptime")
	now := t0.Add(time.Since(t0) / 2)
	var uptime float64
	if _, err := fmt.Sscan(ut, &uptime); err != nil {
		t.Fatalf("%s /proc/uptime %q: %v", addr, ut, err)
	}
	at := func(u float64) time.Time { return now.Add(-time.Duration((uptime - u) * float64(time.Second))) }
	j := vmJoins{peers: map[string]time.Time{}}
	for _, l := range strings.Split(Read9P(t, fsys, "/dev/kmesg"), "\n") {
		var u float64
		f := strings.Fields(l)
		if len(f) < 4 || f[1] != "cluster:" {
			continue
		}
		if _, err := fmt.Sscan(f[0], &u); err != nil {
			continue
		}
		switch {
		case f[2] == "joined" && f[3] == "as" && j.self.IsZero():
			j.self = at(u)
		case len(f) >= 6 && f[4] == "joined" && f[5] == "from":
			name := strings.Trim(f[3], "()")
			if _, ok := j.peers[name]; !ok {
				j.peers[name] = at(u)
			}
		}
	}
	if j.self.IsZero() {
		t.Fatalf("%s: no \"cluster: joined as\" in /dev/kmesg", addr)
	}
	return j
}

// spanStats are the counters of the span's traffic (docs/protocol.md
// §8.2) the test prints.
var spanStats = []string{"sent", "send_errors", "syncs", "seed_tries", "sync_answers", "syncs_held", "state_listed",
	"state_candidates", "state_refused", "intros", "pushes", "dropped_unasked", "dropped_stale", "dropped_replay", "dropped_foreign_subnet"}

// statsLine returns spanStats of a node's /cluster/stats, on one line.
func statsLine(t *testing.T, ns, addr string) string {
	t.Helper()
	v := map[string]string{}
	for _, l := range strings.Split(Read9P(t, Mount9P(t, ns, addr), "/cluster/stats"), "\n") {
		if f := strings.Fields(l); len(f) == 2 {
			v[f[0]] = f[1]
		}
	}
	var out []string
	for _, k := range spanStats {
		out = append(out, k+" "+v[k])
	}
	return strings.Join(out, ", ")
}

// ipNetns runs ip in namespace ns.
func ipNetns(t *testing.T, ns string, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", append([]string{"-n", ns}, args...)...).CombinedOutput(); err != nil {
		t.Fatalf("ip -n %s %s: %v %s", ns, strings.Join(args, " "), err, out)
	}
}

// spread prints the least and the greatest of ds.
func spread(ds []time.Duration) string {
	if len(ds) == 0 {
		return "(none seen)"
	}
	lo, hi := slices.Min(ds), slices.Max(ds)
	return fmt.Sprintf("%v-%v", lo.Round(10*time.Millisecond), hi.Round(10*time.Millisecond))
}

// viewWatch reads one node's /cluster/view over 9P until stopped, and
// keeps each peer's status as last read and every change of it.
type viewWatch struct {
	name, addr string
	host       int

	mu      sync.Mutex
	first   time.Time         // the first read
	cur     map[string]string // peer name to status, as last read
	trans   []viewTransition
	nerr    int
	lastErr error
}

type viewTransition struct {
	at           time.Time
	peer, status string // status "" is a peer no longer listed
}

func (w *viewWatch) run(fsys *client.Fsys, stop chan struct{}) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		t0 := time.Now()
		view, err := readFile9P(fsys, "/cluster/view")
		var peers map[string]string
		if err == nil {
			peers, err = PeerStatus(view)
		}
		// A read tells the state between its request and its answer.
		at := t0.Add(time.Since(t0) / 2)
		w.mu.Lock()
		if err != nil {
			w.nerr++
			w.lastErr = err
		} else {
			if w.first.IsZero() {
				w.first = at
			}
			for p, s := range peers {
				if w.cur[p] != s {
					w.trans = append(w.trans, viewTransition{at, p, s})
				}
			}
			for p := range w.cur {
				if _, ok := peers[p]; !ok {
					w.trans = append(w.trans, viewTransition{at, p, ""})
				}
			}
			w.cur = peers
		}
		w.mu.Unlock()
		time.Sleep(100 * time.Millisecond)
	}
}

// status returns peer's status as last read, "" if not listed.
func (w *viewWatch) status(peer string) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.cur[peer]
}

func (w *viewWatch) firstRead() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.first
}

// changed returns when peer's status last changed.
func (w *viewWatch) changed(peer string) time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := len(w.trans) - 1; i >= 0; i-- {
		if w.trans[i].peer == peer {
			return w.trans[i].at
		}
	}
	return time.Time{}
}

func (w *viewWatch) transitions() []viewTransition {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.trans)
}

func (w *viewWatch) errors() (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.nerr, w.lastErr
}

func (w *viewWatch) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return fmt.Sprintf("%s sees %v", w.name, w.cur)
}

// allStatus reports whether each observer lists its peer with status s.
func allStatus(ws []*viewWatch, pairs [][2]string, s string) bool {
	by := map[string]*viewWatch{}
	for _, w := range ws {
		by[w.name] = w
	}
	for _, p := range pairs {
		if by[p[0]].status(p[1]) != s {
			return false
		}
	}
	return true
}

// waitAllOnline waits until every node lists every other online and
// returns when each first did (to its watcher's 100 ms).
func waitAllOnline(t *testing.T, ws []*viewWatch, timeout time.Duration) map[string]time.Time {
	t.Helper()
	at := map[string]time.Time{}
	deadline := time.Now().Add(timeout)
	for len(at) < len(ws) {
		for _, w := range ws {
			if _, ok := at[w.name]; ok {
				continue
			}
			var pairs [][2]string
			for _, o := range ws {
				if o != w {
					pairs = append(pairs, [2]string{w.name, o.name})
				}
			}
			if allStatus(ws, pairs, "online") {
				// When the read that saw the last of them online was.
				var last time.Time
				for _, p := range pairs {
					if c := w.changed(p[1]); c.After(last) {
						last = c
					}
				}
				at[w.name] = last
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("not every node lists every other online after %v: %s", timeout, views(ws))
		}
		time.Sleep(20 * time.Millisecond)
	}
	return at
}

func views(ws []*viewWatch) string {
	var s []string
	for _, w := range ws {
		s = append(s, w.String())
	}
	return strings.Join(s, "; ")
}

// readFile9P returns the whole of a file, or the error (Read9P's, not
// failing the test: a watcher's goroutine must not).
func readFile9P(fsys *client.Fsys, name string) (string, error) {
	fid, err := fsys.Open(name, plan9.OREAD)
	if err != nil {
		return "", fmt.Errorf("open %s: %w", name, err)
	}
	defer fid.Close()
	b, err := io.ReadAll(fid)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", name, err)
	}
	return string(b), nil
}
