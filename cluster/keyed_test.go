package cluster

import (
	"encoding/hex"
	"strings"
	"testing"
	"time"
)

// Keyring operations and auth modes on running clusters
// (docs/protocol.md §9.3).

var testKey2 = []byte("fedcba9876543210fedcba9876543210")

// neverSuspect runs the simulation for d in steps of 100 ms and fails if
// any node sees any other as anything but online.
func neverSuspect(t *testing.T, sm *sim, ns []*simNode, d time.Duration) {
	t.Helper()
	for end := sm.clock.Now().Add(d); sm.clock.Now().Before(end); {
		sm.run(100 * ms)
		for _, a := range ns {
			for _, b := range ns {
				if a != b {
					if st := a.status(b); st != "online" {
						t.Fatalf("at %v %s sees %s %s", sm.clock.Now().Sub(t0), a.ID(), b.ID(), st)
					}
				}
			}
		}
	}
}

func ctl(t *testing.T, n *simNode, msg string) {
	t.Helper()
	if err := n.Tree().WriteFile("ctl", []byte(msg+"\n")); err != nil {
		t.Fatalf("%s: %q: %v", n.ID(), msg, err)
	}
}

func TestKeyRotation(t *testing.T) {
	sm := newSim(t)
	ns := []*simNode{sm.start(1, keyed), sm.start(2, keyed), sm.start(3, keyed)}
	sm.run(3 * s)
	fp1, fp2 := Fingerprint(testKey), Fingerprint(testKey2)
	for _, step := range []string{"key add " + hex.EncodeToString(testKey2), "key use " + fp2, "key remove " + fp1} {
		for _, n := range ns {
			ctl(t, n, step)
			neverSuspect(t, sm, ns, 7*s) // longer than an interval between nodes
		}
	}
	neverSuspect(t, sm, ns, 40*s)
	for _, n := range ns {
		if got := n.read("ctl"); got != "joined\nauth keyed\nkey "+fp2+" primary\n" {
			t.Errorf("%s ctl: %q", n.ID(), got)
		}
		if d := n.stat("dropped"); d != 0 {
			t.Errorf("%s dropped %d:\n%s", n.ID(), d, n.read("stats"))
		}
	}
	// Removing the last key while keyed is refused; so is removing the
	// primary while others remain.
	n := ns[0]
	if err := n.Tree().WriteFile("ctl", []byte("key remove "+fp2)); err == nil || !strings.Contains(err.Error(), "set auth plain first") {
		t.Errorf("removing the last key: %v", err)
	}
	ctl(t, n, "key add "+hex.EncodeToString(testKey))
	if err := n.Tree().WriteFile("ctl", []byte("key remove "+fp2)); err == nil || !strings.Contains(err.Error(), "is primary") {
		t.Errorf("removing the primary: %v", err)
	}
	for _, bad := range []string{"key use 00000000", "key remove zz", "auth on", "key", "auth", "key add " + strings.Repeat("0", 63)} {
		if err := n.Tree().WriteFile("ctl", []byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestKeylessToKeyed(t *testing.T) {
	sm := newSim(t)
	ns := []*simNode{sm.start(1, nil), sm.start(2, nil), sm.start(3, nil)}
	sm.run(3 * s)
	// keyed is refused without a key
	if err := ns[0].Tree().WriteFile("ctl", []byte("auth keyed")); err == nil {
		t.Error("auth keyed without a key")
	}
	for _, step := range []string{"key add " + hex.EncodeToString(testKey), "auth mixed", "auth keyed"} {
		for _, n := range ns {
			ctl(t, n, step)
			neverSuspect(t, sm, ns, 7*s)
		}
	}
	neverSuspect(t, sm, ns, 40*s)
	a := ns[0]
	before := a.stat("dropped_unkeyed")
	sm.injectAll("10.0.0.9", "ANNOUNCE 00000009 10.0.0.9 x 1 1 1 0\n")
	sm.run(ms)
	if a.stat("dropped_unkeyed") != before+1 || a.stat("peers") != 2 {
		t.Errorf("plain after migration:\n%s", a.read("stats"))
	}
	// Every message on the wire is signed now.
	for _, n := range ns {
		if m := n.conn.sent[len(n.conn.sent)-1].msg; len(strings.Fields(m)) < 6 {
			t.Errorf("%s sent %q", n.ID(), m)
		}
	}
}

func TestKeylessIsPlain(t *testing.T) {
	// Without a key, the wire is the seed grammar of §2, byte for byte.
	sm := newSim(t)
	a := sm.start(1, nil)
	sm.start(2, nil)
	sm.run(20 * s)
	for _, m := range a.conn.sent {
		p, err := Parse([]byte(m.msg))
		if err != nil || p.Keyed() {
			t.Errorf("sent %q", m.msg)
		}
	}
}

func TestKeyedRestartAnswered(t *testing.T) {
	// A signed node restarted under a higher incarnation is answered even
	// though its peers still list it online (plain ones are not, §4.1).
	sm := newSim(t)
	a := sm.start(1, keyed)
	b := sm.start(2, keyed)
	sm.run(3 * s)
	sm.kill(b)
	sm.run(2 * s)
	b = sm.start(2, keyed)
	sm.run(1300 * ms)
	if got := b.status(a); got != "online" {
		t.Errorf("restarted b sees a: %s", got)
	}
	if len(sm.logged("00000002 (n2) restarted")) != 1 {
		t.Errorf("log:\n%s", strings.Join(sm.log, "\n"))
	}
}

func TestNameConflict(t *testing.T) {
	sm := newSim(t)
	a := sm.start(1, nil)
	sm.start(2, func(c *Config) { c.Name = "db" })
	sm.start(3, func(c *Config) { c.Name = "db" })
	sm.run(2 * s)
	if got := a.read("conflicts"); got != "db 00000002 00000003\n" {
		t.Errorf("conflicts: %q", got)
	}
	if len(sm.logged("10.0.0.1 cluster: name db is claimed by 00000002 00000003")) != 1 {
		t.Errorf("log:\n%s", strings.Join(sm.log, "\n"))
	}
	ctl(t, a, "name db")
	if got := a.read("conflicts"); got != "db 00000001 00000002 00000003\n" {
		t.Errorf("conflicts after our rename: %q", got)
	}
	ctl(t, a, "name n1")
	if got := a.read("conflicts"); got != "db 00000002 00000003\n" {
		t.Errorf("conflicts: %q", got)
	}
}

func TestKeyRotationOutOfOrder(t *testing.T) {
	// The steps matter: a node that signs with a key its peers lack is
	// dropped (unknown_key) and seen to fail.
	sm := newSim(t)
	a, b := sm.start(1, keyed), sm.start(2, keyed)
	sm.run(3 * s)
	ctl(t, a, "key add "+hex.EncodeToString(testKey2))
	ctl(t, a, "key use "+Fingerprint(testKey2))
	sm.run(20 * s)
	if b.status(a) != "suspect" || b.stat("dropped_unknown_key") == 0 {
		t.Errorf("b sees a %s\n%s", b.status(a), b.read("stats"))
	}
}

func TestCtlNeverQuotesAKey(t *testing.T) {
	sm := newSim(t)
	a := sm.start(1, nil)
	k := hex.EncodeToString(testKey2)
	for _, msg := range []string{"kye add " + k, "key ad " + k, "key add " + k + "x", "key add " + k[:62], "auth " + k, "name " + k + "-x"} {
		err := a.Tree().WriteFile("ctl", []byte(msg))
		if err == nil || strings.Contains(err.Error(), k[:16]) || strings.Contains(err.Error(), k[40:56]) {
			t.Errorf("%q: %v", msg[:10], err)
		}
	}
	if got := redactKeys("x " + k + " y 0123"); got != "x <redacted> y 0123" {
		t.Errorf("redactKeys: %q", got)
	}
}

func TestOwnMessageReplayed(t *testing.T) {
	// Our own signed ANNOUNCE replayed from another address is a replay,
	// not a claim: it draws no refutation.
	sm := newSim(t)
	a := sm.start(1, keyed)
	sm.start(2, keyed)
	sm.run(3 * s)
	own := lastSent(t, a, "ANNOUNCE")
	sm.inject("10.0.0.9", a, own)
	sm.run(2 * s)
	if a.stat("refutes") != 0 || a.stat("dropped_replay") != 1 {
		t.Errorf("stats:\n%s", a.read("stats"))
	}
}

func TestOwnMessageReplayedAfterClockSetBack(t *testing.T) {
	// Once our wall clock is set back, we sign under a new incarnation
	// with a lower seq; a message of the old incarnation, replayed from
	// elsewhere within the window, is still older than what we sent last
	// (inc first, then seq) and draws no refutation.
	sm := newSim(t)
	var off time.Duration
	wall := func() time.Time { return sm.clock.Now().Add(off) }
	a := sm.start(1, func(c *Config) { keyed(c); c.WallClock = wall })
	sm.start(2, keyed)
	sm.run(16 * s) // a's ANNOUNCE of 15 s is its last of the old incarnation
	own := lastSent(t, a, "ANNOUNCE")
	off = -25 * s
	sm.run(5 * s) // the HEARTBEAT of 20 s starts a new incarnation
	sm.inject("10.0.0.9", a, own)
	sm.run(s)
	if a.stat("refutes") != 0 || a.stat("dropped_replay") != 1 {
		t.Errorf("stats:\n%s", a.read("stats"))
	}
}
