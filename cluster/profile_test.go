package cluster

import (
	"strings"
	"testing"
	"time"
)

func TestProfileFast(t *testing.T) {
	p, err := LookupProfile("fast")
	if err != nil {
		t.Fatal(err)
	}
	sm := newSim(t)
	fast := func(c *Config) { p.Apply(c) }
	a := sm.start(1, fast)
	b := sm.start(2, fast)
	sm.run(10*s + 2*ms)
	if got := a.status(b); got != "online" {
		t.Fatalf("b at a: %s", got)
	}
	sm.kill(b)
	last := a.Peers()[0].LastHeard.Sub(t0)
	for _, c := range []struct {
		at   time.Duration
		want string
	}{
		{2999 * ms, "online"},
		{3 * s, "suspect"},
		{6 * s, "dead"},
		{17999 * ms, "dead"},
		{18 * s, "gone"},
	} {
		sm.runTo(last + c.at)
		if got := a.status(b); got != c.want {
			t.Errorf("%v after last heard: %s, want %s", c.at, got, c.want)
		}
	}
}

func TestLookupProfile(t *testing.T) {
	if p, err := LookupProfile("default"); err != nil || p.Interval != DefaultInterval || p.DeadAfter != DefaultDeadAfter {
		t.Errorf("default: %+v %v", p, err)
	}
	_, err := LookupProfile("fsat")
	if err == nil || !strings.Contains(err.Error(), `"fsat"`) || !strings.Contains(err.Error(), "default, fast") {
		t.Errorf("bad name: %v", err)
	}
}
