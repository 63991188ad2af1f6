package cluster

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"strings"

	"fornax/internal/units"
)

// Errors of the tree for a directory read as a file and the reverse. They
// arrive wrapped in *fs.PathError, like fs.ErrNotExist and fs.ErrPermission.
var (
	ErrIsDir  = errors.New("is a directory")
	ErrNotDir = errors.New("not a directory")
)

// Tree is a node's /cluster file tree (docs/protocol.md §8):
//
//	ctl
//	nodes/<id>/{addr,containers/,name,resources,status}
//	self/{addr,containers/,id,name,resources}
//	stats
//
// Its methods match the kernel's name-space Server interface. Names are
// relative to /cluster in io/fs.ValidPath form, "." being the root. Every
// read is a snapshot, made under the node's lock.
type Tree struct{ n *Node }

// entry is a resolved name: a directory's listing or a file's content.
type entry struct {
	dir  bool
	list []string
	data []byte
}

func dir(names ...string) entry { return entry{dir: true, list: names} }
func file(format string, args ...any) entry {
	return entry{data: fmt.Appendf(nil, format, args...)}
}

// Stat reports whether name exists and whether it is a directory.
func (t *Tree) Stat(name string) (isDir bool, err error) {
	e, err := t.resolve("stat", name)
	return e.dir, err
}

// ReadDir lists a directory in sorted order; subdirectories end in "/".
func (t *Tree) ReadDir(name string) ([]string, error) {
	e, err := t.resolve("readdir", name)
	if err != nil {
		return nil, err
	}
	if !e.dir {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: ErrNotDir}
	}
	return e.list, nil
}

// ReadFile returns a snapshot of a file's content.
func (t *Tree) ReadFile(name string) ([]byte, error) {
	e, err := t.resolve("read", name)
	if err != nil {
		return nil, err
	}
	if e.dir {
		return nil, &fs.PathError{Op: "read", Path: name, Err: ErrIsDir}
	}
	return e.data, nil
}

// MaxCtlWrite bounds a ctl write; longer ones are refused unread.
const MaxCtlWrite = 1024

// WriteFile writes ctl (docs/protocol.md §8.1); every other name is
// read-only.
func (t *Tree) WriteFile(name string, data []byte) error {
	if name == "ctl" {
		if len(data) > MaxCtlWrite {
			return fmt.Errorf("ctl message too long: %d bytes, limit %d", len(data), MaxCtlWrite)
		}
		return t.n.ctl(data)
	}
	if _, err := t.resolve("write", name); err != nil {
		return err
	}
	return &fs.PathError{Op: "write", Path: name, Err: fs.ErrPermission}
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

func (t *Tree) resolve(op, name string) (entry, error) {
	if !fs.ValidPath(name) {
		return entry{}, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	n := t.n
	var res Resources
	if name == "self/resources" {
		res = n.resources() // not under mu: it is the caller's code
	}
	now := n.clock.Now()
	n.mu.Lock()
	defer n.unlock()
	n.tickLocked(now, false)
	el := strings.Split(name, "/")
	var e entry
	ok := true
	switch el[0] {
	case ".":
		e = dir("conflicts", "ctl", "nodes/", "self/", "stats")
	case "ctl":
		ok = len(el) == 1
		e = entry{data: n.ctlText()}
	case "conflicts":
		ok = len(el) == 1
		e = entry{data: n.conflictsText()}
	case "stats":
		ok = len(el) == 1
		e = entry{data: n.statsText()}
	case "self":
		e, ok = n.selfEntry(el[1:], res)
	case "nodes":
		e, ok = n.nodesEntry(el[1:])
	default:
		ok = false
	}
	if !ok {
		return entry{}, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
	}
	return e, nil
}

func (n *Node) selfEntry(el []string, res Resources) (entry, bool) {
	if len(el) == 0 {
		return dir("addr", "containers/", "id", "name", "resources"), true
	}
	if len(el) > 1 {
		if el[0] == "containers" && len(el) == 2 && n.reg.has(el[1]) {
			return entry{data: []byte{}}, true
		}
		return entry{}, false
	}
	switch el[0] {
	case "addr":
		return file("%v\n", n.cfg.Addr), true
	case "containers":
		l := n.reg.List()
		return dir(l...), true
	case "id":
		return file("%s\n", n.cfg.ID), true
	case "name":
		return file("%s\n", n.name), true
	case "resources":
		return file("cpus %d\nmem %s\nmem_free %s\nload %v\ncontainers %d\n",
			res.CPUs, units.Bytes(res.MemTotal), units.Bytes(res.MemFree),
			LoadOf(res.Load), n.reg.Len()), true
	}
	return entry{}, false
}

func (n *Node) nodesEntry(el []string) (entry, bool) {
	if len(el) == 0 {
		ps := n.tab.list()
		l := make([]string, len(ps))
		for i, p := range ps {
			l[i] = p.ID + "/"
		}
		return dir(l...), true
	}
	p, ok := n.tab.get(el[0])
	if !ok || len(el) > 2 {
		return entry{}, false
	}
	if len(el) == 1 {
		return dir("addr", "containers/", "name", "resources", "status"), true
	}
	switch el[1] {
	case "addr":
		return file("%v\n", p.Addr), true
	case "containers":
		return dir(), true // the protocol carries only the count
	case "name":
		return file("%s\n", p.Name), true
	case "resources":
		b := fmt.Appendf(nil, "cpus %d\nmem %s\nmem_free %s\n",
			p.CPUs, units.Bytes(p.MemTotal), units.Bytes(p.MemFree))
		if p.HasLoad {
			b = fmt.Appendf(b, "load %v\n", p.Load)
		}
		b = fmt.Appendf(b, "containers %d\n", p.Containers)
		return entry{data: b}, true
	case "status":
		return file("%v\n", p.Status), true
	}
	return entry{}, false
}

// statsText is the stats file (docs/protocol.md §8.2).
func (n *Node) statsText() []byte {
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
	return fmt.Appendf(b, "sent %d\nsend_errors %d\npeers %d\nanswers %d\nrefutes %d\nlog_held %d\n",
		st.sent, st.sendErrors, len(n.tab.peers), st.answers, st.refutes, n.logLim.total)
}

// ctlText is what reading ctl gives: joined or left, the auth mode, and
// the keys by fingerprint, primary first (docs/protocol.md §8.1).
func (n *Node) ctlText() []byte {
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

// conflictsText lists each name that more than one id goes by, ours
// included: "name id id ...", sorted by name (docs/protocol.md §8).
func (n *Node) conflictsText() []byte {
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
