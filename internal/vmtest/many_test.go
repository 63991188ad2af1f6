package vmtest

import (
	"maps"
	"os"
	"testing"
	"time"
)

func TestPeerStatus(t *testing.T) {
	view := "ID        NAME       ADDR      STATUS   HEARD  LOAD  MEM\n" +
		"00000001  fornax-01  10.0.0.2  self     -      0.25  50M/58M\n" +
		"00000002  fornax-02  10.0.0.3  online   1.2    0.10  50M/58M\n" +
		"00000003  fornax-03  10.0.0.4  suspect  16.0   -     50M/58M\n"
	got, err := PeerStatus(view)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"fornax-02": "online", "fornax-03": "suspect"}; !maps.Equal(got, want) {
		t.Errorf("PeerStatus = %v, want %v", got, want)
	}
	alone, err := PeerStatus("ID        NAME       ADDR      STATUS   HEARD  LOAD  MEM\n" +
		"00000001  fornax-01  10.0.0.2  self     -      0.25  50M/58M\n")
	if err != nil || len(alone) != 0 {
		t.Errorf("a node alone: %v, %v; want no peers", alone, err)
	}
	for _, bad := range []string{
		"",
		"ID  NAME  ADDR\n00000001  fornax-01  10.0.0.2\n",                            // no STATUS
		"ID NAME STATUS\n1 a self\n2 b online extra\n",                               // a row too long
		"ID NAME STATUS\n1 a self\n2 b\n",                                            // a row too short
		"ID        NAME       ADDR      STATUS   HEARD  LOAD  MEM\n",                 // no own row
		"NAME STATUS\nfornax-01 self\nfornax 02 online\n",                            // a name with a blank
		"ID        NAME       ADDR      STATUS   HEARD  LOAD  MEM\n\n",               // an empty row
		"ID        NAME       ADDR      STATUS   HEARD  LOAD  MEM\nx x x self - 0\n", // own row short
	} {
		if p, err := PeerStatus(bad); err == nil {
			t.Errorf("PeerStatus(%q) = %v, want an error", bad, p)
		}
	}
}

func TestParseProcStatCPU(t *testing.T) {
	// A QEMU line from proc(5)'s layout: utime 1234, stime 567 ticks.
	stat := "4242 (qemu-system-x86) S 1 4241 4241 0 -1 4194368 5000 0 0 0 1234 567 0 0 20 0 3 0 100 1000 200\n"
	got, err := parseProcStatCPU(stat)
	if err != nil || got != 1801*10*time.Millisecond {
		t.Errorf("parseProcStatCPU = %v, %v; want 18.01s", got, err)
	}
	// A command name with blanks and parentheses.
	odd := "7 (a (b) c) R 1 7 7 0 -1 0 0 0 0 0 3 4 0 0\n"
	if got, err := parseProcStatCPU(odd); err != nil || got != 70*time.Millisecond {
		t.Errorf("parseProcStatCPU(%q) = %v, %v; want 70ms", odd, got, err)
	}
	for _, bad := range []string{"", "1 qemu S 1", "1 (qemu) S 1 2 3", "1 (q) S 1 2 3 4 5 6 7 8 9 10 x 0\n"} {
		if got, err := parseProcStatCPU(bad); err == nil {
			t.Errorf("parseProcStatCPU(%q) = %v, want an error", bad, got)
		}
	}
	// This process's own line parses and counts some CPU.
	if d, err := ProcCPU(os.Getpid()); err != nil || d < 0 {
		t.Errorf("ProcCPU(self) = %v, %v", d, err)
	}
}

func TestProcKB(t *testing.T) {
	st := "Name:\tqemu-system-x86\nVmPeak:\t  900000 kB\nVmRSS:\t   41236 kB\nRssAnon:\t 30000 kB\nThreads:\t3\n"
	if got, err := procKB(st, "VmRSS:"); err != nil || got != 41236<<10 {
		t.Errorf("procKB(VmRSS:) = %d, %v; want %d", got, err, 41236<<10)
	}
	if got, err := procKB(st, "RssAnon:"); err != nil || got != 30000<<10 {
		t.Errorf("procKB(RssAnon:) = %d, %v; want %d", got, err, 30000<<10)
	}
	for _, bad := range []string{"Name:\tkthreadd\n", "VmRSS:\t12 MB\n", "VmRSS:\tx kB\n", "VmRSS:\n"} {
		if got, err := procKB(bad, "VmRSS:"); err == nil {
			t.Errorf("procKB(%q) = %d, want an error", bad, got)
		}
	}
	m, err := ProcMem(os.Getpid())
	if err != nil || m.RSS == 0 || m.Anon > m.RSS || m.PSS > m.RSS {
		t.Errorf("ProcMem(self) = %+v, %v", m, err)
	}
}
