package main

import (
	"os"
	"os/exec"
	"testing"
	"time"

	"fornax/cluster"
)

// TestEndToEnd runs a small benchmark, memberlist and Fornax's fast
// profile with 4 nodes, in a network namespace of its own: the test
// binary runs itself again inside it, as the command does, so that every
// socket memberlist opens, from any goroutine, is in the namespace.
// It needs root, and skips without.
func TestEndToEnd(t *testing.T) {
	if os.Getenv(nsEnv) == "" {
		if err := needRoot(); err != nil {
			t.Skip(err)
		}
		ns := "fornax-benchtest-" + time.Now().Format("150405.000")
		if err := makeNamespace(ns, 8); err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := removeNamespace(ns); err != nil {
				t.Error(err)
			}
		}()
		cmd := exec.Command("ip", "netns", "exec", ns, os.Args[0], "-test.run=^TestEndToEnd$", "-test.v")
		cmd.Env = append(os.Environ(), nsEnv+"="+ns)
		out, err := cmd.CombinedOutput()
		t.Logf("in namespace %s:\n%s", ns, out)
		if err != nil {
			t.Fatalf("the run in namespace %s failed: %v", ns, err)
		}
		return
	}

	if err := checkFanOut(6); err != nil {
		t.Fatal(err)
	}
	p := plan{reps: 1, crashes: 1, window: time.Second, lossFor: 2 * time.Second, lossRate: 0.1,
		settle: 500 * time.Millisecond, converge: time.Minute, eventWait: 30 * time.Second, crashWait: time.Minute}
	rec, ls := new(recorder), new(loss)
	fast, _ := cluster.LookupProfile("fast")
	for _, l := range []lan{newMemberlistLAN(rec, ls), &fornaxLAN{profile: fast, rec: rec, loss: ls}} {
		r, err := bench(l, 4, p, rec, ls, t.Logf)
		if err != nil {
			t.Fatal(err)
		}
		r.name = l.name()
		for what, ts := range map[string][]timing{"join": r.join, "lists": r.lists, "leave": r.leave,
			"suspect": r.suspect, "dead": r.dead} {
			if len(ts) != 1 || ts[0].seen != ts[0].of || ts[0].of < 3 {
				t.Errorf("%s: %s: %+v, want one measurement seen by all", l.name(), what, ts)
			}
		}
		if r.perNode.sentP == 0 || r.perNode.recvP == 0 || r.heapPerNode <= 0 {
			t.Errorf("%s: traffic %+v, heap %v per node: nothing measured", l.name(), r.perNode, r.heapPerNode)
		}
		if r.lossDropped == 0 {
			t.Errorf("%s: nothing dropped under loss", l.name())
		}
		t.Logf("\n%s", table(4, []*result{r}, p))
	}
}
