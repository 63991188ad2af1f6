package cluster

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"strings"

	"fornax/fs/file"
	"fornax/internal/units"
)

// Tree is a node's /cluster file tree (docs/protocol.md §8):
//
//	conflicts
//	ctl
//	events
//	nodes/<id>/{addr,containers/,name,resources,status}
//	self/{addr,containers/,id,name,resources}
//	stats
//	view
//
// It is a file.Server, and a file.Streamer for events. Names are
// relative to /cluster in io/fs.ValidPath form, "." being the root. Every
// read is a snapshot, made under the node's lock. Errors arrive wrapped
// in *fs.PathError: fs.ErrNotExist, fs.ErrPermission, file.ErrIsDir for
// a directory read as a file and file.ErrNotDir for the reverse.
//
// Each directory is one table of entries (see dirent), as in Plan 9's
// Dirtab: listing a directory and looking a name up in it read the same
// table, so the two cannot disagree.
type Tree struct{ n *Node }

var (
	_ file.Server   = (*Tree)(nil)
	_ file.Streamer = (*Tree)(nil)
)

// dirent is one entry of a directory's table. Exactly one of dir and read
// is set.
type dirent struct {
	name string
	// dir makes the entry a directory: it returns the directory's
	// entries, sorted by name. It runs under the node's lock.
	dir func(v *view) []dirent
	// read makes the entry a file: it returns a snapshot of the content.
	// It runs under the node's lock.
	read func(v *view) []byte
	// write, where set, takes a write to the file. It runs without the
	// node's lock. A file without it is read-only.
	write func(n *Node, data []byte) error
	// res says read wants v.res: the node's resources, which come from
	// the caller's code and so are fetched before the lock is taken.
	res bool
}

// view is what the tables are made from: the node, seen under its lock.
type view struct {
	n      *Node
	res    Resources
	hasRes bool
}

// root is the entry of the tree's root, ".".
var root = dirent{name: ".", dir: func(*view) []dirent { return rootTab }}

var rootTab = []dirent{
	{name: "conflicts", read: func(v *view) []byte { return v.n.conflictsTextLocked() }},
	{name: "ctl", read: func(v *view) []byte { return v.n.ctlTextLocked() }, write: writeCtl},
	// A stream (Tree.OpenStream); read as a file, it is empty.
	{name: "events", read: func(*view) []byte { return []byte{} }},
	{name: "nodes", dir: nodesTab},
	{name: "self", dir: func(*view) []dirent { return selfTab }},
	{name: "stats", read: func(v *view) []byte { return v.n.statsTextLocked() }},
	{name: "view", res: true, read: viewText},
}

var selfTab = []dirent{
	{name: "addr", read: func(v *view) []byte { return fmt.Appendf(nil, "%v\n", v.n.cfg.Addr) }},
	{name: "containers", dir: containersTab},
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

// nodesTab is nodes: one directory per peer, named by its id.
func nodesTab(v *view) []dirent {
	ps := v.n.tab.list()
	tab := make([]dirent, len(ps))
	for i, p := range ps {
		tab[i] = dirent{name: p.ID, dir: func(*view) []dirent { return peerTab(&p) }}
	}
	return tab
}

// peerTab is nodes/<id> of peer p.
func peerTab(p *Peer) []dirent {
	return []dirent{
		{name: "addr", read: func(*view) []byte { return fmt.Appendf(nil, "%v\n", p.Addr) }},
		// The protocol carries only the count.
		{name: "containers", dir: func(*view) []dirent { return nil }},
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

// walk finds name, a valid path, in the tables. The caller holds the
// node's lock.
func (v *view) walk(name string) (dirent, bool) {
	e := root
	if name == "." {
		return e, true
	}
	for elem := range strings.SplitSeq(name, "/") {
		if e.dir == nil {
			return dirent{}, false
		}
		tab := e.dir(v)
		i, ok := slices.BinarySearchFunc(tab, elem, func(d dirent, name string) int {
			return strings.Compare(d.name, name)
		})
		if !ok {
			return dirent{}, false
		}
		e = tab[i]
	}
	return e, true
}

// look finds name and, while the node's lock is still held, calls use
// with what it found, unless use is nil. Before any use of a file whose
// read wants the node's resources, it fetches them outside the lock and
// looks again.
func (t *Tree) look(op, name string, use func(v *view, e dirent)) (dirent, error) {
	if !fs.ValidPath(name) {
		return dirent{}, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	n := t.n
	v := &view{n: n}
	for {
		now := n.clock.Now()
		n.mu.Lock()
		n.tickLocked(now, false)
		e, ok := v.walk(name)
		if ok && use != nil && e.res && !v.hasRes {
			n.mu.Unlock()
			v.res, v.hasRes = n.resources(), true // not under mu: it is the caller's code
			continue
		}
		if ok && use != nil {
			use(v, e)
		}
		n.mu.Unlock()
		if !ok {
			return dirent{}, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
		}
		return e, nil
	}
}

// Stat reports whether name exists and whether it is a directory.
func (t *Tree) Stat(name string) (isDir bool, err error) {
	e, err := t.look("stat", name, nil)
	return e.dir != nil, err
}

// ReadDir lists a directory in sorted order; subdirectories end in "/".
func (t *Tree) ReadDir(name string) ([]string, error) {
	var list []string
	e, err := t.look("readdir", name, func(v *view, e dirent) {
		if e.dir == nil {
			return
		}
		tab := e.dir(v)
		list = make([]string, len(tab))
		for i, d := range tab {
			list[i] = d.name
			if d.dir != nil {
				list[i] += "/"
			}
		}
	})
	if err != nil {
		return nil, err
	}
	if e.dir == nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: file.ErrNotDir}
	}
	return list, nil
}

// ReadFile returns a snapshot of a file's content.
func (t *Tree) ReadFile(name string) ([]byte, error) {
	var data []byte
	e, err := t.look("read", name, func(v *view, e dirent) {
		if e.read != nil {
			data = e.read(v)
		}
	})
	if err != nil {
		return nil, err
	}
	if e.dir != nil {
		return nil, &fs.PathError{Op: "read", Path: name, Err: file.ErrIsDir}
	}
	return data, nil
}

// MaxCtlWrite bounds a ctl write; longer ones are refused unread.
const MaxCtlWrite = 1024

// WriteFile writes ctl (docs/protocol.md §8.1); every other name is
// read-only.
func (t *Tree) WriteFile(name string, data []byte) error {
	e, err := t.look("write", name, nil)
	if err != nil {
		return err
	}
	if e.write == nil {
		return &fs.PathError{Op: "write", Path: name, Err: fs.ErrPermission}
	}
	return e.write(t.n, data)
}

// writeCtl takes a write to ctl.
func writeCtl(n *Node, data []byte) error {
	if len(data) > MaxCtlWrite {
		return fmt.Errorf("ctl message too long: %d bytes, limit %d", len(data), MaxCtlWrite)
	}
	return n.ctl(data)
}

// ctl carries out one control message (docs/protocol.md §8.1), one
// trailing newline trimmed.
func (n *Node) ctl(data []byte) error {
	s := strings.TrimSuffix(string(data), "\n")
	verb, arg, hasArg := strings.Cut(s, " ")
	switch {
	case s == "join":
		n.Join()
	case s == "leave":
		n.Leave()
	case verb == "name" && hasArg:
		return n.Rename(arg)
	case verb == "key" && hasArg:
		return n.keyCtl(arg)
	case verb == "auth" && hasArg:
		a, err := ParseAuthMode(arg)
		if err != nil {
			return err
		}
		return n.SetAuth(a)
	default:
		return fmt.Errorf("bad ctl message: %q", clip(s))
	}
	return nil
}

// keyCtl carries out key add|use|remove. Nothing it says quotes a key.
func (n *Node) keyCtl(arg string) error {
	sub, val, _ := strings.Cut(arg, " ")
	switch sub {
	case "add":
		k, err := ParseKey([]byte(val))
		if err != nil {
			return err
		}
		_, err = n.AddKey(k)
		clear(k)
		return err
	case "use":
		return n.UseKey(val)
	case "remove":
		return n.RemoveKey(val)
	}
	return errors.New("bad key message: want key add <64 hex digits>, key use <fingerprint> or key remove <fingerprint>")
}

// statsTextLocked is the stats file (docs/protocol.md §8.2).
func (n *Node) statsTextLocked() []byte {
	st := &n.st
	var dropped uint64
	for _, v := range st.dropped {
		dropped += v
	}
	b := fmt.Appendf(nil, "received %d\naccepted %d\necho %d\ndropped %d\n",
		st.received, st.accepted, st.echo, dropped)
	for r, v := range st.dropped {
		b = fmt.Appendf(b, "dropped_%v %d\n", Reason(r), v)
	}
	b = fmt.Appendf(b, "sent %d\nsend_errors %d\npeers %d\nanswers %d\nrefutes %d\nlog_held %d\n",
		st.sent, st.sendErrors, len(n.tab.peers), st.answers, st.refutes, n.logLim.total)
	b = fmt.Appendf(b, "probes %d\nprobes_held %d\nprobe_answers %d\nprobe_answers_held %d\n",
		st.probes, st.probesHeld, st.probeAnswers, st.probeAnswersHeld)
	for _, dir := range []struct {
		name string
		by   *[len(verbs)]uint64
	}{{"accepted", &st.acceptedKind}, {"sent", &st.sentKind}} {
		for k := Announce; int(k) < len(verbs); k++ {
			b = fmt.Appendf(b, "%s_%s %d\n", dir.name, strings.ToLower(k.String()), dir.by[k])
		}
	}
	return fmt.Appendf(b, "events_lost %d\n", n.events.lostTotal())
}

// ctlTextLocked is what reading ctl gives: joined or left, the auth mode, and
// the keys by fingerprint, primary first (docs/protocol.md §8.1).
func (n *Node) ctlTextLocked() []byte {
	b := []byte("left\n")
	if n.joined {
		b = []byte("joined\n")
	}
	b = fmt.Appendf(b, "auth %v\n", n.auth)
	for i, fp := range n.ring.fingerprints() {
		if i == 0 {
			b = fmt.Appendf(b, "key %s primary\n", fp)
		} else {
			b = fmt.Appendf(b, "key %s\n", fp)
		}
	}
	return b
}

// conflictsTextLocked lists each name that more than one id goes by, ours
// included: "name id id ...", sorted by name (docs/protocol.md §8).
func (n *Node) conflictsTextLocked() []byte {
	ids := map[string][]string{n.name: {n.cfg.ID}}
	for _, p := range n.tab.list() {
		ids[p.Name] = append(ids[p.Name], p.ID)
	}
	var b []byte
	for _, name := range slices.Sorted(maps.Keys(ids)) {
		if l := ids[name]; len(l) > 1 {
			slices.Sort(l)
			b = fmt.Appendf(b, "%s %s\n", name, strings.Join(l, " "))
		}
	}
	return b
}
