package vmtest

import (
	"bytes"
	crand "crypto/rand"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"fornax/cluster"
)

// TestAttackKeyed: three VMs sharing a key; the attacker does not have
// it, but can record and replay what they send.
func TestAttackKeyed(t *testing.T) {
	key := newClusterKey(t)
	lan := startLANOpts(t, kernel(t, "FORNAX_KERNEL_CLUSTER"), 3, Options{KeyFile: key.path})
	ids := vmNodeIDs(t, lan)
	c := startBridgeCapture(t)
	clk := markGuestClocks(t, lan)
	waitMeshOnline(t, lan, ids, 20*time.Second)
	raw := openRaw(t, Bridge)
	vm1, vm2, vm3 := lan.VMs[0], lan.VMs[1], lan.VMs[2]
	for _, vm := range lan.VMs {
		if got := command(t, vm, "cat /cluster/ctl"); got != "joined\nauth keyed\nkey "+key.fp+" primary\n" {
			t.Fatalf("%s: ctl %q", vm.Name, got)
		}
	}
	listed := func(t *testing.T, id string) {
		t.Helper()
		for i, vm := range lan.VMs {
			if ids[i] == id {
				continue
			}
			if got := command(t, vm, "cat /cluster/nodes/"+id+"/status"); got != "online\n" {
				t.Errorf("%s: status of %s: %q", vm.Name, id, got)
			}
		}
	}
	notListed := func(t *testing.T, id string) {
		t.Helper()
		for _, vm := range lan.VMs {
			if got := command(t, vm, "ls /cluster/nodes/"); strings.Contains(got, id) {
				t.Errorf("%s lists the forged %s: %q", vm.Name, id, got)
			}
		}
	}
	// expect sends frames spaced out and checks that each VM counted
	// exactly them under reason: all but those with its own address as
	// source, which its IP stack drops (a martian) before the cluster
	// sees them.
	expect := func(t *testing.T, reason string, frames ...[]byte) {
		t.Helper()
		want := make([]int, len(lan.VMs))
		for _, f := range frames {
			p, _ := ParseFrame(f)
			for i := range want {
				if p.Src.String() != Addr(i+1) {
					want[i]++
				}
			}
		}
		before := clusterStatsAll(t, lan)
		for _, f := range frames {
			sendFrames(t, raw, f)
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(300 * time.Millisecond)
		after := clusterStatsAll(t, lan)
		d := statDelta(before, after, "dropped_"+reason)
		t.Logf("%d forged datagrams: dropped_%s +%v (want %v), dropped +%v, accepted +%v", len(frames), reason, d, want,
			statDelta(before, after, "dropped"), statDelta(before, after, "accepted"))
		for i := range d {
			if d[i] != want[i] {
				t.Errorf("%s: dropped_%s grew by %d, want %d", lan.VMs[i].Name, reason, d[i], want[i])
			}
		}
	}

	// (a) a plain LEAVE of fornax-02 from its address and MAC.
	t.Run("PlainLeave", func(t *testing.T) {
		expect(t, "unkeyed", forgeFrame(Addr(2), VMMAC(2), leaveMsg(ids[1]).Append(nil)))
		listed(t, ids[1])
	})

	// (b) a plain hijack of fornax-02's id, zombie HEARTBEATs for it
	// from its address, and a plain newcomer.
	t.Run("PlainForgeries", func(t *testing.T) {
		newID := freshNodeID(ids, 0xc0000000, 0)
		expect(t, "unkeyed",
			forgeFrame("10.0.0.50", forgedMAC, announceMsg(ids[1], "10.0.0.50", "evil").Append(nil)),
			forgeFrame(Addr(2), VMMAC(2), heartbeatMsg(ids[1]).Append(nil)),
			forgeFrame(Addr(2), VMMAC(2), heartbeatMsg(ids[1]).Append(nil)),
			forgeFrame("10.0.0.52", forgedMAC, announceMsg(newID, "10.0.0.52", "evil").Append(nil)))
		listed(t, ids[1])
		for _, vm := range []*VM{vm1, vm3} {
			if got := command(t, vm, "cat /cluster/nodes/"+ids[1]+"/addr"); got != Addr(2)+"\n" {
				t.Errorf("%s: fornax-02 at %q", vm.Name, got)
			}
		}
		notListed(t, newID)
	})

	// (e) signed with a key the VMs do not have; the right key's
	// fingerprint with a wrong tag; a good signature on a message sent
	// 60 s ago, or 60 s from now.
	t.Run("BadSignatures", func(t *testing.T) {
		other := make([]byte, cluster.KeySize)
		crand.Read(other)
		newID := freshNodeID(ids, 0xc0000000, 1)
		now := uint64(time.Now().UnixMilli())
		m := announceMsg(newID, "10.0.0.53", "evil")
		m.Sign(other, now-1000, now)
		expect(t, "unknown_key", forgeFrame("10.0.0.53", forgedMAC, m.Append(nil)))

		m.Sign(key.raw, now-1000, now)
		tag := []byte(m.Tag)
		if tag[7] == '0' { // another hex digit
			tag[7] = '1'
		} else {
			tag[7] = '0'
		}
		m.Tag = string(tag)
		hb := heartbeatMsg(ids[1])
		hb.Sign(key.raw, now-1000, now)
		hb.Tag = strings.Repeat("0", 32)
		expect(t, "bad_tag", forgeFrame("10.0.0.53", forgedMAC, m.Append(nil)), forgeFrame(Addr(2), VMMAC(2), hb.Append(nil)))

		m.Sign(key.raw, now-70000, now-60000)
		m2 := m
		m2.Sign(key.raw, now, now+60000)
		expect(t, "stale", forgeFrame("10.0.0.53", forgedMAC, m.Append(nil)), forgeFrame("10.0.0.53", forgedMAC, m2.Append(nil)))
		notListed(t, newID)
		listed(t, ids[1])
	})

	// (c) fornax-03's real LEAVE, replayed 5 s after it rejoined.
	t.Run("ReplayLeave", func(t *testing.T) {
		t0 := time.Now()
		command(t, vm3, "echo leave > /cluster/ctl")
		var lv []capturedFrame
		for time.Since(t0) < 5*time.Second && len(lv) == 0 {
			time.Sleep(50 * time.Millisecond)
			lv = nil
			for _, f := range c.from(Addr(3), t0, time.Time{}) {
				if bytes.HasPrefix(f.p.Payload, []byte("LEAVE ")) {
					lv = append(lv, f)
				}
			}
		}
		if len(lv) != 1 {
			t.Fatalf("captured %d LEAVEs of fornax-03", len(lv))
		}
		if m := lv[0].msg(t); !m.Keyed() || m.ID != ids[2] {
			t.Fatalf("captured LEAVE %q", lv[0].p.Payload)
		}
		t.Logf("captured %q", strings.TrimSpace(string(lv[0].p.Payload)))
		for _, vm := range []*VM{vm1, vm2} {
			poll(t, vm, "ls /cluster/nodes/", 3*time.Second, 20*time.Millisecond, lacks(ids[2]))
		}
		tj := time.Now()
		command(t, vm3, "echo join > /cluster/ctl")
		at, _ := poll(t, vm1, "ls /cluster/nodes/", 5*time.Second, 20*time.Millisecond, contains(ids[2]+"/"))
		t.Logf("fornax-01 lists the rejoined fornax-03 after %v", at.Sub(tj).Round(time.Millisecond))
		poll(t, vm2, "ls /cluster/nodes/", 5*time.Second, 20*time.Millisecond, contains(ids[2]+"/"))
		// the others answer it by unicast (docs/protocol.md §4.1)
		at, _ = poll(t, vm3, "ls /cluster/nodes/", 5*time.Second, 20*time.Millisecond, equals(ids[0]+"/\n"+ids[1]+"/\n"))
		t.Logf("the rejoined fornax-03 lists the others after %v", at.Sub(tj).Round(time.Millisecond))
		if d := at.Sub(tj); d > 2*time.Second {
			t.Errorf("the rejoined fornax-03 listed the others only after %v, want about 1.2 s", d)
		}
		time.Sleep(5*time.Second - time.Since(at))
		before := clusterStatsAll(t, lan)
		sendFrames(t, raw, lv[0].replay())
		time.Sleep(500 * time.Millisecond)
		after := clusterStatsAll(t, lan)
		listed(t, ids[2])
		d := statDelta(before, after, "dropped_replay")
		t.Logf("LEAVE replayed %v after it was sent: dropped_replay +%v", time.Since(lv[0].at).Round(time.Millisecond), d)
		if d[0] != 1 || d[1] != 1 {
			t.Errorf("dropped_replay grew by %v, want 1 on fornax-01 and fornax-02", d)
		}
	})

	// (d) fornax-03 dies; its recorded messages, replayed every 5 s, do
	// not keep it alive.
	t.Run("Zombie", func(t *testing.T) {
		var rec []capturedFrame
		for t0 := time.Now(); len(rec) < 3 && time.Since(t0) < 10*time.Second; time.Sleep(100 * time.Millisecond) {
			rec = nil
			for _, f := range c.from(Addr(3), time.Time{}, time.Time{}) {
				if m := f.msg(t); m.Keyed() && m.Kind != cluster.Leave {
					rec = append(rec, f)
				}
			}
		}
		var l []string
		for _, f := range c.from(Addr(3), time.Time{}, time.Time{}) {
			l = append(l, f.at.Format("15:04:05.000 ")+strings.TrimSpace(string(f.p.Payload)))
		}
		t.Logf("captured from fornax-03:\n%s", strings.Join(l, "\n"))
		if len(rec) < 3 {
			t.Fatalf("captured only %d signed messages of fornax-03", len(rec))
		}
		rec = rec[len(rec)-3:]
		before := clusterStatsOf(t, lan.VMs[:2])
		clk.check(t, lan, 3)
		if err := lan.Kill(3); err != nil {
			t.Fatal(err)
		}
		killed := time.Now()
		time.Sleep(200 * time.Millisecond)
		all := c.from(Addr(3), time.Time{}, time.Time{})
		last := all[len(all)-1].at
		t.Logf("killed fornax-03 %v after its last datagram; replaying %d recorded ones, the newest %v old",
			killed.Sub(last).Round(time.Millisecond), len(rec), killed.Sub(rec[len(rec)-1].at).Round(time.Millisecond))
		stop := make(chan struct{})
		replays := 0
		var wg sync.WaitGroup
		wg.Add(1)
		stopped := false
		defer func() {
			if !stopped {
				close(stop)
				wg.Wait()
			}
		}()
		go func() {
			defer wg.Done()
			for k := 0; ; k++ {
				sendFrames(t, raw, rec[k%len(rec)].replay())
				replays++
				select {
				case <-stop:
					return
				case <-time.After(5 * time.Second):
				}
			}
		}()
		status := "cat /cluster/nodes/" + ids[2] + "/status"
		ts, _ := poll(t, vm1, status, 25*time.Second, 200*time.Millisecond, equals("suspect\n"))
		td, _ := poll(t, vm1, status, 25*time.Second, 200*time.Millisecond, equals("dead\n"))
		close(stop)
		wg.Wait()
		stopped = true
		time.Sleep(200 * time.Millisecond)
		after := clusterStatsOf(t, lan.VMs[:2])
		t.Logf("with %d replays, fornax-01 marks fornax-03 suspect at %.2f s and dead at %.2f s after its last datagram; dropped_replay +%v, dropped_stale +%v",
			replays, ts.Sub(last).Seconds(), td.Sub(last).Seconds(), statDelta(before, after, "dropped_replay"), statDelta(before, after, "dropped_stale"))
		if s := ts.Sub(last).Seconds(); s < 14.5 || s > 17 {
			t.Errorf("suspect at %.2f s, want 15 s", s)
		}
		if s := td.Sub(last).Seconds(); s < 29.5 || s > 32 {
			t.Errorf("dead at %.2f s, want 30 s", s)
		}
		for i := 0; i < 2; i++ {
			if d := after[i]["dropped_replay"] + after[i]["dropped_stale"] - before[i]["dropped_replay"] - before[i]["dropped_stale"]; d != replays {
				t.Errorf("%s: replay+stale drops grew by %d, want %d", lan.VMs[i].Name, d, replays)
			}
		}
		if got := command(t, vm2, status); got != "dead\n" {
			t.Errorf("fornax-02: fornax-03 is %q", got)
		}
		clk.check(t, lan, 2)
	})
}

// onlineWatcher checks, as often as it is asked, that every VM lists the others
// online, and counts the checks.
type onlineWatcher struct {
	t      *testing.T
	lan    *LAN
	ids    []string
	checks int
	bad    int
}

func (w *onlineWatcher) check() {
	w.t.Helper()
	for i, vm := range w.lan.VMs {
		line, want := peerStatusLine(w.ids, i)
		if got := command(w.t, vm, line); got != want {
			w.bad++
			w.t.Errorf("%s at %s: peers %q, want all online", vm.Name, time.Now().Format("15:04:05.000"), got)
		}
	}
	w.checks++
}

// hold checks every 0.5 s for d.
func (w *onlineWatcher) hold(d time.Duration) {
	w.t.Helper()
	for end := time.Now().Add(d); ; {
		t0 := time.Now()
		w.check()
		if time.Now().After(end) {
			return
		}
		time.Sleep(max(0, 500*time.Millisecond-time.Since(t0)))
	}
}

// ctlWrite writes a control message on vm, which must succeed silently.
func ctlWrite(t *testing.T, vm *VM, msg string) time.Time {
	t.Helper()
	at := time.Now()
	if out := command(t, vm, "echo "+msg+" > /cluster/ctl"); out != "" {
		t.Fatalf("%s: ctl %q: %q", vm.Name, strings.Fields(msg)[0]+" "+strings.Fields(msg)[1], out)
	}
	return at
}

// sentSinceWithKey checks what each VM sent after since[i]: at least one
// datagram, each signed with key fp ("" for plain).
func sentSinceWithKey(t *testing.T, c *bridgeCapture, since []time.Time, fp string) {
	t.Helper()
	for i, s := range since {
		l := c.from(Addr(i+1), s.Add(100*time.Millisecond), time.Time{})
		if len(l) == 0 {
			t.Errorf("%s sent nothing since %s", Name(i+1), s.Format("15:04:05.000"))
		}
		for _, f := range l {
			if m := f.msg(t); m.KeyID != fp {
				t.Errorf("%s sent %q, want key %q", Name(i+1), f.p.Payload, fp)
				break
			}
		}
	}
}

// noSignatureDrops checks that no VM dropped anything for a signature reason.
func noSignatureDrops(t *testing.T, before, after []map[string]int) {
	t.Helper()
	for _, r := range []string{"unkeyed", "unknown_key", "bad_tag", "stale", "replay", "dropped"} {
		name := "dropped_" + r
		if r == "dropped" {
			name = r
		}
		if d := statDelta(before, after, name); fmt.Sprint(d) != "[0 0 0]" {
			t.Errorf("%s grew by %v", name, d)
		}
	}
	t.Logf("accepted +%v, dropped +%v", statDelta(before, after, "accepted"), statDelta(before, after, "dropped"))
}
