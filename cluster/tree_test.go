package cluster

import (
	"errors"
	"io/fs"
	"path"
	"slices"
	"strings"
	"testing"
)

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
			if (e.dir == nil) == (e.read == nil) {
				t.Errorf("%s/%s: want exactly one of dir and read", name, e.name)
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
