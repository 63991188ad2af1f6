package main

import (
	"encoding/json"
	"strings"
	"testing"

	"fornax/face"
	"fornax/internal/vmtest"
)

func httpGet(t *testing.T, ns, addr, path string) []byte {
	t.Helper()
	b, err := vmtest.HTTPGet(ns, addr, path)
	if err != nil {
		t.Fatal(err)
	}
	return b
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
