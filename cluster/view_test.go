package cluster

import "testing"

func TestView(t *testing.T) {
	sm := newSim(t)
	a := sm.start(1, nil)
	sm.start(2, func(c *Config) { c.Name = "fornax-02" })
	c := sm.start(3, nil)
	sm.run(ms)
	want := "" +
		"ID        NAME       ADDR      STATUS  HEARD  LOAD  MEM\n" +
		"00000001  n1         10.0.0.1  self    -      0.25  128M/256M\n" +
		"00000002  fornax-02  10.0.0.2  online  0.0    -     128M/256M\n" +
		"00000003  n3         10.0.0.3  online  0.0    -     128M/256M\n"
	if got := a.read("view"); got != want {
		t.Errorf("view:\n%s\nwant:\n%s", got, want)
	}
	sm.run(5 * s) // HEARTBEATs carry the load
	sm.kill(c)
	sm.run(16*s + 500*ms)
	// n2 asked n1 to probe n3 for it half a second after its last
	// HEARTBEAT (docs/protocol.md §4.5): a valid message of n2.
	want = "" +
		"ID        NAME       ADDR      STATUS   HEARD  LOAD  MEM\n" +
		"00000001  n1         10.0.0.1  self     -      0.25  128M/256M\n" +
		"00000002  fornax-02  10.0.0.2  online   1.0    0.25  128M/256M\n" +
		"00000003  n3         10.0.0.3  suspect  16.5   0.25  128M/256M\n"
	if got := a.read("view"); got != want {
		t.Errorf("view:\n%s\nwant:\n%s", got, want)
	}
	a.Leave()
	want = "" +
		"ID        NAME  ADDR      STATUS  HEARD  LOAD  MEM\n" +
		"00000001  n1    10.0.0.1  left    -      0.25  128M/256M\n"
	if got := a.read("view"); got != want {
		t.Errorf("view:\n%s\nwant:\n%s", got, want)
	}
}
