package vmtest

import (
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// poll runs line on vm every interval until ok accepts the answer, and
// returns when that was (the midpoint of the command's round trip).
func poll(t *testing.T, vm *VM, line string, timeout, interval time.Duration, ok func(string) bool) (time.Time, string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		t0 := time.Now()
		out := command(t, vm, line)
		at := t0.Add(time.Since(t0) / 2)
		if ok(out) {
			return at, out
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %q: gave up after %v; last answer %q", vm.Name, line, timeout, out)
		}
		time.Sleep(interval)
	}
}

func contains(s string) func(string) bool {
	return func(o string) bool { return strings.Contains(o, s) }
}
func lacks(s string) func(string) bool  { return func(o string) bool { return !strings.Contains(o, s) } }
func equals(s string) func(string) bool { return func(o string) bool { return o == s } }

// sniffer records when each VM last sent a datagram from port 9710,
// broadcast or unicast (fast-join answers go to one node), as seen on
// the VMs' taps.
type sniffer struct {
	mu   sync.Mutex
	last map[string]time.Time
}

func sniff(t *testing.T, vms int) *sniffer {
	s := &sniffer{last: map[string]time.Time{}}
	for i := 1; i <= vms; i++ {
		r, err := OpenRaw(Namespace, TapName(i))
		if err != nil {
			t.Fatal(err)
		}
		stop, done := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(done)
			for {
				select {
				case <-stop:
					return
				default:
				}
				err := r.Watch(200*time.Millisecond, func(f []byte) {
					if p, ok := ParseFrame(f); ok && p.Proto == 17 && p.SrcPort == 9710 {
						s.mu.Lock()
						s.last[p.Src.String()] = time.Now()
						s.mu.Unlock()
					}
				})
				if err != nil { // the tap went away (a restart)
					return
				}
			}
		}()
		t.Cleanup(func() { close(stop); <-done; r.Close() })
	}
	return s
}

func (s *sniffer) lastFrom(ip string) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last[ip]
}

// TestCluster is the design's own verification (issue 4): two VMs find
// each other, watch each other die and come back. Its phases run in
// order on the same two VMs, each as a subtest; a phase that stops
// (t.Fatal) stops those after it, which would run on what it left.
func TestCluster(t *testing.T) {
	lan := startLAN(t, kernel(t, "FORNAX_KERNEL_CLUSTER"), 2)
	up := time.Now() // both prompts are up: the launcher waited for them
	sn := sniff(t, 2)
	vm1, vm2 := lan.VMs[0], lan.VMs[1]
	id1 := strings.TrimSpace(command(t, vm1, "cat /cluster/self/id"))
	id2 := strings.TrimSpace(command(t, vm2, "cat /cluster/self/id"))
	if !regexp.MustCompile(`^[0-9a-f]{8}$`).MatchString(id1) || !regexp.MustCompile(`^[0-9a-f]{8}$`).MatchString(id2) || id1 == id2 {
		t.Fatalf("ids %q %q", id1, id2)
	}
	phase := func(name string, f func(t *testing.T)) {
		done := false // f returned rather than stopped
		t.Run(name, func(t *testing.T) { f(t); done = true })
		if !done {
			t.FailNow()
		}
	}

	// 3. each lists the other within 5 s, with the right figures
	phase("discovery", func(t *testing.T) {
		for _, c := range []struct {
			vm       *VM
			peer     string
			name, ip string
		}{{vm1, id2, Name(2), Addr(2)}, {vm2, id1, Name(1), Addr(1)}} {
			at, _ := poll(t, c.vm, "ls /cluster/nodes/", 5*time.Second, 50*time.Millisecond, contains(c.peer+"/"))
			t.Logf("%s lists %s %v after both prompts", c.vm.Name, c.name, at.Sub(up).Round(time.Millisecond))
			dir := "/cluster/nodes/" + c.peer + "/"
			if got := command(t, c.vm, "cat "+dir+"name"); got != c.name+"\n" {
				t.Errorf("%s name: %q", dir, got)
			}
			if got := command(t, c.vm, "cat "+dir+"addr"); got != c.ip+"\n" {
				t.Errorf("%s addr: %q", dir, got)
			}
			if got := command(t, c.vm, "cat "+dir+"resources"); !regexp.MustCompile(`^cpus 1\nmem \d+M\nmem_free \d+M\n`).MatchString(got) {
				t.Errorf("%s resources: %q", dir, got)
			}
			if got := command(t, c.vm, "cat "+dir+"status"); got != "online\n" {
				t.Errorf("%s status: %q", dir, got)
			}
		}
		if got := command(t, vm1, "ls /cluster/nodes/"); got != id2+"/\n" {
			t.Errorf("nodes/ of %s: %q (a node lists only its peers)", vm1.Name, got)
		}
	})

	// rename shows on the other within 1 s; the prompt follows
	phase("rename", func(t *testing.T) {
		vm2.Type("echo name fornax-x > /cluster/ctl\r")
		t0 := time.Now()
		if _, err := vm2.Expect("fornax-x% ", 5*time.Second); err != nil {
			t.Fatal(err)
		}
		vm2.Name = "fornax-x"
		at, _ := poll(t, vm1, "cat /cluster/nodes/"+id2+"/name", 3*time.Second, 20*time.Millisecond, equals("fornax-x\n"))
		t.Logf("rename seen by the peer after %v", at.Sub(t0).Round(time.Millisecond))
		if d := at.Sub(t0); d > time.Second {
			t.Errorf("rename took %v to show", d)
		}
		if got := command(t, vm2, "cat /dev/sysname"); got != "fornax-x\n" {
			t.Errorf("sysname after rename: %q", got)
		}
		vm2.Type("echo name " + Name(2) + " > /cluster/ctl\r")
		if _, err := vm2.Expect(Name(2)+"% ", 5*time.Second); err != nil {
			t.Fatal(err)
		}
		vm2.Name = Name(2)
	})

	// containers registered on a node reach its peers with the next
	// message (at most one 5 s interval)
	phase("containers", func(t *testing.T) {
		if out := command(t, vm2, "container add web-1"); out != "" {
			t.Errorf("container add: %q", out)
		}
		if got := command(t, vm2, "ls /cluster/self/containers/"); got != "web-1\n" {
			t.Errorf("self/containers/: %q", got)
		}
		for line, want := range map[string]string{"container add web-1": `already registered`, "container add a/b": "bad container name", "container up x": "unknown subcommand"} {
			if got := command(t, vm2, line); !strings.Contains(got, want) {
				t.Errorf("%q: %q, want %q", line, got, want)
			}
		}
		poll(t, vm1, "cat /cluster/nodes/"+id2+"/resources", 6*time.Second, 200*time.Millisecond, contains("containers 1\n"))
		command(t, vm2, "container rm web-1")
	})

	// bad ctl messages fail and change nothing
	phase("bad-ctl", func(t *testing.T) {
		for _, c := range []struct{ line, want string }{
			{"echo jion > /cluster/ctl", `bad ctl message: "jion"` + "\n"},
			{"echo name a/b > /cluster/ctl", `bad name: "a/b"` + "\n"},
			{"echo hi > /cluster/self/name", "permission denied\n"},
			{"cat /cluster/nodes/0000zzzz/name", "file does not exist\n"},
		} {
			if got := command(t, vm2, c.line); !strings.HasSuffix(got, c.want) {
				t.Errorf("%q: %q, want it to end in %q", c.line, got, c.want)
			}
		}
		if got := command(t, vm2, "cat /cluster/ctl"); got != "joined\nauth plain\n" {
			t.Errorf("ctl after bad writes: %q", got)
		}
	})

	// garbage from the host is counted and changes no listing
	phase("garbage", func(t *testing.T) {
		before := command(t, vm1, "cat /cluster/stats")
		listing := command(t, vm1, "ls /cluster/nodes/")
		for _, junk := range []string{
			"HELLO world", "ANNOUNCE zzzzzzzz 10.0.0.1 evil 1 1 1 0", "ANNOUNCE 0badc0de 10.0.0.99 spoof 1 1024 512 0",
			"HEARTBEAT 0badc0de 0.5 1 0", "LEAVE " + id2, strings.Repeat("A", 600), "ANNOUNCE " + id1 + " 10.0.0.1 me 1 1 1 0",
		} {
			out, err := InNamespace(5*time.Second, "sh", "-c", "printf '%s' \""+junk+"\" | socat -u - UDP4-DATAGRAM:10.0.0.255:9710,broadcast")
			if err != nil {
				t.Fatalf("socat: %v %s", err, out)
			}
		}
		time.Sleep(500 * time.Millisecond)
		after := command(t, vm1, "cat /cluster/stats")
		t.Logf("stats after garbage:\n%s", after)
		if field(before, "dropped") >= field(after, "dropped") || field(after, "dropped")-field(before, "dropped") < 7 {
			t.Errorf("drops did not count the 7 garbage datagrams: before\n%s\nafter\n%s", before, after)
		}
		if got := command(t, vm1, "ls /cluster/nodes/"); got != listing {
			t.Errorf("listing changed: %q -> %q", listing, got)
		}
		if got := command(t, vm1, "cat /cluster/nodes/"+id2+"/status"); got != "online\n" {
			t.Errorf("forged LEAVE changed %s: %q", id2, got)
		}
	})

	// leave: gone from the other at once; join: back at once
	phase("leave-join", func(t *testing.T) {
		t0 := time.Now()
		command(t, vm2, "echo leave > /cluster/ctl")
		at, _ := poll(t, vm1, "ls /cluster/nodes/", 3*time.Second, 20*time.Millisecond, lacks(id2))
		t.Logf("leave seen after %v", at.Sub(t0).Round(time.Millisecond))
		if got := command(t, vm2, "cat /cluster/ctl"); got != "left\nauth plain\n" {
			t.Errorf("ctl after leave: %q", got)
		}
		if got := command(t, vm2, "ls /cluster/nodes/"); got != "" {
			t.Errorf("nodes/ after leave: %q", got)
		}
		t0 = time.Now()
		command(t, vm2, "echo join > /cluster/ctl")
		at, _ = poll(t, vm1, "ls /cluster/nodes/", 3*time.Second, 20*time.Millisecond, contains(id2))
		t.Logf("join seen after %v", at.Sub(t0).Round(time.Millisecond))
		poll(t, vm2, "ls /cluster/nodes/", 3*time.Second, 20*time.Millisecond, contains(id1))
	})

	// 4. kill VM 2: suspect at 15 s, dead at 30 s after its last
	// message, removed 60 s after that
	status := "cat /cluster/nodes/" + id2 + "/status"
	phase("death", func(t *testing.T) {
		time.Sleep(2 * time.Second)
		if err := lan.Kill(2); err != nil {
			t.Fatal(err)
		}
		killed := time.Now()
		time.Sleep(200 * time.Millisecond)
		last := sn.lastFrom(Addr(2))
		if last.IsZero() || killed.Sub(last) > 6*time.Second {
			t.Fatalf("no recent datagram from %s seen on the bridge (last %v before the kill)", Addr(2), killed.Sub(last))
		}
		ts, _ := poll(t, vm1, status, 20*time.Second, 100*time.Millisecond, equals("suspect\n"))
		td, _ := poll(t, vm1, status, 20*time.Second, 100*time.Millisecond, equals("dead\n"))
		tr, _ := poll(t, vm1, "ls /cluster/nodes/", 65*time.Second, 200*time.Millisecond, lacks(id2))
		t.Logf("after the last message: suspect at %.2f s, dead at %.2f s; removed %.2f s after dead",
			ts.Sub(last).Seconds(), td.Sub(last).Seconds(), tr.Sub(td).Seconds())
		for _, c := range []struct {
			what      string
			got, want float64
		}{{"suspect", ts.Sub(last).Seconds(), 15}, {"dead", td.Sub(last).Seconds(), 30}, {"removed", tr.Sub(td).Seconds(), 60}} {
			if c.got < c.want-1 || c.got > c.want+1 {
				t.Errorf("%s at %.2f s, want %v s ± 1 s", c.what, c.got, c.want)
			}
		}
	})

	// 5. restart it: back as online under the same id
	phase("restart", func(t *testing.T) {
		if err := lan.Restart(2); err != nil {
			t.Fatal(err)
		}
		prompt := time.Now()
		vm2 = lan.VMs[1]
		at, _ := poll(t, vm1, "ls /cluster/nodes/", 5*time.Second, 20*time.Millisecond, contains(id2+"/"))
		t.Logf("discovery: restarted %s listed on %s %v after its prompt", Name(2), Name(1), at.Sub(prompt).Round(time.Millisecond))
		if got := command(t, vm1, status); got != "online\n" {
			t.Errorf("status after restart: %q", got)
		}
		if got := strings.TrimSpace(command(t, vm2, "cat /cluster/self/id")); got != id2 {
			t.Errorf("restarted under id %q, was %q", got, id2)
		}
	})
}

func field(stats, name string) int {
	m := regexp.MustCompile(`(?m)^` + name + ` (\d+)$`).FindStringSubmatch(stats)
	if m == nil {
		return -1
	}
	n := 0
	for _, c := range m[1] {
		n = n*10 + int(c-'0')
	}
	return n
}

// TestNoClusterInPlainImage: built without the tag, the image holds no
// symbol of the cluster package; built with it, it does.
func TestNoClusterInPlainImage(t *testing.T) {
	plain, cl := kernel(t, "FORNAX_KERNEL"), kernel(t, "FORNAX_KERNEL_CLUSTER")
	count := func(image string) int {
		out, err := exec.Command("go", "tool", "nm", image).Output()
		if err != nil {
			t.Fatalf("go tool nm %s: %v", image, err)
		}
		n := 0
		for _, l := range strings.Split(string(out), "\n") {
			if strings.Contains(l, " fornax/cluster.") {
				n++
			}
		}
		return n
	}
	if n := count(plain); n != 0 {
		t.Errorf("%s has %d symbols of fornax/cluster", plain, n)
	}
	if n := count(cl); n == 0 {
		t.Errorf("%s has no symbol of fornax/cluster", cl)
	}
}
