package vmtest

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"fornax/cluster"
)

// waitClaimed waits until vm's kernel log says it claimed a name and
// returns that name.
func waitClaimed(t *testing.T, vm *VM) string {
	t.Helper()
	_, km := poll(t, vm, "cat /dev/kmesg", 20*time.Second, 200*time.Millisecond, contains("mdns: claimed "))
	m := regexp.MustCompile(`mdns: claimed (\S+)`).FindAllStringSubmatch(km, -1)
	return m[len(m)-1][1]
}

// goodbyeBound is how soon a goodbye must take a node out of avahi:
// a record with TTL 0 stays 1 s in a cache (RFC 6762 §10.1), a leave
// reaches the responder within nodeinfo.Poll (250 ms), and 3 s leaves
// room for a loaded machine.
const goodbyeBound = 3 * time.Second

// TestMDNS: cluster VMs seen by a real avahi-daemon on the bridge.
// avahi-browse lists every VM's services with TXT id, profile and auth;
// avahi-resolve (timed) and getent through nss-mdns resolve their
// names; a leave removes a VM from a running avahi-browse and a join
// brings it back; two VMs booted with one name= end with distinct
// names, both resolvable, the clash in /mdns/conflicts and the kernel
// log of the one that lost; halt says goodbye too.
func TestMDNS(t *testing.T) {
	k := kernel(t, "FORNAX_KERNEL_CLUSTER")
	if os.Geteuid() != 0 {
		t.Skip("VM TEST SKIPPED: the virtual LAN needs root (network namespaces)")
	}
	if err := AvahiMissing(); err != nil {
		t.Skipf("VM TEST SKIPPED: %v; make deps", err)
	}
	lan := startLAN(t, k, 3)
	avahi := StartAvahi(t, Namespace, "fxbr0")

	ids := map[string]string{} // instance -> node id
	for i, vm := range lan.VMs {
		if host := waitClaimed(t, vm); host != Name(i+1)+".local" {
			t.Errorf("%s claimed %s", vm.Name, host)
		}
		if got := command(t, vm, "cat /mdns/host"); got != Name(i+1)+".local\n" {
			t.Errorf("%s: /mdns/host %q", vm.Name, got)
		}
		ids[Name(i+1)] = strings.TrimSpace(command(t, vm, "cat /cluster/self/id"))
	}

	t.Run("browse", func(t *testing.T) {
		lines := avahi.BrowseUntil(t, "_fornax._udp", 3, 10*time.Second)
		for _, f := range lines {
			name := f[3]
			i := slices.Index([]string{Name(1), Name(2), Name(3)}, name)
			switch {
			case i < 0:
				t.Errorf("avahi-browse lists %q, not a VM", name)
			case f[6] != name+".local" || f[7] != Addr(i+1) || f[8] != fmt.Sprint(cluster.DefaultPort):
				t.Errorf("%s: host %s address %s port %s, want %s.local %s %d", name, f[6], f[7], f[8], name, Addr(i+1), cluster.DefaultPort)
			case !strings.Contains(f[9], `"id=`+ids[name]+`"`) || !strings.Contains(f[9], `"profile=default"`) || !strings.Contains(f[9], `"auth=plain"`):
				t.Errorf("%s: TXT %s, want id=%s profile=default auth=plain", name, f[9], ids[name])
			}
		}
		t.Logf("avahi-browse -rpt _fornax._udp:\n%s", JoinBrowse(lines))
		for _, s := range []struct {
			typ  string
			port int
			txt  string
		}{{"_9p._tcp", 564, ""}, {"_http._tcp", 9711, `"path=/"`}, {"_prometheus-http._tcp", 9711, `"path=/metrics"`}} {
			for _, f := range avahi.BrowseUntil(t, s.typ, 3, 10*time.Second) {
				if f[8] != fmt.Sprint(s.port) || !strings.Contains(f[9], s.txt) {
					t.Errorf("%s of %s: port %s TXT %s, want %d %s", s.typ, f[3], f[8], f[9], s.port, s.txt)
				}
			}
		}
	})

	t.Run("resolve", func(t *testing.T) {
		for i := range lan.VMs {
			host := Name(i+1) + ".local"
			if a, err := avahi.Resolve(host); err != nil || a != Addr(i+1) {
				t.Errorf("avahi-resolve %s: %s, %v; want %s", host, a, err, Addr(i+1))
			}
			if a, err := avahi.Getent(host); err != nil || a != Addr(i+1) {
				t.Errorf("getent hosts %s: %s, %v; want %s", host, a, err, Addr(i+1))
			}
		}
		var took []time.Duration
		for range 20 {
			t0 := time.Now()
			a, err := avahi.Resolve(Name(2) + ".local")
			took = append(took, time.Since(t0))
			if err != nil || a != Addr(2) {
				t.Fatalf("avahi-resolve %s.local: %s, %v", Name(2), a, err)
			}
		}
		slices.Sort(took)
		t.Logf("avahi-resolve -n %s.local: median %v over 20 (min %v, max %v)", Name(2),
			took[10].Round(10*time.Microsecond), took[0].Round(10*time.Microsecond), took[19].Round(10*time.Microsecond))
		t.Logf("%s /mdns/stats:\n%s", Name(2), command(t, lan.VMs[1], "cat /mdns/stats"))
	})

	t.Run("leave-join", func(t *testing.T) {
		watch := avahi.Watch(t, "_fornax._udp")
		watch.WaitAll(t, "+;", []string{Name(1), Name(2), Name(3)}, 10*time.Second)
		t0 := time.Now()
		command(t, lan.VMs[2], "echo leave > /cluster/ctl")
		at := watch.Wait(t, "-;", Name(3), 10*time.Second)
		t.Logf("avahi-browse removed %s %v after the leave", Name(3), at.Sub(t0).Round(time.Millisecond))
		if at.Sub(t0) > goodbyeBound {
			t.Errorf("removed %v after the leave, want within %v", at.Sub(t0).Round(time.Millisecond), goodbyeBound)
		}
		if got := command(t, lan.VMs[2], "cat /mdns/host"); got != "" {
			t.Errorf("/mdns/host after the leave: %q, want empty", got)
		}
		t0 = time.Now()
		command(t, lan.VMs[2], "echo join > /cluster/ctl")
		at = watch.Wait(t, "+;", Name(3), 10*time.Second)
		t.Logf("avahi-browse lists %s again %v after the join", Name(3), at.Sub(t0).Round(time.Millisecond))
	})

	t.Run("same-name", func(t *testing.T) {
		twins := startTwins(t, k)
		var hosts []string
		for _, vm := range twins {
			hosts = append(hosts, waitClaimed(t, vm))
		}
		slices.Sort(hosts)
		if !slices.Equal(hosts, []string{"twin-2.local", "twin.local"}) {
			t.Fatalf("claimed %q, want twin.local and twin-2.local", hosts)
		}
		lost := 0
		for i, vm := range twins {
			c := command(t, vm, "cat /mdns/conflicts")
			host := strings.TrimSpace(command(t, vm, "cat /mdns/host"))
			km := command(t, vm, "cat /dev/kmesg")
			if c == "" {
				continue
			}
			lost++
			other := twinAddr(1 - i)
			if !strings.Contains(c, " twin.local "+other+" ") || !strings.HasSuffix(c, " twin-2.local\n") || host != "twin-2.local" {
				t.Errorf("%s: /mdns/conflicts %q, /mdns/host %q", twinAddr(i), c, host)
			}
			if !strings.Contains(km, "mdns: twin.local is taken by "+other) {
				t.Errorf("%s: kmesg does not tell the clash:\n%s", twinAddr(i), km)
			}
			t.Logf("%s: /mdns/conflicts %q", twinAddr(i), c)
		}
		if lost != 1 {
			t.Errorf("%d VMs list a conflict in /mdns/conflicts, want 1", lost)
		}
		// The cluster reports the clash of two of its own too: two ids
		// going by one name (protocol §8).
		for i, vm := range twins {
			_, c := poll(t, vm, "cat /cluster/conflicts", 10*time.Second, 200*time.Millisecond, contains("twin "))
			if f := strings.Fields(c); len(f) != 3 || f[0] != "twin" {
				t.Errorf("%s: /cluster/conflicts %q, want twin and two ids", twinAddr(i), c)
			}
		}
		for _, h := range hosts {
			a, err := avahi.Resolve(h)
			if err != nil || (a != twinAddr(0) && a != twinAddr(1)) {
				t.Errorf("avahi-resolve %s: %s, %v", h, a, err)
			}
			if a, err := avahi.Getent(h); err != nil || (a != twinAddr(0) && a != twinAddr(1)) {
				t.Errorf("getent hosts %s: %s, %v", h, a, err)
			}
		}
		if a1, _ := avahi.Resolve("twin.local"); a1 != "" {
			if a2, _ := avahi.Resolve("twin-2.local"); a1 == a2 {
				t.Errorf("twin.local and twin-2.local both resolve to %s", a1)
			}
		}

		// halt: the goodbye goes out before the machine stops.
		watch := avahi.Watch(t, "_fornax._udp")
		watch.Wait(t, "+;", "twin-2", 10*time.Second)
		loser := twins[0]
		if strings.TrimSpace(command(t, twins[1], "cat /mdns/host")) == "twin-2.local" {
			loser = twins[1]
		}
		t0 := time.Now()
		if err := loser.Type("halt\r"); err != nil {
			t.Fatal(err)
		}
		at := watch.Wait(t, "-;", "twin-2", 10*time.Second)
		t.Logf("avahi-browse removed twin-2 %v after halt", at.Sub(t0).Round(time.Millisecond))
		if at.Sub(t0) > goodbyeBound {
			t.Errorf("removed %v after halt, want within %v", at.Sub(t0).Round(time.Millisecond), goodbyeBound)
		}
	})
}

// twinAddr is the address of the i-th VM startTwins boots.
func twinAddr(i int) string { return fmt.Sprintf("10.0.0.%d", 30+i) }

// startTwins boots two cluster VMs both named twin on the LAN's bridge,
// on taps of their own (fxtwin0, fxtwin1), and waits for their prompts.
func startTwins(t *testing.T, k string) []*VM {
	t.Helper()
	var vms []*VM
	for i := range 2 {
		tap := fmt.Sprintf("fxtwin%d", i)
		for _, args := range [][]string{
			{"-n", Namespace, "tuntap", "add", "dev", tap, "mode", "tap"},
			{"-n", Namespace, "link", "set", tap, "master", "fxbr0", "up"},
		} {
			if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
				t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		}
		t.Cleanup(func() { exec.Command("ip", "-n", Namespace, "link", "del", tap).Run() })
		vms = append(vms, startVM(t, Config{
			Kernel: k,
			Name:   "twin",
			Append: []string{"ip=" + twinAddr(i) + "/24", "gw=10.0.0.1"},
			Netns:  Namespace,
			Args: []string{"-netdev", "tap,id=net0,ifname=" + tap + ",script=no,downscript=no",
				"-device", fmt.Sprintf("virtio-net-device,netdev=net0,mac=52:54:00:f0:01:%02x", i)},
		}))
	}
	for _, vm := range vms {
		if _, err := vm.WaitReady(60 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	return vms
}
