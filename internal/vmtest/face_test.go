package vmtest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// facePort is the HTTP face's port on every node.
const facePort = "9711"

// promQuery asks the Prometheus at 127.0.0.1:9090 of the LAN's namespace
// for an instant vector and returns its samples: labels and value.
func promQuery(t *testing.T, q string) []struct {
	Metric map[string]string
	Value  float64
} {
	t.Helper()
	b, err := HTTPGet(Namespace, "127.0.0.1:9090", "/api/v1/query?query="+url.QueryEscape(q))
	if err != nil {
		return nil
	}
	var r struct {
		Status string
		Data   struct {
			Result []struct {
				Metric map[string]string
				Value  [2]any
			}
		}
	}
	if err := json.Unmarshal(b, &r); err != nil || r.Status != "success" {
		t.Fatalf("Prometheus: %q: %v %s", q, err, b)
	}
	var out []struct {
		Metric map[string]string
		Value  float64
	}
	for _, s := range r.Data.Result {
		v, _ := strconv.ParseFloat(fmt.Sprint(s.Value[1]), 64)
		out = append(out, struct {
			Metric map[string]string
			Value  float64
		}{s.Metric, v})
	}
	return out
}

// upTargets is the set of instances Prometheus has up == 1.
func upTargets(t *testing.T) map[string]bool {
	up := map[string]bool{}
	for _, s := range promQuery(t, "up == 1") {
		up[s.Metric["instance"]] = true
	}
	return up
}

// TestFacePrometheus: a real Prometheus, given one VM's /sd and nothing
// else, finds and scrapes every node of a cluster of four VMs and
// fornaxd; a VM killed goes from its targets once the cluster has it
// dead. Every node's /metrics passes promtool check metrics.
func TestFacePrometheus(t *testing.T) {
	k := kernel(t, "FORNAX_KERNEL_CLUSTER")
	prom, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("VM TEST SKIPPED: prometheus is not installed (make deps installs Debian's prometheus)")
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("VM TEST SKIPPED: promtool is not installed (make deps installs Debian's prometheus)")
	}
	bin := buildFornaxd(t)
	lan := startLANOpts(t, k, 4, Options{Append: []string{"profile=fast"}, Memory: "64M"})
	host := attachLinuxHost(t)
	fd := startFornaxd(t, bin, host, "-name", "linux-01", "-profile", "fast", "-listen", "none")
	ids := vmNodeIDs(t, lan)
	for _, id := range ids {
		fd.log.Wait(t, "cluster: "+id+" ", 15*time.Second)
	}
	nodes := []string{Addr(1), Addr(2), Addr(3), Addr(4), fornaxdAddr}

	for _, a := range nodes {
		b, err := HTTPGet(Namespace, a+":"+facePort, "/metrics")
		if err != nil {
			t.Fatalf("%s /metrics: %v", a, err)
		}
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = strings.NewReader(string(b))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool check metrics on %s's /metrics: %v\n%s", a, err, out)
		}
		t.Logf("%s /metrics: %d bytes, %d lines, promtool check metrics: ok", a, len(b), strings.Count(string(b), "\n"))
	}

	dir := t.TempDir()
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: fornax
    http_sd_configs:
      - url: http://%s:%s/sd
        refresh_interval: 1s
    relabel_configs:
      - source_labels: [__meta_fornax_name]
        target_label: node
`, Addr(1), facePort)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	log := NewLogBuffer()
	cmd := exec.Command("ip", "netns", "exec", Namespace, prom, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address=127.0.0.1:9090")
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("prometheus' log:\n%s", log.String())
		}
	}()
	var ready time.Time
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if _, err := HTTPGet(Namespace, "127.0.0.1:9090", "/-/ready"); err == nil {
			ready = time.Now()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Prometheus not ready after 30 s")
		}
	}
	want := map[string]bool{}
	for _, a := range nodes {
		want[a+":"+facePort] = true
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		up := upTargets(t)
		if len(up) == len(want) && func() bool {
			for a := range want {
				if !up[a] {
					return false
				}
			}
			return true
		}() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus has up == 1 for %v, want %v", up, want)
		}
	}
	t.Logf("Prometheus, given %s/sd: all %d nodes up %v after it was ready (scrape interval 1 s, sd refresh 1 s)",
		Addr(1), len(want), time.Since(ready).Round(10*time.Millisecond))
	if s := promQuery(t, "count(up == 1)"); len(s) != 1 || s[0].Value != 5 {
		t.Errorf("count(up == 1): %+v, want 5", s)
	}
	if s := promQuery(t, `fornax_cluster_peers{status="online",node="fornax-01"}`); len(s) != 1 || s[0].Value != 4 {
		t.Errorf("fornax-01's online peers as scraped: %+v, want 4", s)
	}

	faceLatency(t)
	faceStreams(t, lan, host, ids[2])

	// SIGKILL fornax-04: the fast profile has it dead 6 s after its last
	// message; then /sd drops it and Prometheus with it.
	killed := Addr(4) + ":" + facePort
	t0 := time.Now()
	if err := lan.Kill(4); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		b, err := HTTPGet(Namespace, Addr(1)+":"+facePort, "/sd")
		if err == nil && !strings.Contains(string(b), killed) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("fornax-04 still in /sd 30 s after SIGKILL")
		}
	}
	inSD := time.Since(t0)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		up := upTargets(t)
		if !up[killed] && len(up) == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus still has %v 20 s after fornax-04 left /sd", up)
		}
	}
	t.Logf("SIGKILL of fornax-04: gone from /sd after %v (fast profile: dead 6 s), from Prometheus' up targets after %v",
		inSD.Round(10*time.Millisecond), time.Since(t0).Round(10*time.Millisecond))
}

// row is a line of the page's table: the member's id and status.
type row struct{ ID, Status string }

// TestFaceBrowser: headless Chromium shows a VM's page; a VM killed and
// started again shows on it within a second of the node knowing it.
func TestFaceBrowser(t *testing.T) {
	k := kernel(t, "FORNAX_KERNEL_CLUSTER")
	if _, err := exec.LookPath("chromium"); err != nil {
		t.Skip("VM TEST SKIPPED: chromium is not installed (make deps installs Debian's chromium)")
	}
	lan := startLANOpts(t, k, 2, Options{Append: []string{"profile=fast"}, Memory: "64M"})
	ids := vmNodeIDs(t, lan)
	page := "http://" + Addr(1) + ":" + facePort + "/"
	c, err := StartChromium(Namespace, page)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rows := func() []row {
		var r []row
		if err := c.Eval(`[...document.querySelectorAll("#members tr")].map(r => ({ID: r.dataset.id, Status: r.dataset.status}))`, &r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	// What the node says, beside what the page shows, polled together.
	nodeSays := func() map[string]string {
		b, err := HTTPGet(Namespace, Addr(1)+":"+facePort, "/v1/members")
		if err != nil {
			t.Fatal(err)
		}
		var ms []struct{ ID, Status string }
		if err := json.Unmarshal(b, &ms); err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		for _, x := range ms {
			m[x.ID] = x.Status
		}
		return m
	}
	pageSays := func() map[string]string {
		m := map[string]string{}
		for _, r := range rows() {
			m[r.ID] = r.Status
		}
		return m
	}
	// until waits for fornax-02's status to be want on the node and on
	// the page, and returns how long after the node the page had it.
	until := func(want string, within time.Duration) time.Duration {
		t.Helper()
		var atNode, atPage time.Time
		for deadline := time.Now().Add(within); atNode.IsZero() || atPage.IsZero(); time.Sleep(50 * time.Millisecond) {
			now := time.Now()
			if atNode.IsZero() && nodeSays()[ids[1]] == want {
				atNode = now
			}
			if atPage.IsZero() && pageSays()[ids[1]] == want {
				atPage = now
			}
			if now.After(deadline) {
				t.Fatalf("fornax-02 %s: node %v, page %v (rows %+v)", want, !atNode.IsZero(), !atPage.IsZero(), rows())
			}
		}
		return max(atPage.Sub(atNode), 0)
	}
	until("online", 20*time.Second)
	if r := rows(); len(r) != 2 || r[0] != (row{ids[0], "self"}) {
		t.Fatalf("the page's table: %+v", r)
	}
	var conn string
	c.Eval(`document.getElementById("conn").textContent`, &conn)
	if conn != "live" {
		t.Errorf("the page says %q, want live (its event stream)", conn)
	}

	if err := lan.Kill(2); err != nil {
		t.Fatal(err)
	}
	for _, st := range []string{"suspect", "dead"} {
		lag := until(st, 20*time.Second)
		t.Logf("fornax-02 killed: %s on the page %v after the node had it (polled every 50 ms)", st, lag.Round(time.Millisecond))
		if lag > time.Second {
			t.Errorf("the page showed %s %v after the node", st, lag)
		}
	}
	if err := lan.Restart(2); err != nil {
		t.Fatal(err)
	}
	lag := until("online", 20*time.Second)
	t.Logf("fornax-02 started again: online on the page %v after the node had it", lag.Round(time.Millisecond))
	if lag > time.Second {
		t.Errorf("the page showed the join %v after the node", lag)
	}
	var events []string
	c.Eval(`[...document.querySelectorAll("#events div")].map(d => d.textContent)`, &events)
	t.Logf("the page's events: %q", events)
	if len(events) < 3 {
		t.Errorf("the page's event list: %q, want suspect, dead, joined or restarted", events)
	}
	// FORNAX_SCREENSHOT=file.png keeps a picture of the page (docs/guide.md has one).
	if path := os.Getenv("FORNAX_SCREENSHOT"); path != "" {
		if png, err := c.Screenshot(); err != nil {
			t.Error(err)
		} else if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Error(err)
		}
	}
}

// faceLatency measures whole requests (connect, GET, answer, close) to
// fornax-01's face from the namespace host, each checked: status 200 and
// a body that parses.
func faceLatency(t *testing.T) {
	for _, path := range []string{"/v1/self", "/v1/members", "/metrics"} {
		const n = 200
		d := make([]time.Duration, 0, n)
		for range n {
			t0 := time.Now()
			b, err := HTTPGet(Namespace, Addr(1)+":"+facePort, path)
			el := time.Since(t0)
			if err != nil {
				t.Fatalf("GET %s: %v", path, err)
			}
			if path == "/metrics" && !strings.Contains(string(b), "\nfornax_cluster_peers{") ||
				path != "/metrics" && !json.Valid(b) {
				t.Fatalf("GET %s: %q", path, b)
			}
			d = append(d, el)
		}
		slices.Sort(d)
		t.Logf("GET %s from the namespace host, %d requests, all 200 and whole: median %v, p99 %v, max %v",
			path, n, pct(d, 0.5).Round(10*time.Microsecond), pct(d, 0.99).Round(10*time.Microsecond), d[n-1].Round(10*time.Microsecond))
	}
}

// faceStreams opens 16 event streams to fornax-01 from the Linux host,
// 8 from each of two addresses (8 is the cap per source; the namespace
// host has Prometheus' connection), checks that each gets the events of
// a leave and a join of the node with id id3, and reports fornax-01's
// memory before and after.
func faceStreams(t *testing.T, lan *LAN, host linuxHost, id3 string) {
	vm1, vm3 := lan.VMs[0], lan.VMs[2]
	const second = "10.0.0.61"
	if out, err := exec.Command("ip", "-n", host.ns, "addr", "add", second+"/24", "dev", host.iface).CombinedOutput(); err != nil {
		t.Fatalf("ip addr add: %v %s", err, out)
	}
	dial := func(src string) (net.Conn, error) {
		var c net.Conn
		err := InNetns(host.ns, func() (err error) {
			d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
			c, err = d.Dial("tcp", Addr(1)+":"+facePort)
			return err
		})
		return c, err
	}
	before := command(t, vm1, "mem")
	var streams []*bufio.Reader
	for i := range 16 {
		src := fornaxdAddr
		if i >= 8 {
			src = second
		}
		c, err := dial(src)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		fmt.Fprintf(c, "GET /v1/events HTTP/1.1\r\nHost: x\r\n\r\n")
		r := bufio.NewReader(c)
		if l, err := r.ReadString('\n'); err != nil || l != "HTTP/1.1 200 OK\r\n" {
			t.Fatalf("stream %d from %s: %q %v", i, src, l, err)
		}
		streams = append(streams, r)
	}
	// A ninth connection from one source is closed at once.
	if c, err := dial(fornaxdAddr); err == nil {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(c, "GET /v1/self HTTP/1.1\r\nHost: x\r\n\r\n")
		if l, err := bufio.NewReader(c).ReadString('\n'); err == nil {
			t.Errorf("a ninth connection from %s was answered: %q", fornaxdAddr, l)
		}
		c.Close()
	}
	during := command(t, vm1, "mem")
	command(t, vm3, "echo leave > /cluster/ctl")
	command(t, vm3, "echo join > /cluster/ctl")
	for i, r := range streams {
		got := ""
		for !strings.Contains(got, id3+" joined") {
			l, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("stream %d: %v after %q", i, err, got)
			}
			got += l
		}
		if !strings.Contains(got, "data: ") || !strings.Contains(got, id3+" left") {
			t.Errorf("stream %d: %q", i, got)
		}
	}
	t.Logf("fornax-01 with 16 event streams open (all 16 got the leave and the join): mem before %q, with them %q",
		strings.ReplaceAll(strings.TrimSpace(before), "\n", ", "), strings.ReplaceAll(strings.TrimSpace(during), "\n", ", "))
}
