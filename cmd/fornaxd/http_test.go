package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"fornax/face"
	"fornax/internal/vmtest"
)

// httpGet fetches path from addr (host:port) inside network namespace
// ns. The socket is made on the namespace's thread (a Transport would
// dial from another goroutine, in the host's namespace).
func httpGet(t *testing.T, ns, addr, path string) []byte {
	t.Helper()
	var body []byte
	err := vmtest.InNetns(ns, func() error {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path, addr)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if body, err = io.ReadAll(resp.Body); err != nil {
			return err
		}
		if resp.StatusCode != 200 {
			return fmt.Errorf("GET %s from %s: %s", path, addr, resp.Status)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// checkFace: a's HTTP face lists both daemons, offers both to Prometheus
// and counts the 9P clients of the test.
func checkFace(t *testing.T, p *pair, ids [2]string) {
	base := p.addr[0] + ":9711"
	var ms []face.Member
	if err := json.Unmarshal(httpGet(t, p.ns[0], base, "/v1/members"), &ms); err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 || ms[0].ID != ids[0] || ms[0].Status != "self" || ms[1].ID != ids[1] || ms[1].Status != "online" ||
		ms[1].HTTP != p.addr[1]+":9711" {
		t.Errorf("a's /v1/members: %+v", ms)
	}
	var sd []face.TargetGroup
	if err := json.Unmarshal(httpGet(t, p.ns[1], base, "/sd"), &sd); err != nil { // from b's host
		t.Fatal(err)
	}
	if len(sd) != 2 || sd[0].Targets[0] != p.addr[0]+":9711" || sd[1].Targets[0] != p.addr[1]+":9711" {
		t.Errorf("a's /sd: %+v", sd)
	}
	metrics := string(httpGet(t, p.ns[0], base, "/metrics"))
	for _, want := range []string{"\nfornax_9p_connections ", "\nfornax_uptime_seconds ", `fornax_cluster_peers{status="online"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("a's /metrics lacks %q", want)
		}
	}
}
