package cluster

import (
	"fmt"
	"slices"
	"strings"

	"fornax/internal/units"
)

// The tree's directories (docs/protocol.md §8). Everything here runs
// under the node's lock, so each lookup costs the same whatever the
// table's size: a walk into nodes/<id> is one map lookup, never a copy
// or a sort of the table. A listing of nodes copies the ids and no more;
// Tree.ReadDir sorts them once the lock is released.

// dirent is one entry of a directory. Exactly one of dir, read and later
// is set.
type dirent struct {
	name string
	// dir makes the entry a directory.
	dir *dir
	// read makes the entry a small file: it returns a snapshot of the
	// content, made under the node's lock.
	read func(v *view) []byte
	// later makes the entry a file made from every peer (view,
	// conflicts): under the node's lock it copies what the content is
	// made of, and the function it returns makes the content from that
	// copy once the lock is released.
	later func(v *view) func() []byte
	// write, where set, takes a write to the file. It runs without the
	// node's lock. A file without it is read-only.
	write func(n *Node, data []byte) error
	// res says read wants v.res: the node's resources, which come from
	// the caller's code and so are fetched before the lock is taken.
	res bool
}

// dir is a directory: lookup finds one entry, list names them all,
// unsorted, each subdirectory's name ending in "/" unless subdirs says
// that every entry is one (ReadDir then adds the slashes itself, outside
// the lock).
type dir struct {
	lookup  func(v *view, name string) (dirent, bool)
	list    func(v *view) []string
	subdirs bool
}

// view is what the tables are made from: the node, seen under its lock.
type view struct {
	n      *Node
	res    Resources
	hasRes bool
}

// dirTab is a directory of a few entries, sorted by name, as in Plan 9's
// Dirtab: listing and lookup read the same table, so they cannot
// disagree.
func dirTab(tab func(v *view) []dirent) *dir {
	return &dir{
		lookup: func(v *view, name string) (dirent, bool) {
			t := tab(v)
			i, ok := slices.BinarySearchFunc(t, name, func(d dirent, name string) int {
				return strings.Compare(d.name, name)
			})
			if !ok {
				return dirent{}, false
			}
			return t[i], true
		},
		list: func(v *view) []string {
			t := tab(v)
			names := make([]string, len(t))
			for i, d := range t {
				names[i] = d.name
				if d.dir != nil {
					names[i] += "/"
				}
			}
			return names
		},
	}
}

// root is the entry of the tree's root, ".".
var root = dirent{name: ".", dir: dirTab(func(*view) []dirent { return rootTab })}

var rootTab = []dirent{
	{name: "conflicts", later: conflictsLater},
	{name: "ctl", read: func(v *view) []byte { return v.n.ctlTextLocked() }, write: writeCtl},
	// A stream (Tree.OpenStream); read as a file, it is empty.
	{name: "events", read: func(*view) []byte { return []byte{} }},
	{name: "nodes", dir: nodesDir},
	{name: "self", dir: dirTab(func(*view) []dirent { return selfTab })},
	{name: "stats", read: func(v *view) []byte { return v.n.statsTextLocked() }},
	{name: "view", res: true, later: viewLater},
}

var selfTab = []dirent{
	{name: "addr", read: func(v *view) []byte { return fmt.Appendf(nil, "%v\n", v.n.cfg.Addr) }},
	{name: "containers", dir: dirTab(containersTab)},
	{name: "id", read: func(v *view) []byte { return fmt.Appendf(nil, "%s\n", v.n.cfg.ID) }},
	{name: "name", read: func(v *view) []byte { return fmt.Appendf(nil, "%s\n", v.n.name) }},
	{name: "resources", res: true, read: func(v *view) []byte {
		res := v.res
		return fmt.Appendf(nil, "cpus %d\nmem %s\nmem_free %s\nload %v\ncontainers %d\n",
			res.CPUs, units.Bytes(res.MemTotal), units.Bytes(res.MemFree),
			LoadOf(res.Load), v.n.reg.Len())
	}},
}

// containersTab is self/containers: one empty file per registered
// container.
func containersTab(v *view) []dirent {
	l := v.n.reg.List()
	tab := make([]dirent, len(l))
	for i, name := range l {
		tab[i] = dirent{name: name, read: func(*view) []byte { return []byte{} }}
	}
	return tab
}

// nodesDir is nodes: one directory per peer, named by its id.
var nodesDir = &dir{
	lookup: func(v *view, id string) (dirent, bool) {
		p, ok := v.n.tab.get(id)
		if !ok {
			return dirent{}, false
		}
		return dirent{name: id, dir: dirTab(func(*view) []dirent { return peerTab(&p) })}, true
	},
	list: func(v *view) []string {
		ids := make([]string, 0, len(v.n.tab.peers))
		for id := range v.n.tab.peers {
			ids = append(ids, id)
		}
		return ids
	},
	subdirs: true,
}

// emptyDir is nodes/<id>/containers: the protocol carries only the
// count.
var emptyDir = dirTab(func(*view) []dirent { return nil })

// peerTab is nodes/<id> of peer p.
func peerTab(p *Peer) []dirent {
	return []dirent{
		{name: "addr", read: func(*view) []byte { return fmt.Appendf(nil, "%v\n", p.Addr) }},
		{name: "containers", dir: emptyDir},
		{name: "name", read: func(*view) []byte { return fmt.Appendf(nil, "%s\n", p.Name) }},
		{name: "resources", read: func(*view) []byte {
			b := fmt.Appendf(nil, "cpus %d\nmem %s\nmem_free %s\n",
				p.CPUs, units.Bytes(p.MemTotal), units.Bytes(p.MemFree))
			if p.HasLoad {
				b = fmt.Appendf(b, "load %v\n", p.Load)
			}
			return fmt.Appendf(b, "containers %d\n", p.Containers)
		}},
		{name: "status", read: func(*view) []byte { return fmt.Appendf(nil, "%v\n", p.Status) }},
	}
}

// walk finds name, a valid path, one lookup per element.
func (v *view) walk(name string) (dirent, bool) {
	e := root
	if name == "." {
		return e, true
	}
	for elem := range strings.SplitSeq(name, "/") {
		if e.dir == nil {
			return dirent{}, false
		}
		var ok bool
		if e, ok = e.dir.lookup(v, elem); !ok {
			return dirent{}, false
		}
	}
	return e, true
}

// peersLocked copies every peer, in no order.
func (n *Node) peersLocked() []Peer {
	ps := make([]Peer, 0, len(n.tab.peers))
	for _, p := range n.tab.peers {
		ps = append(ps, p.copy())
	}
	return ps
}

// conflictsLater is the conflicts file: each name that more than one id
// goes by, ours included: "name id id ...", sorted by name
// (docs/protocol.md §8). Under the lock it copies the names and ids.
func conflictsLater(v *view) func() []byte {
	type named struct{ name, id string }
	l := make([]named, 0, len(v.n.tab.peers)+1)
	l = append(l, named{v.n.name, v.n.cfg.ID})
	for id, p := range v.n.tab.peers {
		l = append(l, named{p.Name, id})
	}
	return func() []byte {
		slices.SortFunc(l, func(a, b named) int {
			return cmpPair(a.name, a.id, b.name, b.id)
		})
		var b []byte
		for i := 0; i < len(l); {
			j := i + 1
			for j < len(l) && l[j].name == l[i].name {
				j++
			}
			if j-i > 1 {
				b = append(b, l[i].name...)
				for _, e := range l[i:j] {
					b = append(b, ' ')
					b = append(b, e.id...)
				}
				b = append(b, '\n')
			}
			i = j
		}
		return b
	}
}

func cmpPair(a1, a2, b1, b2 string) int {
	if c := strings.Compare(a1, b1); c != 0 {
		return c
	}
	return strings.Compare(a2, b2)
}
