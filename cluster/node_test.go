package cluster

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"fornax/fs/file"
)

const (
	ms = time.Millisecond
	s  = time.Second
)

func TestIDFromMAC(t *testing.T) {
	mac := []byte{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}
	if got := IDFromMAC(mac); got != "bb7f3b7b" {
		t.Errorf("IDFromMAC(%x) = %s, want bb7f3b7b", mac, got)
	}
	if got := IDFromMAC(nil); got != "811c9dc5" || !ValidID(got) {
		t.Errorf("IDFromMAC(nil) = %s", got)
	}
	if IDFromMAC([]byte{0x52, 0x54, 0, 0x12, 0x34, 0x57}) == IDFromMAC(mac) {
		t.Error("neighbouring MACs share an id")
	}
}

func TestSchedule(t *testing.T) {
	// Every third periodic message is an ANNOUNCE, the join being the
	// first; the schedule is exact, from the join.
	sm := newSim(t)
	sm.runTo(1234 * ms)
	a := sm.start(1, nil)
	sm.runTo(1234*ms + 31*s)
	want := []sent{
		{1234 * ms, "ANNOUNCE 00000001 10.0.0.1 n1 2 268435456 134217728 0", false},
		{6234 * ms, "HEARTBEAT 00000001 0.25 134217728 0", false},
		{11234 * ms, "HEARTBEAT 00000001 0.25 134217728 0", false},
		{16234 * ms, "ANNOUNCE 00000001 10.0.0.1 n1 2 268435456 134217728 0", false},
		{21234 * ms, "HEARTBEAT 00000001 0.25 134217728 0", false},
		{26234 * ms, "HEARTBEAT 00000001 0.25 134217728 0", false},
		{31234 * ms, "ANNOUNCE 00000001 10.0.0.1 n1 2 268435456 134217728 0", false},
	}
	if !slices.Equal(a.conn.sent, want) {
		t.Errorf("sent:\n%v\nwant:\n%v", a.conn.sent, want)
	}
	if a.stat("echo") != 7 || a.stat("dropped") != 0 || a.stat("sent") != 7 {
		t.Errorf("stats:\n%s", a.read("stats"))
	}
}

func TestScheduleLate(t *testing.T) {
	// A late loop sends one message for the ticks it missed, an ANNOUNCE
	// if one of them was, and keeps the schedule.
	sm := newSim(t)
	a := sm.start(1, nil)
	sm.clock.set(t0.Add(12 * s)) // ticks 1, 2 missed
	a.fire()
	sm.clock.set(t0.Add(31 * s)) // ticks 3–6 missed
	a.fire()
	var kinds []string
	for _, m := range a.conn.sent {
		kinds = append(kinds, m.at.String()+" "+strings.Fields(m.msg)[0])
	}
	if got := strings.Join(kinds, ", "); got != "0s ANNOUNCE, 12s HEARTBEAT, 31s ANNOUNCE" {
		t.Error(got)
	}
	if w := a.nextWake(); !w.Equal(t0.Add(35 * s)) {
		t.Errorf("next wake %v", w.Sub(t0))
	}

	// Missed ticks that start on a HEARTBEAT tick but include an ANNOUNCE
	// tick still make an ANNOUNCE: ticks 2–4 (tick 3 is one), then 5–6
	// (tick 6); ticks 7–8 hold none.
	sm = newSim(t)
	a = sm.start(1, nil)
	sm.runTo(5 * s) // tick 1
	for _, at := range []time.Duration{22 * s, 34 * s, 44 * s} {
		sm.clock.set(t0.Add(at))
		a.fire()
	}
	if got := a.verbs(); got != "0s ANNOUNCE, 5s HEARTBEAT, 22s ANNOUNCE, 34s ANNOUNCE, 44s HEARTBEAT" {
		t.Error(got)
	}
	if w := a.nextWake(); !w.Equal(t0.Add(45 * s)) {
		t.Errorf("next wake %v", w.Sub(t0))
	}
}

func TestFastJoin(t *testing.T) {
	sm := newSim(t)
	a := sm.start(1, nil)
	sm.runTo(7300 * ms)
	b := sm.start(2, nil)
	// b's join ANNOUNCE reaches a after the 1 ms network delay, a answers
	// within ReplyJitter (200 ms), its answer takes 1 ms.
	sm.run(ms)
	if got := a.status(b); got != "online" {
		t.Fatalf("a sees b: %s", got)
	}
	sm.run(201 * ms)
	if got := b.status(a); got != "online" {
		t.Fatalf("b sees a: %s", got)
	}
	if got := b.read("nodes/00000001/name") + b.read("nodes/00000001/addr") + b.read("nodes/00000001/resources"); got !=
		"n1\n10.0.0.1\ncpus 2\nmem 256M\nmem_free 128M\ncontainers 0\n" {
		t.Errorf("b's view of a:\n%s", got)
	}
	if got := a.ls("nodes"); got != "00000002/" {
		t.Errorf("a's nodes: %q", got)
	}
	// a answered once; b answered a's answer once (a was new to it), a
	// second after its join ANNOUNCE (AnswerEvery).
	sm.run(1201 * ms)
	if n := len(a.conn.sent); n != 3 { // 2 periodic + the reply
		t.Errorf("a sent %v", a.conn.sent)
	}
	if n := len(b.conn.sent); n != 2 {
		t.Errorf("b sent %v", b.conn.sent)
	}
	sm.run(4 * s)
	if got := a.read("nodes/00000002/resources"); got != "cpus 2\nmem 256M\nmem_free 128M\nload 0.25\ncontainers 0\n" {
		t.Errorf("after a HEARTBEAT:\n%s", got)
	}
}

func TestFastJoinMany(t *testing.T) {
	// Everyone already up answers a newcomer once; the answers' answers
	// are coalesced.
	sm := newSim(t)
	var ns []*simNode
	for h := 1; h <= 10; h++ {
		ns = append(ns, sm.start(h, nil))
		sm.run(300 * ms)
	}
	sm.run(2 * s) // quiet, before anyone's next periodic message
	for _, x := range ns {
		if got := len(strings.Fields(x.ls("nodes"))); got != 9 {
			t.Errorf("%s sees %d nodes", x.ID(), got)
		}
	}
}

func TestFailure(t *testing.T) {
	sm := newSim(t)
	a := sm.start(1, nil)
	sm.run(2 * s)
	b := sm.start(2, nil)
	sm.run(60*s + 2*ms)
	sm.kill(b) // a crash: no LEAVE
	ps := a.Peers()
	if len(ps) != 1 {
		t.Fatal(ps)
	}
	last := ps[0].LastHeard.Sub(t0)
	if last != 62*s+ms { // b's 12th message, sent at 62 s
		t.Fatalf("last heard at %v", last)
	}
	for _, c := range []struct {
		at   time.Duration
		want string
	}{
		{14999 * ms, "online"},
		{15 * s, "suspect"},
		{29999 * ms, "suspect"},
		{30 * s, "dead"},
		{89999 * ms, "dead"},
		{90 * s, "gone"},
	} {
		sm.runTo(last + c.at)
		if got := a.status(b); got != c.want {
			t.Errorf("%v after last heard: %s, want %s", c.at, got, c.want)
		}
	}
	// The transitions were applied by a's own timers, at the exact times.
	for _, l := range []string{
		"1m17.001s 10.0.0.1 cluster: 00000002 (n2) is suspect",
		"1m32.001s 10.0.0.1 cluster: 00000002 (n2) is dead",
		"2m32.001s 10.0.0.1 cluster: 00000002 (n2) removed",
	} {
		if len(sm.logged(l)) != 1 {
			t.Errorf("log lacks %q:\n%s", l, strings.Join(sm.log, "\n"))
		}
	}
	if got := a.ls("nodes"); got != "" {
		t.Errorf("nodes: %q", got)
	}

	// Restarted under the same id, b is online again at once; a, which had
	// forgotten it, answers its ANNOUNCE.
	sm.runTo(200 * s)
	b = sm.start(2, nil)
	sm.run(ms)
	if got := a.status(b); got != "online" {
		t.Errorf("a sees restarted b: %s", got)
	}
	sm.run(201 * ms)
	if got := b.status(a); got != "online" {
		t.Errorf("restarted b sees a: %s", got)
	}
}

func TestRestart(t *testing.T) {
	for _, tc := range []struct {
		name   string
		down   time.Duration // from the crash to the restart
		seesA  time.Duration // from the restart until b lists a, at the latest
		exact  bool          // and not before
		aState string        // a's view of b just before the restart
	}{
		// a still has b online: b's ANNOUNCE is no news to a, which does
		// not answer, nor does it answer b's prompt; b learns of a from
		// a's next periodic ANNOUNCE at 75 s (a joined at 0), 12.5 s after
		// the restart at 62.5 s.
		{"quick", 1 * s, 12*s + 500*ms + ms, true, "online"},
		// a has b dead: it answers within ReplyJitter.
		{"dead", 40 * s, 202 * ms, false, "dead"},
		// a has b suspect: likewise.
		{"suspect", 20 * s, 202 * ms, false, "suspect"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sm := newSim(t)
			a := sm.start(1, nil)
			sm.run(1 * s)
			b := sm.start(2, nil)
			sm.runTo(61*s + 500*ms)
			sm.kill(b)
			sm.run(tc.down)
			if got := a.status(b); got != tc.aState {
				t.Fatalf("a sees b: %s", got)
			}
			b = sm.start(2, nil)
			sm.run(ms)
			if got := a.status(b); got != "online" {
				t.Errorf("a sees restarted b: %s", got)
			}
			if tc.exact {
				sm.run(tc.seesA - 2*ms)
				if got := b.status(a); got != "gone" {
					t.Errorf("b sees a early: %s", got)
				}
			}
			sm.runTo(61*s + 500*ms + tc.down + tc.seesA)
			if got := b.status(a); got != "online" {
				t.Errorf("b sees a: %s", got)
			}
		})
	}
}

func TestLeaveJoin(t *testing.T) {
	sm := newSim(t)
	a := sm.start(1, nil)
	b := sm.start(2, nil)
	sm.run(10 * s)
	if err := b.Tree().WriteFile("ctl", []byte("leave\n")); err != nil {
		t.Fatal(err)
	}
	if got := b.read("ctl"); got != "left\nauth plain\n" {
		t.Errorf("ctl reads %q", got)
	}
	if got := b.ls("nodes"); got != "" {
		t.Errorf("b's nodes after leave: %q", got)
	}
	sm.run(ms)
	if got := a.status(b); got != "gone" {
		t.Errorf("a sees b after LEAVE: %s", got)
	}
	nsent := len(b.conn.sent)
	sm.run(60 * s)
	if len(b.conn.sent) != nsent {
		t.Errorf("b sent after leaving: %v", b.conn.sent[nsent:])
	}
	if got := b.ls("nodes"); got != "" {
		t.Errorf("b's nodes while left: %q", got)
	}
	if b.stat("dropped_left") == 0 {
		t.Error("b counted nothing while left")
	}
	if got := a.status(b); got != "gone" {
		t.Errorf("a sees b while left: %s", got)
	}
	// Leaving again does nothing.
	b.Leave()
	if len(b.conn.sent) != nsent {
		t.Error("second Leave sent")
	}

	if err := b.Tree().WriteFile("ctl", []byte("join")); err != nil {
		t.Fatal(err)
	}
	if got := b.read("ctl"); got != "joined\nauth plain\n" {
		t.Errorf("ctl reads %q", got)
	}
	if m := b.conn.sent[nsent]; !strings.HasPrefix(m.msg, "ANNOUNCE ") || m.at != 70*s+ms {
		t.Errorf("join sent %v", m)
	}
	sm.run(ms)
	if got := a.status(b); got != "online" {
		t.Errorf("a sees b after join: %s", got)
	}
	sm.run(201 * ms)
	if got := b.status(a); got != "online" {
		t.Errorf("b sees a after join: %s", got)
	}
	// The schedule restarts from the join.
	sm.runTo(75*s + 2*ms)
	if m := b.conn.sent[len(b.conn.sent)-1]; m.at != 75*s+ms || !strings.HasPrefix(m.msg, "HEARTBEAT ") {
		t.Errorf("after join: %v", b.conn.sent[nsent:])
	}
	// Joining again does nothing.
	n := len(b.conn.sent)
	b.Join()
	if len(b.conn.sent) != n {
		t.Error("second Join sent")
	}
}

func TestRename(t *testing.T) {
	sm := newSim(t)
	a := sm.start(1, nil)
	b := sm.start(2, nil)
	sm.run(3 * s)
	if err := b.Tree().WriteFile("ctl", []byte("name db-1\n")); err != nil {
		t.Fatal(err)
	}
	if got := b.read("self/name"); got != "db-1\n" || b.Name() != "db-1" {
		t.Errorf("self/name %q, Name %q", got, b.Name())
	}
	sm.run(ms)
	if got := a.read("nodes/00000002/name"); got != "db-1\n" {
		t.Errorf("a sees name %q", got)
	}
	n := len(b.conn.sent)
	for _, tc := range []struct{ in, err string }{
		{"jion", `bad ctl message: "jion"`},
		{"join\n\n", `bad ctl message: "join\n"`},
		{"", `bad ctl message: ""`},
		{"name", `bad ctl message: "name"`},
		{"Name x", `bad ctl message: "Name x"`},
		{"name ", `bad name: ""`},
		{"name a b", `bad name: "a b"`},
		{"name a/b\n", `bad name: "a/b"`},
		{"name " + strings.Repeat("x", 64), `bad name: "` + strings.Repeat("x", 64) + `"`},
		{"leave now", `bad ctl message: "leave now"`},
	} {
		err := b.Tree().WriteFile("ctl", []byte(tc.in))
		if err == nil || err.Error() != tc.err {
			t.Errorf("write %q: %v, want %s", tc.in, err, tc.err)
		}
	}
	if len(b.conn.sent) != n || b.read("self/name") != "db-1\n" || b.read("ctl") != "joined\nauth plain\n" {
		t.Error("bad ctl messages changed something")
	}
}

func TestDrops(t *testing.T) {
	sm := newSim(t)
	a := sm.start(1, nil)
	b := sm.start(2, nil)
	sm.run(7 * s)
	files := func() string {
		var l []string
		for _, f := range []string{"nodes", "nodes/00000002"} {
			l = append(l, a.ls(f))
		}
		for _, f := range []string{"name", "addr", "resources", "status"} {
			l = append(l, a.read("nodes/00000002/"+f))
		}
		return strings.Join(l, "|")
	}
	before := files()
	recv := a.stat("received")
	for _, tc := range []struct{ from, msg, reason string }{
		{"10.0.0.9", strings.Repeat("x", 600), "oversize"},
		{"10.0.0.9", "ANNOUNCE 00000009 10.0.0.9 x 1 1 1", "malformed"},
		{"10.0.0.9", "ANNOUNCE 00000009  10.0.0.9 x 1 1 1 0", "malformed"},
		{"10.0.0.9", "HEARTBEAT 00000002 0.25 01 0", "malformed"},
		{"10.0.0.9", "\x00\x01\x02", "malformed"},
		{"10.0.0.9", "PING 00000009", "unknown_verb"},
		{"192.168.1.9", "ANNOUNCE 00000009 192.168.1.9 x 1 1 1 0", "foreign_subnet"},
		{"10.0.0.0", "LEAVE 00000002", "foreign_subnet"},
		{"10.0.0.255", "LEAVE 00000002", "foreign_subnet"},
		{"10.0.0.9", "ANNOUNCE 00000001 10.0.0.9 evil 1 1 1 0", "own_id"},
		{"10.0.0.1", "ANNOUNCE 00000009 10.0.0.1 evil 1 1 1 0", "own_addr"},
		{"10.0.0.9", "ANNOUNCE 00000009 10.0.0.8 x 1 1 1 0", "addr_mismatch"},
		{"10.0.0.9", "ANNOUNCE 00000002 10.0.0.2 evil 1 1 1 0", "addr_mismatch"},
		{"10.0.0.9", "HEARTBEAT 00000002 9.99 0 9", "source_mismatch"},
		{"10.0.0.9", "LEAVE 00000002", "source_mismatch"},
		{"10.0.0.9", "HEARTBEAT 00000009 0.00 0 0", "unknown_id"},
		{"10.0.0.9", "LEAVE 00000009", "unknown_id"},
	} {
		d0, r0 := a.stat("dropped"), a.stat("dropped_"+tc.reason)
		sm.inject(tc.from, a, tc.msg)
		sm.run(ms)
		if d, r := a.stat("dropped"), a.stat("dropped_"+tc.reason); d != d0+1 || r != r0+1 {
			t.Errorf("%q from %s: dropped %d→%d, %s %d→%d", tc.msg, tc.from, d0, d, tc.reason, r0, r)
		}
		if got := files(); got != before {
			t.Errorf("%q from %s changed a's tree:\n%s\nwas\n%s", tc.msg, tc.from, got, before)
		}
	}
	// The claim of our id was refuted by an ANNOUNCE, which came back.
	if got := a.stat("received"); got != recv+18 || a.stat("refutes") != 1 {
		t.Errorf("received %d, want %d; refutes %d", got, recv+18, a.stat("refutes"))
	}
	if a.stat("received") != a.stat("accepted")+a.stat("echo")+a.stat("dropped") {
		t.Errorf("counters do not add up:\n%s", a.read("stats"))
	}
	// The unknown HEARTBEAT prompted an ANNOUNCE (nothing else changed),
	// AnswerEvery after the refutation.
	sm.run(1300 * ms)
	if got := a.conn.sent[len(a.conn.sent)-1]; got.at < 8*s+10*ms || got.at > 8*s+210*ms || !strings.HasPrefix(got.msg, "ANNOUNCE") {
		t.Errorf("no prompt: %v", a.conn.sent)
	}
	_ = b
}

func TestStatsFile(t *testing.T) {
	sm := newSim(t)
	a := sm.start(1, nil)
	sm.run(ms)
	want := `received 1
accepted 0
echo 1
dropped 0
dropped_oversize 0
dropped_malformed 0
dropped_unknown_verb 0
dropped_foreign_subnet 0
dropped_own_id 0
dropped_own_addr 0
dropped_addr_mismatch 0
dropped_source_mismatch 0
dropped_unknown_id 0
dropped_table_full 0
dropped_left 0
dropped_unkeyed 0
dropped_unknown_key 0
dropped_bad_tag 0
dropped_stale 0
dropped_replay 0
dropped_addr_conflict 0
dropped_wrong_target 0
dropped_foreign_port 0
dropped_seen_full 0
dropped_ids_per_addr 0
dropped_unasked 0
sent 1
send_errors 0
peers 0
answers 0
refutes 0
log_held 0
probes 0
probes_held 0
probe_answers 0
probe_answers_held 0
asks 0
asks_held 0
asks_refused 0
ask_probes 0
relays 0
relays_refused 0
syncs 0
seed_tries 0
sync_answers 0
syncs_held 0
state_listed 0
state_candidates 0
state_refused 0
intros 0
pushes 0
accepted_announce 0
accepted_heartbeat 0
accepted_leave 0
accepted_probe 0
accepted_ask 0
accepted_relay 0
accepted_sync 0
accepted_state 0
sent_announce 1
sent_heartbeat 0
sent_leave 0
sent_probe 0
sent_ask 0
sent_relay 0
sent_sync 0
sent_state 0
events_lost 0
`
	if got := a.read("stats"); got != want {
		t.Errorf("stats:\n%s", got)
	}
}

func TestOwnID(t *testing.T) {
	// Two machines configured with the same id: neither lists the other.
	sm := newSim(t)
	a := sm.start(1, nil)
	x := sm.start(5, func(c *Config) { c.ID = "00000001" })
	sm.run(22 * s)
	if a.ls("nodes") != "" || x.ls("nodes") != "" {
		t.Error("a node with our id is listed")
	}
	// Each refutes the other's periodic claims at once, but a refutation
	// is not refuted again within AnswerEvery: no ping-pong.
	if a.stat("echo") != a.stat("sent") || a.stat("dropped_own_id") != x.stat("sent") ||
		a.stat("refutes") != 5 || a.stat("sent") != 10 {
		t.Errorf("stats:\n%s", a.read("stats"))
	}
}

func TestTableCap(t *testing.T) {
	sm := newSim(t)
	a := sm.start(1, func(c *Config) { c.MaxPeers = 2 })
	b := sm.start(2, nil)
	sm.start(3, nil)
	d := sm.start(4, nil)
	sm.run(20 * s)
	if got := a.ls("nodes"); got != "00000002/ 00000003/" {
		t.Errorf("nodes: %q", got)
	}
	if a.stat("dropped_table_full") == 0 || a.stat("dropped_unknown_id") == 0 {
		t.Errorf("stats:\n%s", a.read("stats"))
	}
	// a does not list d: it refused d's ANNOUNCE (table_full), so it did
	// not answer it, and, its table full, it does not prompt on d's
	// HEARTBEATs (unknown_id) either. d does list a: a's ANNOUNCEs (its
	// answer to b and c, its periodic ones) still reach d.
	if got := a.status(d); got != "gone" {
		t.Errorf("a sees d: %s", got)
	}
	if got := d.status(a); got != "online" {
		t.Errorf("d sees a: %s", got)
	}
	// a announced at its join, answered b and c once (one datagram to
	// each), and at 15 s: no prompts for d.
	if got := strings.Count(a.verbs(), "ANNOUNCE"); got != 4 {
		t.Errorf("a sent %s", a.verbs())
	}
	// A place frees: d gets in at its next ANNOUNCE (at 30 s).
	b.Leave()
	sm.runTo(30*s - ms)
	if got := a.status(d); got != "gone" {
		t.Errorf("a sees d early: %s", got)
	}
	sm.runTo(30*s + ms)
	if got := a.ls("nodes"); got != "00000003/ 00000004/" {
		t.Errorf("nodes after b left: %q", got)
	}
}

func TestLostDatagrams(t *testing.T) {
	// b joins at 0 and sends at multiples of 5 s; a hears each 1 ms later.
	type fate struct {
		drop  bool
		delay time.Duration
	}
	for _, tc := range []struct {
		name  string
		fates map[time.Duration]fate // of b's messages to a, by send time
		check map[time.Duration]string
		logs  int // suspect events in a's log
	}{
		{
			// Messages at 65 and 70 s lost: the one of 75 s arrives at
			// 75.001, exactly 15 s after the last heard (60.001). Datagrams
			// count before thresholds at the same instant: no suspect.
			name:  "two lost, third on time",
			fates: map[time.Duration]fate{65 * s: {drop: true}, 70 * s: {drop: true}},
			check: map[time.Duration]string{75*s + ms: "online", 75*s + 2*ms: "online"},
		},
		{
			// The last one heard before the losses was slow (arrived 60.050),
			// the third normal: age 14.951 s at arrival. No suspect.
			name:  "two lost, third faster than the last heard",
			fates: map[time.Duration]fate{60 * s: {delay: 50 * ms}, 65 * s: {drop: true}, 70 * s: {drop: true}},
			check: map[time.Duration]string{75*s + ms: "online"},
		},
		{
			// Lost, late, lost: 65 s lost, 70 s delayed 4 s (arrives 74 s),
			// 75 s lost, 80 s on time. Age measures from the arrival of the
			// late one, never past 6.001 s. No suspect.
			name:  "lost, late, lost",
			fates: map[time.Duration]fate{65 * s: {drop: true}, 70 * s: {delay: 4 * s}, 75 * s: {drop: true}},
			check: map[time.Duration]string{75*s + 1*ms: "online", 80*s + ms: "online"},
		},
		{
			// Two lost and the third 100 ms later than the last heard: for
			// those 100 ms b looks exactly like a node whose third message
			// is lost, and is suspect; the late one makes it online.
			name:  "two lost, third late",
			fates: map[time.Duration]fate{65 * s: {drop: true}, 70 * s: {drop: true}, 75 * s: {delay: 101 * ms}},
			check: map[time.Duration]string{75*s + ms: "suspect", 75*s + 100*ms: "suspect", 75*s + 101*ms: "online"},
			logs:  1,
		},
		{
			// Three lost: suspect at 75.001 until the 80 s message.
			name:  "three lost",
			fates: map[time.Duration]fate{65 * s: {drop: true}, 70 * s: {drop: true}, 75 * s: {drop: true}},
			check: map[time.Duration]string{75*s + ms: "suspect", 80*s + ms: "online"},
			logs:  1,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sm := newSim(t)
			b := sm.start(2, nil)
			a := sm.start(1, nil)
			sm.filter = func(d *delivery) (bool, time.Duration) {
				if strings.HasPrefix(d.msg(), "PROBE ") {
					return true, 0 // the thresholds alone (§4.3); probes are probe_test.go's
				}
				if d.from == b.addr && d.to == a.addr {
					if f, ok := tc.fates[sm.clock.Now().Sub(t0)]; ok {
						return f.drop, f.delay
					}
				}
				return false, ms
			}
			ats := slices.Sorted(func(yield func(time.Duration) bool) {
				for at := range tc.check {
					if !yield(at) {
						return
					}
				}
			})
			for _, at := range ats {
				sm.runTo(at)
				if got := a.status(b); got != tc.check[at] {
					t.Errorf("at %v: %s, want %s", at, got, tc.check[at])
				}
			}
			sm.runTo(100 * s)
			if got := len(sm.logged("(n2) is suspect")); got != tc.logs {
				t.Errorf("%d suspect events:\n%s", got, strings.Join(sm.log, "\n"))
			}
		})
	}
}

func TestLostAnnounce(t *testing.T) {
	t.Run("join announce", func(t *testing.T) {
		// b's join ANNOUNCE (at 2 s) never reaches a, so a does not answer
		// either. b hears a's HEARTBEAT at 5.001 s from an id it does not
		// know, prompts with its own ANNOUNCE (jittered), which a, new to
		// b, answers.
		sm := newSim(t)
		a := sm.start(1, nil)
		sm.run(2 * s)
		sm.filter = func(d *delivery) (bool, time.Duration) {
			return d.from == netip.MustParseAddr("10.0.0.2") && strings.HasPrefix(d.msg(), "ANNOUNCE") &&
				sm.clock.Now().Equal(t0.Add(2*s)), ms
		}
		b := sm.start(2, nil)
		sm.runTo(5*s + ms)
		if got := a.status(b); got != "gone" {
			t.Fatalf("a sees b before b's prompt: %s", got)
		}
		sm.runTo(5*s + 202*ms)
		if got := a.status(b); got != "online" {
			t.Errorf("a sees b: %s", got)
		}
		sm.runTo(5*s + 403*ms)
		if got := b.status(a); got != "online" {
			t.Errorf("b sees a: %s", got)
		}
		if got := b.stat("dropped_unknown_id"); got != 1 {
			t.Errorf("unknown_id %d", got)
		}
	})
	t.Run("reply", func(t *testing.T) {
		// a's answer to newcomer c is lost; c already listed by a, so c's
		// prompt goes unanswered: c learns of a from a's next periodic
		// ANNOUNCE at 15 s.
		sm := newSim(t)
		a := sm.start(1, nil)
		sm.run(2 * s)
		c := sm.start(3, nil)
		sm.filter = func(d *delivery) (bool, time.Duration) {
			now := sm.clock.Now().Sub(t0)
			return d.from == a.addr && now > 2*s && now < 3*s, ms
		}
		sm.runTo(15 * s)
		if got := c.status(a); got != "gone" {
			t.Fatalf("c sees a: %s", got)
		}
		sm.runTo(15*s + ms)
		if got := c.status(a); got != "online" {
			t.Errorf("c sees a: %s", got)
		}
	})
	t.Run("all lost for 14 s", func(t *testing.T) {
		// Everything between a and b is lost for the first 14 s after b
		// joins: b's next ANNOUNCE (15 s after its join) shows it.
		sm := newSim(t)
		a := sm.start(1, nil)
		sm.run(2 * s)
		sm.filter = func(d *delivery) (bool, time.Duration) {
			return d.from != d.to && sm.clock.Now().Before(t0.Add(16*s)), ms
		}
		b := sm.start(2, nil)
		sm.runTo(17*s - ms)
		if got := a.status(b); got != "gone" {
			t.Fatalf("a sees b: %s", got)
		}
		sm.runTo(17*s + ms)
		if got := a.status(b); got != "online" {
			t.Errorf("a sees b: %s", got)
		}
		sm.run(300 * ms)
		if got := b.status(a); got != "online" {
			t.Errorf("b sees a: %s", got)
		}
	})
}

func TestMoved(t *testing.T) {
	// A live id does not move: an ANNOUNCE of it from another address is
	// refused until the entry is dead; then it moves, and its HEARTBEATs
	// from the old address are dropped.
	sm := newSim(t)
	a := sm.start(1, nil)
	b := sm.start(2, nil)
	sm.run(3 * s)
	sm.kill(b)
	b2 := sm.start(7, func(c *Config) { c.ID = "00000002" })
	sm.run(ms)
	if got := a.read("nodes/00000002/addr"); got != "10.0.0.2\n" || a.stat("dropped_addr_conflict") != 1 {
		t.Errorf("addr %q\n%s", got, a.read("stats"))
	}
	// At 30 s b is dead; b2's next ANNOUNCE (at 30 s + 3 s) moves it.
	sm.runTo(33*s + 2*ms)
	if got := a.read("nodes/00000002/addr"); got != "10.0.0.7\n" {
		t.Errorf("addr after dead %q", got)
	}
	sm.run(1300 * ms)
	if got := b2.status(a); got != "online" {
		t.Errorf("moved b sees a: %s", got)
	}
	mismatch := a.stat("dropped_source_mismatch")
	sm.inject("10.0.0.2", a, "HEARTBEAT 00000002 0.00 0 0")
	sm.run(ms)
	if a.stat("dropped_source_mismatch") != mismatch+1 {
		t.Errorf("stats:\n%s", a.read("stats"))
	}
	if len(sm.logged("00000002 (n7) is online again, moved from 10.0.0.2 to 10.0.0.7")) != 1 {
		t.Errorf("log:\n%s", strings.Join(sm.log, "\n"))
	}
}

func TestContainers(t *testing.T) {
	sm := newSim(t)
	a := sm.start(1, nil)
	b := sm.start(2, nil)
	r := b.Containers()
	for _, c := range []string{"web", "db", "cache.1"} {
		if err := r.Add(c); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct{ name, err string }{
		{"db", `container "db" already registered`},
		{"", `bad container name: ""`},
		{".", `bad container name: "."`},
		{"..", `bad container name: ".."`},
		{"a/b", `bad container name: "a/b"`},
	} {
		if err := r.Add(tc.name); err == nil || err.Error() != tc.err {
			t.Errorf("Add(%q) = %v", tc.name, err)
		}
	}
	r.Remove("web")
	r.Remove("nothing")
	if got := strings.Join(r.List(), " "); got != "cache.1 db" {
		t.Errorf("List %q", got)
	}
	if got := b.ls("self/containers"); got != "cache.1 db" {
		t.Errorf("self/containers %q", got)
	}
	if got, err := b.Tree().ReadFile("self/containers/db"); err != nil || len(got) != 0 {
		t.Errorf("self/containers/db: %q, %v", got, err)
	}
	if got := b.read("self/containers/web"); !strings.HasSuffix(got, "file does not exist") {
		t.Errorf("removed container: %q", got)
	}
	sm.run(5*s + ms) // b's HEARTBEAT carries the count
	if got := a.read("nodes/00000002/resources"); !strings.HasSuffix(got, "containers 2\n") {
		t.Errorf("a's view:\n%s", got)
	}
	if got := a.ls("nodes/00000002/containers"); got != "" {
		t.Errorf("peer containers/ lists %q", got)
	}
	if got := b.read("self/resources"); got != "cpus 2\nmem 256M\nmem_free 128M\nload 0.25\ncontainers 2\n" {
		t.Errorf("self/resources:\n%s", got)
	}
}

func TestTree(t *testing.T) {
	sm := newSim(t)
	a := sm.start(1, nil)
	sm.start(2, nil)
	sm.run(ms)
	tr := a.Tree()
	dirs := map[string]string{
		".":                         "conflicts ctl events nodes/ self/ stats view",
		"self":                      "addr containers/ id name resources",
		"self/containers":           "",
		"nodes":                     "00000002/",
		"nodes/00000002":            "addr containers/ name resources status",
		"nodes/00000002/containers": "",
	}
	for name, want := range dirs {
		if isDir, err := tr.Stat(name); !isDir || err != nil {
			t.Errorf("Stat(%q) = %v, %v", name, isDir, err)
		}
		if got := a.ls(name); got != want {
			t.Errorf("ReadDir(%q) = %q, want %q", name, got, want)
		}
		_, err := tr.ReadFile(name)
		if !errors.Is(err, file.ErrIsDir) || !strings.HasSuffix(err.Error(), "is a directory") {
			t.Errorf("ReadFile(%q): %v", name, err)
		}
	}
	files := map[string]string{
		"ctl":                      "joined\nauth plain\n",
		"self/id":                  "00000001\n",
		"self/name":                "n1\n",
		"self/addr":                "10.0.0.1\n",
		"self/resources":           "cpus 2\nmem 256M\nmem_free 128M\nload 0.25\ncontainers 0\n",
		"nodes/00000002/name":      "n2\n",
		"nodes/00000002/addr":      "10.0.0.2\n",
		"nodes/00000002/status":    "online\n",
		"nodes/00000002/resources": "cpus 2\nmem 256M\nmem_free 128M\ncontainers 0\n",
	}
	for name, want := range files {
		if isDir, err := tr.Stat(name); isDir || err != nil {
			t.Errorf("Stat(%q) = %v, %v", name, isDir, err)
		}
		if got := a.read(name); got != want {
			t.Errorf("ReadFile(%q) = %q, want %q", name, got, want)
		}
		_, err := tr.ReadDir(name)
		if !errors.Is(err, file.ErrNotDir) || !strings.HasSuffix(err.Error(), "not a directory") {
			t.Errorf("ReadDir(%q): %v", name, err)
		}
		if name == "ctl" {
			continue
		}
		if err := tr.WriteFile(name, []byte("x")); !errors.Is(err, fs.ErrPermission) {
			t.Errorf("WriteFile(%q): %v", name, err)
		}
	}
	for _, name := range []string{"self", ".", "nodes/00000002"} {
		if err := tr.WriteFile(name, []byte("x")); !errors.Is(err, fs.ErrPermission) {
			t.Errorf("WriteFile(%q): %v", name, err)
		}
	}
	for _, name := range []string{"x", "ctl/x", "stats/x", "self/x", "self/id/x", "nodes/00000003",
		"nodes/00000002/x", "nodes/00000002/name/x", "nodes/00000002/containers/x", "self/containers/x"} {
		_, err := tr.Stat(name)
		if !errors.Is(err, fs.ErrNotExist) || !strings.HasSuffix(err.Error(), "file does not exist") {
			t.Errorf("Stat(%q): %v", name, err)
		}
		if _, err := tr.ReadFile(name); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("ReadFile(%q): %v", name, err)
		}
		if _, err := tr.ReadDir(name); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("ReadDir(%q): %v", name, err)
		}
		if err := tr.WriteFile(name, nil); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("WriteFile(%q): %v", name, err)
		}
	}
	for _, name := range []string{"", "/", "/ctl", "self/", "self//id", "./ctl", "nodes/..", "self/./id"} {
		if _, err := tr.Stat(name); !errors.Is(err, fs.ErrInvalid) {
			t.Errorf("Stat(%q): %v", name, err)
		}
	}
}

// treeServer is the kernel's ns.Server, restated: the package must not
// import it.
type treeServer interface {
	Stat(name string) (isDir bool, err error)
	ReadDir(name string) ([]string, error)
	ReadFile(name string) ([]byte, error)
	WriteFile(name string, data []byte) error
}

var _ treeServer = (*Tree)(nil)

func TestConfig(t *testing.T) {
	good := Config{ID: "0a1b2c3d", Addr: netip.MustParseAddr("10.0.2.15"), Prefix: netip.MustParsePrefix("10.0.2.15/24")}
	n, err := New(good, newPipeConn())
	if err != nil {
		t.Fatal(err)
	}
	c := n.cfg
	if c.Name != "fornax-0a1b2c3d" || c.Port != 9710 || c.Interval != 5*s || c.SuspectAfter != 15*s ||
		c.DeadAfter != 30*s || c.RemoveAfter != 60*s || c.MaxPeers != 1024 || c.ReplyJitter != 200*ms {
		t.Errorf("defaults: %+v", c)
	}
	if n.dst.String() != "10.0.2.255:9710" {
		t.Errorf("destination %v", n.dst)
	}
	for _, tc := range []struct {
		edit func(*Config)
		err  string
	}{
		{func(c *Config) { c.ID = "0A1B2C3D" }, `cluster: bad ID "0A1B2C3D": want 8 lowercase hex digits (see IDFromMAC)`},
		{func(c *Config) { c.ID = "" }, `cluster: bad ID "": want 8 lowercase hex digits (see IDFromMAC)`},
		{func(c *Config) { c.Name = "a b" }, `cluster: bad Name "a b": want 1-63 of [A-Za-z0-9._-]`},
		{func(c *Config) { c.Addr = netip.Addr{} }, `cluster: Addr invalid IP is not an IPv4 address`},
		{func(c *Config) { c.Addr = netip.MustParseAddr("::1") }, `cluster: Addr ::1 is not an IPv4 address`},
		{func(c *Config) { c.Prefix = netip.Prefix{} }, `cluster: Prefix invalid Prefix is not an IPv4 prefix`},
		{func(c *Config) { c.Prefix = netip.MustParsePrefix("10.0.3.0/24") }, `cluster: Addr 10.0.2.15 is not in Prefix 10.0.3.0/24`},
		{func(c *Config) { c.Prefix = netip.MustParsePrefix("10.0.2.15/31") }, `cluster: Prefix 10.0.2.15/31 leaves no room for hosts and broadcast: want /30 or shorter`},
		{func(c *Config) { c.Addr = netip.MustParseAddr("10.0.2.255") }, `cluster: Addr 10.0.2.255 is the network or broadcast address of 10.0.2.0/24`},
		{func(c *Config) { c.Addr = netip.MustParseAddr("10.0.2.0") }, `cluster: Addr 10.0.2.0 is the network or broadcast address of 10.0.2.0/24`},
		{func(c *Config) { c.Port = 70000 }, `cluster: bad Port 70000: want 1-65535`},
		{func(c *Config) { c.Interval = -1 }, `cluster: Interval is -1ns: want a positive duration`},
		{func(c *Config) { c.ReplyJitter = -ms }, `cluster: ReplyJitter is -1ms: want a positive duration`},
		{func(c *Config) { c.Interval = 15 * s }, `cluster: SuspectAfter (15s) must exceed Interval (15s)`},
		{func(c *Config) { c.DeadAfter = 10 * s }, `cluster: DeadAfter (10s) must exceed SuspectAfter (15s)`},
		{func(c *Config) { c.MaxPeers = -1 }, `cluster: MaxPeers is -1: want a positive number`},
	} {
		cfg := good
		tc.edit(&cfg)
		if _, err := New(cfg, newPipeConn()); err == nil || err.Error() != tc.err {
			t.Errorf("got %v\nwant %s", err, tc.err)
		}
	}
	if _, err := New(good, nil); err == nil {
		t.Error("nil conn accepted")
	}
}

// zeroSource makes every reply jitter 0 (Int64N of a constant 1 is 0), so
// Run tests need not move the clock for replies.
type zeroSource struct{}

func (zeroSource) Uint64() uint64 { return 1 }

func TestRun(t *testing.T) {
	clock := newFakeClock()
	conn := newPipeConn()
	n, err := New(Config{
		ID: "00000001", Name: "n1", Addr: netip.MustParseAddr("10.0.0.1"),
		Prefix: netip.MustParsePrefix("10.0.0.0/24"), Clock: clock, Rand: rand.New(zeroSource{}),
		Resources: func() Resources { return Resources{CPUs: 1, MemTotal: 1 << 20} }, NoJoinSync: true,
	}, conn)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- n.Run(ctx) }()
	expect := func(want string) {
		t.Helper()
		if got := <-conn.out; got != want {
			t.Fatalf("sent %q, want %q", got, want)
		}
	}
	expect("ANNOUNCE 00000001 10.0.0.1 n1 1 1048576 0 0")
	if err := n.Run(ctx); err == nil {
		t.Error("second Run did not fail")
	}
	// A newcomer is answered (jitter 0 here), AnswerEvery after our
	// last ANNOUNCE.
	conn.in <- pipePacket{[]byte("ANNOUNCE 00000002 10.0.0.2 n2 1 1 1 0\n"), udp(netip.MustParseAddr("10.0.0.2"))}
	waitListed(t, n, "00000002")
	clock.advance(time.Second)
	expect("ANNOUNCE 00000001 10.0.0.1 n1 1 1048576 0 0")
	// Periodic messages follow the fake clock. Timers are set for an
	// absolute time, so this does not race with the loop.
	clock.advance(4 * s)
	expect("HEARTBEAT 00000001 0.00 0 0")
	clock.advance(5 * s)
	expect("HEARTBEAT 00000001 0.00 0 0")
	// The peer's status follows too (reads apply the thresholds).
	clock.advance(5 * s)
	expect("ANNOUNCE 00000001 10.0.0.1 n1 1 1048576 0 0")
	if got, _ := n.Tree().ReadFile("nodes/00000002/status"); string(got) != "suspect\n" {
		t.Errorf("status %q", got)
	}
	// ctl from another goroutine.
	if err := n.Tree().WriteFile("ctl", []byte("name renamed\n")); err != nil {
		t.Fatal(err)
	}
	expect("ANNOUNCE 00000001 10.0.0.1 renamed 1 1048576 0 0")
	if err := n.Tree().WriteFile("ctl", []byte("leave\n")); err != nil {
		t.Fatal(err)
	}
	expect("LEAVE 00000001")
	clock.advance(60 * s)
	if err := n.Tree().WriteFile("ctl", []byte("join\n")); err != nil {
		t.Fatal(err)
	}
	expect("ANNOUNCE 00000001 10.0.0.1 renamed 1 1048576 0 0")
	clock.advance(5 * s)
	expect("HEARTBEAT 00000001 0.00 0 0")
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	select {
	case m := <-conn.out:
		t.Errorf("sent %q", m)
	default:
	}

	// Run again on the same node: it announces again; closing the conn
	// stops it with an error.
	go func() { done <- n.Run(context.Background()) }()
	expect("ANNOUNCE 00000001 10.0.0.1 renamed 1 1048576 0 0")
	conn.Close()
	if err := <-done; err == nil || !errors.Is(err, net.ErrClosed) || !strings.HasPrefix(err.Error(), "cluster: read: ") {
		t.Errorf("Run after Close: %v", err)
	}
}

// waitListed waits until Run has listed id online.
func waitListed(t *testing.T, n *Node, id string) {
	t.Helper()
	for {
		got, err := n.Tree().ReadFile("nodes/" + id + "/status")
		if string(got) == "online\n" {
			return
		}
		if !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("status of %s: %q, %v", id, got, err)
		}
		runtime.Gosched()
	}
}

func TestRunOversize(t *testing.T) {
	// Run reads one byte more than the limit, so a long datagram is
	// counted as oversize, not parsed truncated.
	clock := newFakeClock()
	conn := newPipeConn()
	n, err := New(Config{ID: "00000001", Addr: netip.MustParseAddr("10.0.0.1"),
		Prefix: netip.MustParsePrefix("10.0.0.0/24"), Clock: clock, Rand: rand.New(zeroSource{})}, conn)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- n.Run(ctx) }()
	<-conn.out
	src := udp(netip.MustParseAddr("10.0.0.2"))
	long := "ANNOUNCE 00000002 10.0.0.2 n2 1 1 1 0\n" + strings.Repeat(" ", 600)
	conn.in <- pipePacket{[]byte(long), src}
	conn.in <- pipePacket{[]byte{}, src} // empty: malformed (§6)
	// A valid newcomer after it: its reply shows the loop got this far.
	conn.in <- pipePacket{[]byte("ANNOUNCE 00000003 10.0.0.3 n3 1 1 1 0"), udp(netip.MustParseAddr("10.0.0.3"))}
	waitListed(t, n, "00000003")
	clock.advance(time.Second) // AnswerEvery after the join ANNOUNCE
	<-conn.out
	cancel()
	<-done
	b, _ := n.Tree().ReadFile("stats")
	if !strings.Contains(string(b), "dropped_oversize 1\n") || !strings.Contains(string(b), "dropped_malformed 1\n") ||
		!strings.Contains(string(b), "received 3\n") || !strings.Contains(string(b), "accepted 1\n") {
		t.Errorf("stats:\n%s", b)
	}
}

func TestSnapshots(t *testing.T) {
	// Readers in other goroutines see whole updates (and -race checks
	// the locking).
	sm := newSim(t)
	a := sm.start(1, nil)
	b := sm.start(2, nil)
	sm.run(ms)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var bad []string
	var mu sync.Mutex
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			for _, f := range []string{"self/name", "nodes/00000002/name"} {
				got := a.read(f)
				if f == "nodes/00000002/name" && strings.HasPrefix(got, "error") {
					continue
				}
				if got != "n1\n" && got != "alpha\n" && got != "n2\n" && got != "beta\n" {
					mu.Lock()
					bad = append(bad, got)
					mu.Unlock()
				}
			}
			a.ls("nodes")
			if err := statsConsistent(a.read("stats")); err != "" {
				mu.Lock()
				bad = append(bad, err)
				mu.Unlock()
			}
			a.read("nodes/00000002/resources")
		}
	}()
	// And one that reads only stats, to catch its counters mid-update.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := statsConsistent(a.read("stats")); err != "" {
				mu.Lock()
				bad = append(bad, err)
				mu.Unlock()
			}
		}
	}()
	for i := range 200 {
		name := []string{"alpha", "n1"}[i%2]
		if err := a.Rename(name); err != nil {
			t.Fatal(err)
		}
		if err := b.Rename([]string{"beta", "n2"}[i%2]); err != nil {
			t.Fatal(err)
		}
		// Datagrams of every fate, so that each moves other counters.
		for _, d := range slices.Repeat([]struct{ from, msg string }{
			{"10.0.0.9", "HEARTBEAT 00000009 0.00 0 0"},
			{"192.168.1.9", "LEAVE 00000002"},
			{"10.0.0.9", "PING"},
			{"10.0.0.9", "ANNOUNCE 0000000x 10.0.0.9 x 1 1 1 0"},
			{"10.0.0.9", "LEAVE 00000002"},
			{"10.0.0.9", "ANNOUNCE 00000009 10.0.0.9 x 1 1 1 0"},
		}, 5) {
			sm.inject(d.from, a, d.msg)
		}
		sm.run(100 * ms)
	}
	if a.stat("received") < 200*32 {
		t.Errorf("stats:\n%s", a.read("stats"))
	}
	close(stop)
	wg.Wait()
	if len(bad) > 0 {
		t.Errorf("torn reads: %q", bad)
	}
}

// maxSource makes every reply jitter the whole ReplyJitter (200 ms), so
// that tests know when a reply is due.
type maxSource struct{}

func (maxSource) Uint64() uint64 { return ^uint64(0) }

func maxJitter(c *Config) { c.Rand = rand.New(maxSource{}) }

func TestPrompt(t *testing.T) {
	// A HEARTBEAT from an unknown id prompts an ANNOUNCE, jittered as an
	// answer, at most once per interval (5 s) and not while the table is
	// full (docs/protocol.md §4.1). a joined at 0: periodic ANNOUNCEs at
	// 0 and 15 s, HEARTBEATs at 5 and 10 s.
	const hb = "HEARTBEAT 00000009 0.00 0 0"
	t.Run("once per interval", func(t *testing.T) {
		sm := newSim(t)
		a := sm.start(1, maxJitter)
		// Prompts at 1 s and 7 s; 3 s and 5.5 s are within 5 s of the
		// first, 8 s within 5 s of the second.
		for _, at := range []time.Duration{1 * s, 3 * s, 5500 * ms, 7 * s, 8 * s} {
			sm.injectAt(at, "10.0.0.9", a, hb)
		}
		sm.runTo(14 * s)
		if got := a.verbs(); got != "0s ANNOUNCE, 1.2s ANNOUNCE, 5s HEARTBEAT, 7.2s ANNOUNCE, 10s HEARTBEAT" {
			t.Error(got)
		}
		if got := a.stat("dropped_unknown_id"); got != 5 {
			t.Errorf("unknown_id %d", got)
		}
	})
	t.Run("table full", func(t *testing.T) {
		sm := newSim(t)
		a := sm.start(1, func(c *Config) { maxJitter(c); c.MaxPeers = 1 })
		sm.injectAt(1*s, "10.0.0.2", a, "ANNOUNCE 00000002 10.0.0.2 b 1 1 1 0") // answered at 1.2 s
		sm.injectAt(2*s, "10.0.0.9", a, hb)                                     // full: no prompt
		sm.injectAt(3*s, "10.0.0.2", a, "LEAVE 00000002")                       // room again
		// The HEARTBEAT at 2 s prompted nothing, so this one is the first
		// prompt of the interval.
		sm.injectAt(4*s, "10.0.0.9", a, hb)
		sm.runTo(14 * s)
		if got := a.verbs(); got != "0s ANNOUNCE, 1.2s ANNOUNCE, 4.2s ANNOUNCE, 5s HEARTBEAT, 10s HEARTBEAT" {
			t.Error(got)
		}
		if got := a.stat("dropped_unknown_id"); got != 2 {
			t.Errorf("unknown_id %d", got)
		}
	})
}

func TestReplyCancelled(t *testing.T) {
	// While an answer is pending, any ANNOUNCE the node sends (periodic,
	// rename) counts as the answer (docs/protocol.md §4.1). a's answers
	// come 200 ms after their trigger.
	const newcomer = "ANNOUNCE 00000009 10.0.0.9 x 1 1 1 0"
	t.Run("periodic ANNOUNCE", func(t *testing.T) {
		sm := newSim(t)
		a := sm.start(1, maxJitter)
		sm.injectAt(14900*ms, "10.0.0.9", a, newcomer) // answer due at 15.1 s
		sm.runTo(21 * s)
		if got := a.verbs(); got != "0s ANNOUNCE, 5s HEARTBEAT, 10s HEARTBEAT, 15s ANNOUNCE, 20s HEARTBEAT" {
			t.Error(got)
		}
	})
	t.Run("periodic HEARTBEAT", func(t *testing.T) {
		// A HEARTBEAT is no answer.
		sm := newSim(t)
		a := sm.start(1, maxJitter)
		sm.injectAt(4900*ms, "10.0.0.9", a, newcomer) // answer due at 5.1 s
		sm.runTo(11 * s)
		if got := a.verbs(); got != "0s ANNOUNCE, 5s HEARTBEAT, 5.1s ANNOUNCE, 10s HEARTBEAT" {
			t.Error(got)
		}
	})
	t.Run("rename", func(t *testing.T) {
		sm := newSim(t)
		a := sm.start(1, maxJitter)
		sm.injectAt(1*s, "10.0.0.9", a, newcomer) // answer due at 1.2 s
		sm.runTo(1100 * ms)
		if err := a.Rename("renamed"); err != nil {
			t.Fatal(err)
		}
		sm.runTo(6 * s)
		if got := a.verbs(); got != "0s ANNOUNCE, 1.1s ANNOUNCE, 5s HEARTBEAT" {
			t.Error(got)
		}
		if got := a.conn.sent[1].msg; !strings.Contains(got, " renamed ") {
			t.Errorf("rename sent %q", got)
		}
	})
}

func TestHeartbeatNoReply(t *testing.T) {
	// Only an ANNOUNCE from a new, suspect or dead peer is answered
	// (docs/protocol.md §4.1): a HEARTBEAT that brings a suspect or dead
	// peer back online is not.
	sm := newSim(t)
	a := sm.start(1, maxJitter)
	sm.injectAt(1*s, "10.0.0.2", a, "ANNOUNCE 00000002 10.0.0.2 b 1 1 1 0") // answered at 1.2 s
	for _, c := range []struct {
		at    time.Duration
		state string
	}{
		{20500 * ms, "suspect"}, // last heard 19.5 s before
		{55500 * ms, "dead"},    // 35 s before
	} {
		sm.runTo(c.at - ms)
		if got := a.read("nodes/00000002/status"); got != c.state+"\n" {
			t.Fatalf("at %v: %q, want %s", c.at, got, c.state)
		}
		sm.injectAt(c.at, "10.0.0.2", a, "HEARTBEAT 00000002 0.50 1 0")
		sm.runTo(c.at)
		if got := a.read("nodes/00000002/status"); got != "online\n" {
			t.Fatalf("at %v: %q after the HEARTBEAT", c.at, got)
		}
	}
	sm.runTo(59 * s)
	want := "0s ANNOUNCE, 1.2s ANNOUNCE, 5s HEARTBEAT, 10s HEARTBEAT, 15s ANNOUNCE, 20s HEARTBEAT, " +
		"25s HEARTBEAT, 30s ANNOUNCE, 35s HEARTBEAT, 40s HEARTBEAT, 45s ANNOUNCE, 50s HEARTBEAT, 55s HEARTBEAT"
	// Probes of the suspect peer (§4.5) are no answers: leave them out.
	got := strings.Split(a.verbs(), ", ")
	got = slices.DeleteFunc(got, func(v string) bool { return strings.HasSuffix(v, " PROBE") })
	if got := strings.Join(got, ", "); got != want {
		t.Errorf("sent %s\nwant %s", got, want)
	}
}

func TestDropsLeft(t *testing.T) {
	// A node that has left drops everything as left, before any other
	// check (docs/protocol.md §6, step 1), foreign sources included.
	sm := newSim(t)
	a := sm.start(1, nil)
	sm.run(ms)
	a.Leave()
	sm.run(ms) // a's own LEAVE comes back: dropped as left
	for i, tc := range []struct{ from, msg string }{
		{"192.168.1.9", "ANNOUNCE 00000009 192.168.1.9 x 1 1 1 0"},
		{"10.0.0.0", "LEAVE 00000002"},
		{"10.0.0.255", "LEAVE 00000002"},
		{"10.0.0.9", strings.Repeat("x", 600)},
		{"10.0.0.9", "ANNOUNCE 00000009  10.0.0.9 x 1 1 1 0"},
		{"10.0.0.9", "PING 00000009"},
		{"10.0.0.9", "ANNOUNCE 00000001 10.0.0.9 evil 1 1 1 0"},
		{"10.0.0.1", "ANNOUNCE 00000009 10.0.0.1 evil 1 1 1 0"},
		{"10.0.0.9", "HEARTBEAT 00000009 0.00 0 0"},
		{"10.0.0.9", "ANNOUNCE 00000009 10.0.0.9 x 1 1 1 0"},
	} {
		sm.inject(tc.from, a, tc.msg)
		sm.run(ms)
		if got := a.stat("dropped_left"); got != i+2 {
			t.Errorf("%q from %s: dropped_left %d, want %d", tc.msg, tc.from, got, i+2)
		}
	}
	var other []string
	for l := range strings.Lines(a.read("stats")) {
		if strings.HasPrefix(l, "dropped_") && !strings.HasPrefix(l, "dropped_left ") && !strings.HasSuffix(l, " 0\n") {
			other = append(other, strings.TrimSuffix(l, "\n"))
		}
	}
	if len(other) > 0 || a.stat("dropped") != 11 || a.stat("accepted") != 0 || a.ls("nodes") != "" {
		t.Errorf("stats:\n%s", a.read("stats"))
	}
}

// runNode makes a node on a pipeConn with zero reply jitter for tests of
// Run, calls Run in a goroutine and returns the node, its conn and the
// function that stops Run and checks what it returned. Call it inside a
// synctest bubble, so that synctest.Wait sees when Run is idle.
func runNode(t *testing.T, clock *fakeClock, edit func(*Config)) (*Node, *pipeConn, func()) {
	t.Helper()
	conn := newPipeConn()
	cfg := Config{
		ID: "00000001", Name: "n1", Addr: netip.MustParseAddr("10.0.0.1"),
		Prefix: netip.MustParsePrefix("10.0.0.0/24"), Clock: clock, Rand: rand.New(zeroSource{}),
		Resources: func() Resources { return Resources{CPUs: 1, MemTotal: 1 << 20} }, NoJoinSync: true,
	}
	if edit != nil {
		edit(&cfg)
	}
	n, err := New(cfg, conn)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- n.Run(ctx) }()
	return n, conn, func() {
		t.Helper()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
}

// outbox returns what the node has sent and not yet taken from conn.out.
// Call it after synctest.Wait.
func outbox(conn *pipeConn) []string {
	var l []string
	for {
		select {
		case m := <-conn.out:
			l = append(l, m)
		default:
			return l
		}
	}
}

func TestRunJoinWakes(t *testing.T) {
	// Join under Run restarts the schedule at once, even when Run is idle
	// with no timer (as after Leave): the HEARTBEAT due 5 s after the
	// join goes out then, and nothing is sent on the old schedule.
	synctest.Test(t, func(t *testing.T) {
		clock := newFakeClock()
		n, conn, stop := runNode(t, clock, nil)
		defer stop()
		const announce = "ANNOUNCE 00000001 10.0.0.1 n1 1 1048576 0 0"
		synctest.Wait()
		if got := outbox(conn); !slices.Equal(got, []string{announce}) {
			t.Fatalf("sent %q at start", got)
		}
		clock.advance(2 * s)
		n.Leave()
		synctest.Wait() // Run has seen the leave: it waits for nothing
		if got := outbox(conn); !slices.Equal(got, []string{"LEAVE 00000001"}) {
			t.Fatalf("sent %q on leave", got)
		}
		clock.advance(5 * s) // 7 s
		n.Join()
		synctest.Wait()
		if got := outbox(conn); !slices.Equal(got, []string{announce}) {
			t.Fatalf("sent %q on join", got)
		}
		for _, c := range []struct {
			at   time.Duration
			want []string
		}{
			{10 * s, nil}, // the old schedule
			{12 * s, []string{"HEARTBEAT 00000001 0.00 0 0"}},
			{17 * s, []string{"HEARTBEAT 00000001 0.00 0 0"}},
			{22 * s, []string{announce}},
		} {
			clock.set(t0.Add(c.at))
			synctest.Wait()
			if got := outbox(conn); !slices.Equal(got, c.want) {
				t.Errorf("at %v sent %q, want %q", c.at, got, c.want)
			}
		}
	})
}

func TestRunDatagramsBeforeThresholds(t *testing.T) {
	// Datagrams Run has read when a threshold falls due count before it
	// (docs/protocol.md §4.3): peers whose HEARTBEATs wait in Run's queue
	// at the instant they would turn suspect stay online. The node is
	// held inside its periodic send at 15 s while the HEARTBEATs arrive
	// and the clock moves to 16 s, when the peers, last heard at 1 s,
	// would turn suspect. Run's select chooses at random among ready
	// cases, so a loop that did not first handle what is queued would let
	// the timer win, and the peers turn suspect, with probability
	// 1 - 2^-peers.
	synctest.Test(t, func(t *testing.T) {
		const peers = 40 // less than Run's queue
		clock := newFakeClock()
		var (
			hold    atomic.Bool
			release = make(chan struct{})
			logMu   sync.Mutex
			logs    []string
		)
		n, conn, stop := runNode(t, clock, func(c *Config) {
			c.Resources = func() Resources {
				if hold.Load() {
					<-release
				}
				return Resources{CPUs: 1}
			}
			c.Logf = func(format string, args ...any) {
				logMu.Lock()
				logs = append(logs, fmt.Sprintf(format, args...))
				logMu.Unlock()
			}
		})
		defer stop()
		peer := func(i int) (string, net.Addr) {
			return fmt.Sprintf("%08x", 0x100+i), udp(netip.AddrFrom4([4]byte{10, 0, 0, byte(10 + i)}))
		}
		synctest.Wait()
		clock.set(t0.Add(1 * s))
		for i := range peers {
			id, src := peer(i)
			a := src.(*net.UDPAddr).IP
			conn.in <- pipePacket{fmt.Appendf(nil, "ANNOUNCE %s %v p%d 1 1 1 0\n", id, a, i), src}
		}
		synctest.Wait()
		outbox(conn)
		if got := len(n.Peers()); got != peers {
			t.Fatalf("%d peers", got)
		}
		for _, at := range []time.Duration{5 * s, 10 * s} {
			clock.set(t0.Add(at))
			synctest.Wait()
			outbox(conn)
		}
		hold.Store(true)
		clock.set(t0.Add(15 * s))
		synctest.Wait() // Run is held in its send of 15 s
		for i := range peers {
			id, src := peer(i)
			conn.in <- pipePacket{fmt.Appendf(nil, "HEARTBEAT %s 0.00 1 0\n", id), src}
		}
		synctest.Wait() // the reader has queued them all
		clock.set(t0.Add(16 * s))
		hold.Store(false)
		close(release)
		synctest.Wait()
		if got := outbox(conn); len(got) != 1 || !strings.HasPrefix(got[0], "ANNOUNCE ") {
			t.Errorf("sent %q", got)
		}
		for _, p := range n.Peers() {
			if p.Status != Online || !p.LastHeard.Equal(t0.Add(16*s)) {
				t.Errorf("%s: %v, last heard at %v", p.ID, p.Status, p.LastHeard.Sub(t0))
			}
		}
		logMu.Lock()
		defer logMu.Unlock()
		for _, l := range logs {
			if strings.Contains(l, "suspect") || strings.Contains(l, "online again") {
				t.Errorf("log: %s", l)
			}
		}
	})
}

// statsConsistent checks a stats file against docs/protocol.md §8.2:
// every line in order, dropped the sum of the dropped_ lines, received
// accepted + echo + dropped. It returns what is wrong, or "".
func statsConsistent(text string) string {
	names := []string{"received", "accepted", "echo", "dropped"}
	for r := range numReasons {
		names = append(names, "dropped_"+Reason(r).String())
	}
	names = append(names, "sent", "send_errors", "peers", "answers", "refutes", "log_held",
		"probes", "probes_held", "probe_answers", "probe_answers_held",
		"asks", "asks_held", "asks_refused", "ask_probes", "relays", "relays_refused",
		"syncs", "seed_tries", "sync_answers", "syncs_held",
		"state_listed", "state_candidates", "state_refused", "intros", "pushes")
	for _, dir := range []string{"accepted", "sent"} {
		for k := Announce; int(k) < len(verbs); k++ {
			names = append(names, dir+"_"+strings.ToLower(k.String()))
		}
	}
	names = append(names, "events_lost")
	v := make(map[string]uint64)
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) != len(names) {
		return "lines: " + text
	}
	for i, l := range lines {
		k, x, ok := strings.Cut(l, " ")
		n, err := strconv.ParseUint(x, 10, 64)
		if !ok || k != names[i] || err != nil {
			return "line " + l + ": " + text
		}
		v[k] = n
	}
	var dropped uint64
	for r := range numReasons {
		dropped += v["dropped_"+Reason(r).String()]
	}
	if v["dropped"] != dropped || v["received"] != v["accepted"]+v["echo"]+v["dropped"] {
		return "counters do not add up: " + text
	}
	for _, dir := range []string{"accepted", "sent"} {
		var sum uint64
		for k := Announce; int(k) < len(verbs); k++ {
			sum += v[dir+"_"+strings.ToLower(k.String())]
		}
		if sum != v[dir] {
			return dir + " is not the sum of its verbs: " + text
		}
	}
	return ""
}

func TestDropLog(t *testing.T) {
	// Drops are logged with their reason and source, at most once per
	// reason and interval; every one is counted.
	sm := newSim(t)
	a := sm.start(1, nil)
	sm.injectAt(1*s, "10.0.0.9", a, "HELLO there")
	sm.injectAt(2*s, "10.0.0.9", a, "HELLO there")
	sm.injectAt(3*s, "10.0.0.9", a, "ANNOUNCE 00000009 10.0.0.8 x 1 1 1 0")
	sm.injectAt(5900*ms, "10.0.0.9", a, "HELLO there")
	sm.injectAt(6*s, "10.0.0.9", a, "HELLO there")
	sm.runTo(7 * s)
	got := sm.logged("dropped a datagram")
	want := []string{
		"1s 10.0.0.1 cluster: dropped a datagram from 10.0.0.9:9710: unknown_verb",
		"3s 10.0.0.1 cluster: dropped a datagram from 10.0.0.9:9710: addr_mismatch",
		"6s 10.0.0.1 cluster: dropped a datagram from 10.0.0.9:9710: unknown_verb",
	}
	if len(got) != len(want) {
		t.Fatalf("logged:\n%s", strings.Join(got, "\n"))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("line %d: %q, want prefix %q", i, got[i], want[i])
		}
	}
	if n := a.stat("dropped_unknown_verb"); n != 4 {
		t.Errorf("dropped_unknown_verb %d", n)
	}
}
