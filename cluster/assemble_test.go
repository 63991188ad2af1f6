package cluster

import (
	"bytes"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// stoppedClock is a Clock whose time does not move: New's default Rand,
// seeded from the ID and the clock, would be the same for two nodes on it.
type stoppedClock struct{ Clock }

func (stoppedClock) Now() time.Time { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) }

func assembleConfig(t *testing.T, keys [][]byte) (Config, net.PacketConn) {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return Config{
		ID:     "0a0b0c0d",
		Addr:   netip.MustParseAddr("10.0.0.2"),
		Prefix: netip.MustParsePrefix("10.0.0.2/24"),
		Clock:  stoppedClock{RealClock()},
		Keys:   keys,
	}, conn
}

func TestAssemble(t *testing.T) {
	key := bytes.Repeat([]byte{7}, KeySize)
	fp := Fingerprint(key)
	cfg, conn := assembleConfig(t, [][]byte{key})
	fast, err := LookupProfile("fast")
	if err != nil {
		t.Fatal(err)
	}
	n, desc, err := Assemble(cfg, fast, conn)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Description{Key: "key " + fp, Profile: "fast"}); desc != want {
		t.Errorf("description %+v, want %+v", desc, want)
	}
	if got, want := desc.String(), "key "+fp+", profile fast"; got != want {
		t.Errorf("description %q, want %q", got, want)
	}
	if n.cfg.Interval != fast.Interval || n.cfg.DeadAfter != fast.DeadAfter {
		t.Errorf("timings interval %v dead %v, want the fast profile's %v %v", n.cfg.Interval, n.cfg.DeadAfter, fast.Interval, fast.DeadAfter)
	}
	if !bytes.Equal(key, make([]byte, KeySize)) {
		t.Error("the caller's key is not cleared")
	}

	// Two nodes alike, on a clock that does not move, draw different
	// jitter: their Rand comes from crypto/rand.
	cfg2, conn2 := assembleConfig(t, nil)
	n2, desc2, err := Assemble(cfg2, Profiles[0], conn2)
	if err != nil {
		t.Fatal(err)
	}
	cfg3, conn3 := assembleConfig(t, nil)
	n3, _, err := Assemble(cfg3, Profiles[0], conn3)
	if err != nil {
		t.Fatal(err)
	}
	if n2.cfg.Rand.Uint64() == n3.cfg.Rand.Uint64() {
		t.Error("two nodes drew the same number")
	}
	if got := desc2.String(); got != "no key" {
		t.Errorf("description without a key or profile: %q", got)
	}
	for k, want := range []string{"no key", "no key, 1 seed", "no key, 2 seeds"} {
		if got := (Description{Key: "no key", Profile: Profiles[0].Name, Seeds: k}).String(); got != want {
			t.Errorf("%d seeds: %q, want %q", k, got, want)
		}
	}
}

// A Config that New refuses: its error as it is, and the keys cleared
// all the same.
func TestAssembleFails(t *testing.T) {
	key := bytes.Repeat([]byte{7}, KeySize)
	cfg, conn := assembleConfig(t, [][]byte{key})
	cfg.ID = "nothex!!"
	_, _, err := Assemble(cfg, Profiles[0], conn)
	if err == nil || !strings.HasPrefix(err.Error(), "cluster: bad ID") {
		t.Errorf("error %v, want New's", err)
	}
	if !bytes.Equal(key, make([]byte, KeySize)) {
		t.Error("the caller's key is not cleared")
	}
}
