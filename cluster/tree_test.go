package cluster

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"path"
	"slices"
	"strings"
	"testing"
)

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestTreeTables checks the fixed tables: sorted (lookup searches them
// by halves), one kind each, no duplicates.
func TestTreeTables(t *testing.T) {
	for name, tab := range map[string][]dirent{
		".": rootTab, "self": selfTab, "nodes/<id>": peerTab(&Peer{}),
	} {
		if !slices.IsSortedFunc(tab, func(a, b dirent) int { return strings.Compare(a.name, b.name) }) {
			t.Errorf("%s: table not sorted", name)
		}
		for i, e := range tab {
			if kinds := btoi(e.dir != nil) + btoi(e.read != nil) + btoi(e.later != nil); kinds != 1 {
				t.Errorf("%s/%s: %d of dir, read and later, want one", name, e.name, kinds)
			}
			if i > 0 && tab[i-1].name == e.name {
				t.Errorf("%s/%s: listed twice", name, e.name)
			}
		}
	}
}

// TestTreeWalk walks a populated tree: every name a directory lists
// exists, of the kind the listing says, and reads as that kind.
func TestTreeWalk(t *testing.T) {
	sm := newSim(t)
	a := sm.start(1, nil)
	sm.start(2, nil)
	sm.start(3, nil)
	if err := a.Containers().Add("web"); err != nil {
		t.Fatal(err)
	}
	if err := a.Containers().Add("db"); err != nil {
		t.Fatal(err)
	}
	sm.run(ms)
	tr := a.Tree()
	var files, dirs []string
	var walk func(dir string)
	walk = func(dir string) {
		dirs = append(dirs, dir)
		list, err := tr.ReadDir(dir)
		if err != nil {
			t.Fatalf("ReadDir(%q): %v", dir, err)
		}
		if !slices.IsSorted(list) {
			t.Errorf("ReadDir(%q) = %q: not sorted", dir, list)
		}
		for _, e := range list {
			name, isDir := strings.CutSuffix(e, "/")
			p := path.Join(dir, name)
			got, err := tr.Stat(p)
			if err != nil || got != isDir {
				t.Errorf("Stat(%q) = %v, %v; listed as %q", p, got, err, e)
			}
			if _, err := tr.ReadFile(p); (err == nil) == isDir {
				t.Errorf("ReadFile(%q): %v; listed as %q", p, err, e)
			}
			if isDir {
				walk(p)
			} else {
				files = append(files, p)
			}
		}
	}
	walk(".")
	wantDirs := []string{".", "nodes", "nodes/00000002", "nodes/00000002/containers",
		"nodes/00000003", "nodes/00000003/containers", "self", "self/containers"}
	if !slices.Equal(dirs, wantDirs) {
		t.Errorf("directories %q, want %q", dirs, wantDirs)
	}
	if len(files) != 5+2*4+4+2 {
		t.Errorf("files %q", files)
	}
	if got := a.read("self/containers/web"); got != "" {
		t.Errorf("self/containers/web = %q, want empty", got)
	}
	if _, err := tr.Stat("self/containers/nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat(self/containers/nope): %v", err)
	}
}

// TestTreeResourcesOutsideLock checks that the caller's Resources
// function runs without the node's lock (it may use the node) and only
// for a read of self/resources.
func TestTreeResourcesOutsideLock(t *testing.T) {
	sm := newSim(t)
	calls := 0
	var a *simNode
	a = sm.start(1, func(c *Config) {
		c.Resources = func() Resources {
			calls++
			if a != nil {
				a.Peers() // takes the lock: would deadlock under it
			}
			return Resources{CPUs: 1, MemTotal: 1 << 30, MemFree: 1 << 29}
		}
	})
	sm.run(ms)
	before := calls
	for _, name := range []string{"self", "self/id", "stats"} {
		a.Tree().Stat(name)
		a.Tree().ReadFile(name)
	}
	a.Tree().Stat("self/resources")
	a.Tree().ReadDir("self")
	if calls != before {
		t.Errorf("Resources called %d times by reads of other files", calls-before)
	}
	if got, want := a.read("self/resources"), "cpus 1\nmem 1G\nmem_free 512M\nload 0.00\ncontainers 0\n"; got != want {
		t.Errorf("self/resources = %q, want %q", got, want)
	}
	if calls != before+1 {
		t.Errorf("a read of self/resources called Resources %d times, want 1", calls-before)
	}
}

// crowdOf is node 1 of a sim on a /16 with peers more peers, each
// listed by one ANNOUNCE handled at once.
func crowdOf(t *testing.T, peers int) (*simNode, []string) {
	sm := newSimOn(t, netip.MustParsePrefix("10.0.0.0/16"))
	sm.quiet = true
	a := sm.start(1, func(c *Config) { c.MaxPeers = max(peers, 1) })
	var ids []string
	for i := range peers {
		addr := sm.host(2 + i)
		m := Message{Kind: Announce, ID: fmt.Sprintf("%08x", 0x10000000+i), Addr: addr,
			Name: fmt.Sprintf("p%d", i%(peers/2+1)), CPUs: 1, MemTotal: 1 << 30, MemFree: 1 << 29}
		a.handle(m.Append(nil), udp(addr))
		ids = append(ids, m.ID)
	}
	if got := len(a.Peers()); got != peers {
		t.Fatalf("%d peers listed, want %d", got, peers)
	}
	return a, ids
}

// TestTreeLookupCost: a walk into nodes/<id>, a stat and a version of a
// peer's file cost the same at 3 peers as at 600: the lookup finds the
// peer by its id and copies nothing else of the table. Counted in
// allocations, which a copy or a listing of the table would raise with
// its size.
func TestTreeLookupCost(t *testing.T) {
	cost := func(peers int) (stat, version float64) {
		a, ids := crowdOf(t, peers)
		name := "nodes/" + ids[peers/2] + "/status"
		tr := a.Tree()
		stat = testing.AllocsPerRun(20, func() {
			if isDir, err := tr.Stat(name); err != nil || isDir {
				t.Fatalf("Stat(%s) = %v, %v", name, isDir, err)
			}
		})
		version = testing.AllocsPerRun(20, func() {
			if _, err := tr.Version(name); err != nil {
				t.Fatal(err)
			}
		})
		return stat, version
	}
	s3, v3 := cost(3)
	s600, v600 := cost(600)
	if s600 != s3 || v600 != v3 {
		t.Errorf("allocations at 3 peers: stat %v, version %v; at 600: stat %v, version %v", s3, v3, s600, v600)
	}
}

// TestTreeLists: nodes lists every id, sorted, as directories; view and
// conflicts, made outside the lock from a copy, list every peer in order.
func TestTreeLists(t *testing.T) {
	a, ids := crowdOf(t, 300)
	l, err := a.Tree().ReadDir("nodes")
	if err != nil {
		t.Fatal(err)
	}
	want := make([]string, len(ids))
	for i, id := range ids {
		want[i] = id + "/"
	}
	if !slices.Equal(l, want) { // ids were made in order
		t.Errorf("nodes lists %d entries, want %d sorted ids with slashes: %q...", len(l), len(want), l[:min(3, len(l))])
	}
	view := strings.Split(strings.TrimSuffix(a.read("view"), "\n"), "\n")
	if len(view) != 2+len(ids) {
		t.Fatalf("view has %d lines, want %d", len(view), 2+len(ids))
	}
	for i, id := range ids {
		if !strings.HasPrefix(view[2+i], id+"  ") {
			t.Fatalf("view line %d is %q, want peer %s", 2+i, view[2+i], id)
		}
	}
	// Names p0..p148 each go by two ids: i and i+151.
	conf := strings.Split(strings.TrimSuffix(a.read("conflicts"), "\n"), "\n")
	if len(conf) != 149 {
		t.Fatalf("conflicts has %d lines, want 149: %q", len(conf), conf[:min(3, len(conf))])
	}
	if conf[0] != "p0 "+ids[0]+" "+ids[151] {
		t.Errorf("conflicts starts %q", conf[0])
	}
}

// TestTreeVersion: a small file's version changes when its content does
// and only then; view's at every call; a directory's is 0.
func TestTreeVersion(t *testing.T) {
	sm := newSim(t)
	a := sm.start(1, nil)
	b := sm.start(2, nil)
	sm.run(ms)
	tr := a.Tree()
	vers := func(name string) uint32 {
		t.Helper()
		v, err := tr.Version(name)
		if err != nil {
			t.Fatalf("Version(%s): %v", name, err)
		}
		return v
	}
	status := "nodes/" + b.ID() + "/status"
	v1 := vers(status)
	sm.run(2 * s)
	if v := vers(status); v != v1 {
		t.Errorf("%s: version %d, then %d with the same content %q", status, v1, v, a.read(status))
	}
	sm.kill(b)
	sm.run(16 * s)
	if got := a.read(status); got != "suspect\n" {
		t.Fatalf("%s = %q", status, got)
	}
	if v := vers(status); v == v1 {
		t.Errorf("%s: version %d both online and suspect", status, v)
	}
	if v, w := vers("view"), vers("view"); v == w {
		t.Errorf("view: version %d twice", v)
	}
	if v, w := vers("self/resources"), vers("self/resources"); v == w {
		t.Errorf("self/resources: version %d twice", v)
	}
	for _, d := range []string{".", "nodes", "self"} {
		if v := vers(d); v != 0 {
			t.Errorf("%s: version %d, want 0", d, v)
		}
	}
	if _, err := tr.Version("nodes/nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Version(nodes/nope): %v", err)
	}
}
