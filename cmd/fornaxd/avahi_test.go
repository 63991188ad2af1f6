package main

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"fornax/cluster"
	"fornax/internal/vmtest"
)

// avahiLAN is a LAN of network namespaces made by the test: a client
// with a bridge and a real avahi-daemon on it (vmtest.StartAvahi: a
// private D-Bus, nothing of the host's touched), and one namespace per
// fornaxd on a veth to that bridge.
type avahiLAN struct {
	client string
	nodes  []string
	avahi  *vmtest.Avahi
}

func newAvahiLAN(t *testing.T, n int) *avahiLAN {
	if os.Geteuid() != 0 {
		t.Skip("TEST SKIPPED: needs root, to make network namespaces")
	}
	if err := vmtest.AvahiMissing(); err != nil {
		t.Skipf("TEST SKIPPED: %v", err)
	}
	tag := fmt.Sprintf("%d", os.Getpid()%100000)
	l := &avahiLAN{client: "fxav" + tag + "c"}
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	ip("netns", "add", l.client)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", l.client).Run() })
	ip("-n", l.client, "link", "add", "fxbr0", "type", "bridge")
	ip("-n", l.client, "addr", "add", "10.98.0.1/24", "dev", "fxbr0")
	ip("-n", l.client, "link", "set", "fxbr0", "up")
	ip("-n", l.client, "link", "set", "lo", "up")
	for i := range n {
		ns := fmt.Sprintf("fxav%sn%d", tag, i)
		ip("netns", "add", ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
		ip("link", "add", "fxavtmp", "netns", ns, "type", "veth", "peer", "name", fmt.Sprintf("fxp%d", i), "netns", l.client)
		ip("-n", ns, "link", "set", "fxavtmp", "name", "fxd0")
		ip("-n", ns, "addr", "add", fmt.Sprintf("10.98.0.%d/24", 10+i), "dev", "fxd0")
		ip("-n", ns, "link", "set", "fxd0", "up")
		ip("-n", ns, "link", "set", "lo", "up")
		ip("-n", l.client, "link", "set", fmt.Sprintf("fxp%d", i), "master", "fxbr0")
		ip("-n", l.client, "link", "set", fmt.Sprintf("fxp%d", i), "up")
		l.nodes = append(l.nodes, ns)
	}
	l.avahi = vmtest.StartAvahi(t, l.client, "fxbr0")
	return l
}

// TestAvahi: two fornaxd started with one name, seen by a real
// avahi-daemon on the LAN: avahi-browse lists both with their TXT
// records under distinct names, avahi-resolve and getent (nss-mdns)
// resolve both names, and a SIGTERM removes a node from avahi-browse.
func TestAvahi(t *testing.T) {
	l := newAvahiLAN(t, 2)
	var ds []*proc
	for _, ns := range l.nodes {
		d := startDaemon(t, ns, "-iface", "fxd0", "-name", "twin", "-profile", "fast")
		ds = append(ds, d)
	}
	var hosts []string
	for _, d := range ds {
		d.log.Wait(t, "mdns: claimed ", 15*time.Second)
		s := d.log.String()
		i := strings.LastIndex(s, "mdns: claimed ")
		hosts = append(hosts, strings.Fields(s[i+len("mdns: claimed "):])[0])
	}
	stopped := strings.TrimSuffix(hosts[1], ".local") // the instance the SIGTERM below takes away
	slices.Sort(hosts)
	if hosts[0] != "twin-2.local" || hosts[1] != "twin.local" {
		t.Fatalf("claimed %q, want twin.local and twin-2.local", hosts)
	}
	conflicted := 0
	for _, d := range ds {
		if strings.Contains(d.log.String(), "mdns: twin.local is taken by 10.98.0.") {
			conflicted++
		}
	}
	if conflicted != 1 {
		t.Errorf("%d logs report the clash, want 1", conflicted)
	}
	// And so does /mdns/conflicts over 9P, on the node that lost.
	lines9p := 0
	for i := range ds {
		f := vmtest.Mount9P(t, l.client, fmt.Sprintf("10.98.0.%d:564", 10+i))
		c := vmtest.Read9P(t, f, "/mdns/conflicts")
		host := strings.TrimSpace(vmtest.Read9P(t, f, "/mdns/host"))
		if c != "" {
			lines9p++
			if !strings.Contains(c, " twin.local 10.98.0.") || !strings.HasSuffix(c, " twin-2.local\n") || host != "twin-2.local" {
				t.Errorf("/mdns/conflicts %q, /mdns/host %q", c, host)
			}
		}
	}
	if lines9p != 1 {
		t.Errorf("%d nodes list a conflict in /mdns/conflicts, want 1", lines9p)
	}

	// avahi-browse lists both, resolved, with id, profile and auth.
	lines := l.avahi.BrowseUntil(t, "_fornax._udp", 2, 10*time.Second)
	for _, f := range lines {
		if f[8] != fmt.Sprint(cluster.DefaultPort) || !strings.Contains(f[9], `"profile=fast"`) || !strings.Contains(f[9], `"auth=plain"`) || !strings.Contains(f[9], `"id=`) {
			t.Errorf("avahi-browse line %q: want port 9710 and TXT id, profile=fast, auth=plain", strings.Join(f, ";"))
		}
	}
	t.Logf("avahi-browse -rpt _fornax._udp:\n%s", vmtest.JoinBrowse(lines))

	// avahi-resolve, 20 times each, timed; getent through nss-mdns.
	for _, h := range hosts {
		var took []time.Duration
		for range 20 {
			t0 := time.Now()
			a, err := l.avahi.Resolve(h)
			took = append(took, time.Since(t0))
			if err != nil || !strings.HasPrefix(a, "10.98.0.1") {
				t.Fatalf("avahi-resolve -n %s: %s, %v", h, a, err)
			}
		}
		slices.Sort(took)
		t.Logf("avahi-resolve -n %s: median %v over 20 (min %v, max %v)", h, took[10].Round(10*time.Microsecond), took[0].Round(10*time.Microsecond), took[19].Round(10*time.Microsecond))
		if a, err := l.avahi.Getent(h); err != nil || !strings.HasPrefix(a, "10.98.0.1") {
			t.Errorf("getent hosts %s: %s, %v", h, a, err)
		}
	}

	// SIGTERM: the goodbye takes the node out of avahi's cache; a
	// running avahi-browse prints its removal ("-;" line) at once.
	watch := l.avahi.Watch(t, "_fornax._udp")
	watch.WaitAll(t, "+;", []string{"twin", "twin-2"}, 10*time.Second) // its first listing
	t0 := time.Now()
	if code := ds[1].stop(t); code != 0 {
		t.Errorf("fornaxd exited %d", code)
	}
	at := watch.Wait(t, "-;", stopped, 5*time.Second)
	t.Logf("avahi-browse removed %s %v after the SIGTERM", stopped, at.Sub(t0).Round(time.Millisecond))
	// A goodbye leaves the record 1 s in a cache (RFC 6762 §10.1): 1 s
	// is the floor, 3 s room for a loaded machine.
	if at.Sub(t0) > 3*time.Second {
		t.Errorf("removed %v after the SIGTERM, want about 1 s", at.Sub(t0).Round(time.Millisecond))
	}
	if lines = l.avahi.Browse(t, "_fornax._udp"); len(lines) != 1 {
		t.Errorf("after the SIGTERM avahi-browse -rpt lists %q, want 1 node", lines)
	}
}
