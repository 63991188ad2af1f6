package vmtest

import (
	"bytes"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// clusterKey is a key file as `openssl rand -hex 32 > cluster.key` makes
// it, and what may and may not be seen of it.
type clusterKey struct {
	path string
	raw  []byte // the 32 bytes
	hex  string // what the file holds, less the newline
	fp   string // first 8 hex digits of SHA-256 of raw (docs/protocol.md §9)
}

func newClusterKey(t *testing.T) clusterKey {
	t.Helper()
	k := clusterKey{path: filepath.Join(t.TempDir(), "cluster.key"), raw: make([]byte, 32)}
	crand.Read(k.raw)
	k.hex = hex.EncodeToString(k.raw)
	sum := sha256.Sum256(k.raw)
	k.fp = hex.EncodeToString(sum[:4])
	if err := os.WriteFile(k.path, []byte(k.hex+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return k
}

// leaks reports whether s shows the key, as hex in either case, or raw.
func (k clusterKey) leaks(s string) bool {
	return strings.Contains(strings.ToLower(s), k.hex) || strings.Contains(s, string(k.raw))
}

// TestKey: two VMs given a key by fw_cfg show its fingerprint, never the
// key, and find each other; a restarted VM gets the key again.
func TestKey(t *testing.T) {
	key := newClusterKey(t)
	lan := startLANOpts(t, kernel(t, "FORNAX_KERNEL_CLUSTER"), 2, Options{KeyFile: key.path})
	ids := make([]string, 2)
	for i, vm := range lan.VMs {
		ids[i] = strings.TrimSpace(command(t, vm, "cat /cluster/self/id"))
		want := fmt.Sprintf("cluster: node %s joined on udp/9710, key %s\n", ids[i], key.fp)
		if log := lan.Log(i + 1); !strings.Contains(log, want) {
			t.Errorf("%s: console lacks %q:\n%s", vm.Name, want, log)
		}
	}
	for i, vm := range lan.VMs {
		peer := ids[1-i]
		at, _ := poll(t, vm, "ls /cluster/nodes/", 10*time.Second, 100*time.Millisecond, contains(peer+"/"))
		t.Logf("%s lists %s at %v", vm.Name, peer, at.Format("15:04:05.000"))
	}
	for _, vm := range lan.VMs {
		for _, line := range []string{"cat /proc/cmdline", "cat /dev/kmesg", "cat /cluster/self/id"} {
			if out := command(t, vm, line); key.leaks(out) {
				t.Errorf("%s: %q shows the key", vm.Name, line)
			}
		}
	}

	// A restart keeps the key. (LEAVE first, so that fornax-01 answers
	// the newcomer at once: docs/protocol.md §4.1.)
	command(t, lan.VMs[1], "echo leave > /cluster/ctl")
	if err := lan.Restart(2); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("cluster: node %s joined on udp/9710, key %s\n", ids[1], key.fp)
	if log := lan.Log(2); !strings.Contains(log, want) {
		t.Errorf("restarted %s: console lacks %q:\n%s", Name(2), want, log)
	}
	poll(t, lan.VMs[1], "ls /cluster/nodes/", 10*time.Second, 100*time.Millisecond, contains(ids[0]+"/"))

	// Nothing the launcher and the VMs left behind shows the key: the
	// consoles, their logs, the run's settings (the key by its path).
	for _, vm := range lan.VMs {
		if key.leaks(vm.Log()) {
			t.Errorf("%s: the console showed the key", vm.Name)
		}
	}
	files, _ := filepath.Glob(filepath.Join(lan.Dir, "*"))
	for _, f := range files {
		if b, err := os.ReadFile(f); err == nil && key.leaks(string(b)) {
			t.Errorf("%s shows the key", f)
		}
	}
	if b, err := os.ReadFile(filepath.Join(lan.Dir, "config")); err != nil || !bytes.Contains(b, []byte(key.path)) {
		t.Errorf("the run's config does not keep the key's path for restarts: %q, %v", b, err)
	}
}

// TestKeyBad: a VM given a key file that is not a key says so in one line
// that does not quote the file, and does not join the cluster.
func TestKeyBad(t *testing.T) {
	var short [10]byte
	crand.Read(short[:])
	bad := filepath.Join(t.TempDir(), "cluster.key")
	const hint = "(make one with: openssl rand -hex 32)"
	cases := []struct {
		text string
		want string
	}{
		{hex.EncodeToString(short[:]) + "\n", "cluster: opt/fornax/key: bad key: 20 characters, want 64 hex digits " + hint},
		{strings.Repeat("z9", 32) + "\n", "cluster: opt/fornax/key: bad key: not hex digits " + hint},
		{strings.Repeat("0123456789abcdef", 312) + "01234567", "cluster: fw_cfg file opt/fornax/key is 5000 bytes, limit 4096: a key file holds 64 hex digits " + hint},
	}
	if err := os.WriteFile(bad, []byte(cases[0].text), 0o600); err != nil {
		t.Fatal(err)
	}
	lan := startLANOpts(t, kernel(t, "FORNAX_KERNEL_CLUSTER"), 1, Options{KeyFile: bad})
	for i, c := range cases {
		if i > 0 {
			// The launcher keeps the key's path: a restart reads the
			// file anew.
			if err := os.WriteFile(bad, []byte(c.text), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := lan.Restart(1); err != nil {
				t.Fatal(err)
			}
		}
		log := lan.Log(1)
		if !strings.Contains(log, c.want+"\n") {
			t.Errorf("case %d: console lacks %q:\n%s", i, c.want, log)
		}
		if secret := strings.TrimSpace(c.text)[:20]; strings.Contains(log, secret) {
			t.Errorf("case %d: the console quotes the key file", i)
		}
		if strings.Contains(log, "joined") {
			t.Errorf("case %d: joined with a bad key:\n%s", i, log)
		}
		if out := command(t, lan.VMs[0], "ls /cluster/"); !strings.Contains(out, "does not exist") {
			t.Errorf("case %d: ls /cluster/: %q, want no /cluster", i, out)
		}
	}
}
