package vmtest

// Helpers for many VMs at once (BenchmarkVMs): what a node's /cluster/view
// says of its peers, and what QEMU costs the host (/proc).

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// PeerStatus maps each peer named in a /cluster/view (docs/protocol.md
// §8) to its STATUS column: online, suspect or dead. The first row after
// the header is the node itself and is left out.
func PeerStatus(view string) (map[string]string, error) {
	lines := strings.Split(strings.TrimRight(view, "\n"), "\n")
	if len(lines) < 2 {
		return nil, fmt.Errorf("view: %d lines, want a header and the node's own row", len(lines))
	}
	head := strings.Fields(lines[0])
	name, status := -1, -1
	for i, h := range head {
		switch h {
		case "NAME":
			name = i
		case "STATUS":
			status = i
		}
	}
	if name < 0 || status < 0 {
		return nil, fmt.Errorf("view: header %q lacks NAME or STATUS", lines[0])
	}
	peers := make(map[string]string)
	for i, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) != len(head) {
			return nil, fmt.Errorf("view: row %q has %d columns, the header %d", l, len(f), len(head))
		}
		if i > 0 {
			peers[f[name]] = f[status]
		}
	}
	return peers, nil
}

// ProcCPU returns the CPU time process pid has used, user and system
// (fields utime and stime of /proc/PID/stat, proc(5)).
func ProcCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseProcStatCPU(string(b))
}

// clockTick is USER_HZ, the unit of /proc/PID/stat's times: 100 on
// every Linux architecture Fornax's tests run on.
const clockTick = 10 * time.Millisecond

func parseProcStatCPU(stat string) (time.Duration, error) {
	// comm, field 2, is in parentheses and may hold spaces: count the
	// fields after its closing one.
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("proc stat: no ')' after the command name")
	}
	f := strings.Fields(stat[i+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("proc stat: %d fields after the command name, want at least 13", len(f))
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	s, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("proc stat: utime/stime: %w", err)
	}
	return time.Duration(u+s) * clockTick, nil
}

// Mem is a process's memory, in bytes.
type Mem struct {
	RSS  uint64 // resident (VmRSS), shared pages counted in full
	Anon uint64 // resident and private to it: guest RAM, QEMU's heap, TCG code (RssAnon)
	PSS  uint64 // resident, shared pages divided among their sharers (Pss)
}

// ProcMem returns the memory of process pid, from /proc/PID/status and
// /proc/PID/smaps_rollup (proc(5)).
func ProcMem(pid int) (Mem, error) {
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Mem{}, err
	}
	roll, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return Mem{}, err
	}
	var m Mem
	for _, f := range []struct {
		text, key string
		v         *uint64
	}{{string(st), "VmRSS:", &m.RSS}, {string(st), "RssAnon:", &m.Anon}, {string(roll), "Pss:", &m.PSS}} {
		if *f.v, err = procKB(f.text, f.key); err != nil {
			return Mem{}, err
		}
	}
	return m, nil
}

// procKB returns the bytes of the line "key N kB" of a /proc file.
func procKB(text, key string) (uint64, error) {
	for l := range strings.SplitSeq(text, "\n") {
		rest, ok := strings.CutPrefix(l, key)
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("proc: %s line %q, want a number of kB", key, l)
		}
		kb, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("proc: %s %w", key, err)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("proc: no %s line (a kernel thread, or the process is gone)", key)
}
