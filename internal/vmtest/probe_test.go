package vmtest

import (
	"os/exec"
	"strings"
	"testing"
	"time"
)

// bcastFlood turns the bridge's flooding of broadcast frames to tap on
// or off (the kernel of the test machine has no tc filters to be finer).
func bcastFlood(t *testing.T, tap, onOff string) {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", Namespace, "bridge", "link", "set", "dev", tap, "bcast_flood", onOff)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("bridge link set dev %s bcast_flood %s: %v\n%s", tap, onOff, err, out)
	}
}

// TestClusterProbe: every broadcast toward fornax-01, fornax-02's
// included, is lost for 20 s (the bridge floods no broadcast to its tap;
// unicast passes), in the fast profile, where 3 s of silence make a peer
// suspect and 6 s dead. fornax-01 finds fornax-02 quiet 2.1 s after the
// last message it heard, probes it, and the unicast HEARTBEAT that
// answers keeps it online: it is never suspect, let alone dead
// (docs/protocol.md §4.5, ask before you suspect). Without probes it
// would be dead 6 s into the loss.
func TestClusterProbe(t *testing.T) {
	lan := startLANOpts(t, kernel(t, "FORNAX_KERNEL_CLUSTER"), 2, Options{Append: []string{"profile=fast"}})
	ids := vmNodeIDs(t, lan)
	waitMeshOnline(t, lan, ids, 10*time.Second)
	vm1 := lan.VMs[0]
	before := clusterStatsAll(t, lan)

	tap := TapName(1)
	bcastFlood(t, tap, "off")
	start := time.Now()
	seen := map[string]int{}
	for time.Since(start) < 20*time.Second {
		st := strings.TrimSpace(command(t, vm1, "cat /cluster/nodes/"+ids[1]+"/status"))
		seen[st]++
		time.Sleep(100 * time.Millisecond)
	}
	bcastFlood(t, tap, "on")
	after := clusterStatsAll(t, lan)
	probes, answers := statDelta(before, after, "probes"), statDelta(before, after, "probe_answers")
	kmesg := command(t, vm1, "cat /dev/kmesg")
	suspects := strings.Count(kmesg, ids[1]+" ("+Name(2)+") is suspect")
	t.Logf("20 s without fornax-02's broadcasts at fornax-01: status polls %v; fornax-01 logged %d suspect spells, "+
		"sent %d probes; fornax-02 sent %d answers; probes_held %d, probe_answers_held %d",
		seen, suspects, probes[0], answers[1], statDelta(before, after, "probes_held")[0],
		statDelta(before, after, "probe_answers_held")[1])
	if seen["dead"] > 0 || strings.Contains(kmesg, ids[1]+" ("+Name(2)+") is dead") {
		t.Errorf("fornax-02 was dead at fornax-01; kmesg:\n%s", kmesg)
	}
	if seen["suspect"] > 0 || suspects > 0 {
		t.Errorf("fornax-02 was suspect at fornax-01 (%d polls, %d spells logged): its probes should have kept it online", seen["suspect"], suspects)
	}
	// 20 s of loss are at least 5 quiet spells of 2.1 s plus a round trip.
	if probes[0] < 5 || answers[1] < 5 {
		t.Errorf("probes %d, answers %d: want at least 5 each (was the filter in place?)", probes[0], answers[1])
	}
	if seen["online"] == 0 {
		t.Errorf("fornax-02 never online at fornax-01: %v", seen)
	}
}
