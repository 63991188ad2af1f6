package cluster

import (
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"slices"
	"strings"
	"sync/atomic"

	"fornax/fs/file"
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
// It is a file.Server, a file.Versioner, and a file.Streamer for events.
// Names are relative to /cluster in io/fs.ValidPath form, "." being the
// root. Every read is a snapshot of one state of the node. Errors arrive
// wrapped in *fs.PathError: fs.ErrNotExist, fs.ErrPermission,
// file.ErrIsDir for a directory read as a file and file.ErrNotDir for
// the reverse.
//
// The node's lock is held for a walk of the name (one lookup per
// element, treedir.go) and a copy: of a small file's content, of the
// peers a view or conflicts file is made from, or of the ids nodes
// lists. Sorting and formatting what was copied happen after it is
// released, so a reader of the tree holds up the node's datagrams for
// microseconds whatever the table's size.
type Tree struct {
	n *Node
	// volatile numbers the versions of files that change with time.
	volatile atomic.Uint32
}

var (
	_ file.Server    = (*Tree)(nil)
	_ file.Streamer  = (*Tree)(nil)
	_ file.Versioner = (*Tree)(nil)
)

// look finds name and, while the node's lock is still held, calls use
// with what it found, unless use is nil. With res, before any use of a
// file whose read wants the node's resources, it fetches them outside
// the lock and looks again.
func (t *Tree) look(op, name string, res bool, use func(v *view, e dirent)) (dirent, error) {
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
		if ok && res && e.res && !v.hasRes {
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
	e, err := t.look("stat", name, false, nil)
	return e.dir != nil, err
}

// ReadDir lists a directory in sorted order; subdirectories end in "/".
func (t *Tree) ReadDir(name string) ([]string, error) {
	var list []string
	e, err := t.look("readdir", name, false, func(v *view, e dirent) {
		if e.dir != nil {
			list = e.dir.list(v)
		}
	})
	if err != nil {
		return nil, err
	}
	if e.dir == nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: file.ErrNotDir}
	}
	if e.dir.subdirs {
		for i := range list {
			list[i] += "/"
		}
	}
	slices.Sort(list)
	return list, nil
}

// ReadFile returns a snapshot of a file's content.
func (t *Tree) ReadFile(name string) ([]byte, error) {
	var data []byte
	var later func() []byte
	e, err := t.look("read", name, true, func(v *view, e dirent) {
		switch {
		case e.read != nil:
			data = e.read(v)
		case e.later != nil:
			later = e.later(v)
		}
	})
	if err != nil {
		return nil, err
	}
	if e.dir != nil {
		return nil, &fs.PathError{Op: "read", Path: name, Err: file.ErrIsDir}
	}
	if later != nil {
		data = later()
	}
	return data, nil
}

// Version tells a file's version (file.Versioner) without making more
// than a small file's content: for a small file, a hash of its content;
// for a file that changes with time or is made from every peer (view,
// conflicts, self/resources), a new number at every call, so that a
// caching client always reads it afresh; for a directory, 0
// (docs/protocol.md §8).
func (t *Tree) Version(name string) (uint32, error) {
	var vers uint32
	e, err := t.look("version", name, false, func(v *view, e dirent) {
		if e.read != nil && !e.res {
			vers = contentVersion(e.read(v))
		}
	})
	switch {
	case err != nil:
		return 0, err
	case e.dir != nil:
		return 0, nil
	case e.read == nil || e.res:
		return t.volatile.Add(1), nil
	}
	return vers, nil
}

// contentVersion is the version of a file with content b: FNV-1a.
func contentVersion(b []byte) uint32 {
	h := fnv.New32a()
	h.Write(b)
	return h.Sum32()
}

// MaxCtlWrite bounds a ctl write; longer ones are refused unread.
const MaxCtlWrite = 1024

// WriteFile writes ctl (docs/protocol.md §8.1); every other name is
// read-only.
func (t *Tree) WriteFile(name string, data []byte) error {
	e, err := t.look("write", name, false, nil)
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
	b = fmt.Appendf(b, "asks %d\nasks_held %d\nasks_refused %d\nask_probes %d\nrelays %d\nrelays_refused %d\n",
		st.asks, st.asksHeld, st.asksRefused, st.askProbes, st.relays, st.relaysRefused)
	b = fmt.Appendf(b, "syncs %d\nseed_tries %d\nsync_answers %d\nsyncs_held %d\n",
		st.syncs, st.seedTries, st.syncAnswers, st.syncsHeld)
	b = fmt.Appendf(b, "state_listed %d\nstate_candidates %d\nstate_refused %d\nintros %d\npushes %d\n",
		st.stateListed, st.stateCands, st.stateRefused, st.intros, st.pushes)
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
