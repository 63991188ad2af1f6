package commands

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"fornax/fs/shell"
	"fornax/fs/sys"
)

// newShell returns a shell with cmds, which checks their arguments'
// number as the console's does.
func newShell(cmds []shell.Command) *shell.Shell {
	sh := shell.New(nil, nil)
	for _, c := range cmds {
		sh.Add(c)
	}
	return sh
}

func testKernel() *sys.Kernel {
	boot := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	up := 90*time.Minute + 1500*time.Millisecond
	return sys.New(sys.Machine{
		Version:  "v1",
		CmdLine:  "name=n1",
		MemTotal: 96 << 20,
		NumCPU:   1,
		Uptime:   func() time.Duration { return up },
		Now:      func() time.Time { return boot.Add(up) },
		Clock:    func() string { return "tsc/pit" },
	}, "n1")
}

func TestSys(t *testing.T) {
	sh := newShell(Sys(testKernel()))
	for line, want := range map[string]string{
		"uptime":    "up 01:30:01 (5401.500 s)\n",
		"date":      "Wed Nov 25 13:30:01 UTC 2026\n",
		"date x":    "usage: date\n",
		"mem":       "total 96M\nused  ",
		"uptime -x": "usage: uptime\n",
		"mem -x":    "usage: mem\n",
	} {
		var b bytes.Buffer
		sh.Exec(line, &b)
		if !strings.HasPrefix(b.String(), want) || strings.HasSuffix(want, "\n") && b.String() != want {
			t.Errorf("%s: got %q, want %q", line, b.String(), want)
		}
	}
}

func TestUDP(t *testing.T) {
	r := map[string]shell.Command{}
	// Sockets bind to loopback only: tests send nowhere else.
	for _, c := range UDP(func(network, address string) (net.PacketConn, error) {
		return net.ListenPacket(network, "127.0.0.1"+address)
	}) {
		r[c.Name] = c
	}
	sink, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()

	var out bytes.Buffer
	if err := r["udpsend"].Run(&out, []string{sink.LocalAddr().String(), "hello", "there"}); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "sent 11 bytes to 127.0.0.1:") {
		t.Errorf("udpsend: %q", out.String())
	}
	buf := make([]byte, 64)
	sink.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, _, err := sink.ReadFrom(buf); err != nil || string(buf[:n]) != "hello there" {
		t.Errorf("got %q, %v", buf[:n], err)
	}

	// udprecv says when it listens, then what came
	go func() {
		time.Sleep(200 * time.Millisecond)
		r["udpsend"].Run(io.Discard, []string{"127.0.0.1:39710", "late"})
	}()
	out.Reset()
	if err := r["udprecv"].Run(&out, []string{"39710", "1"}); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); !strings.HasPrefix(got, "listening on udp port 39710 for 1s\n") || !strings.Contains(got, `"late"`) || !strings.HasSuffix(got, "1 datagrams\n") {
		t.Errorf("udprecv: %q", got)
	}

	for _, args := range [][]string{
		{"udpsend", "10.0.0.1", "x"}, {"udpsend", "nowhere:7", "x"},
		{"udprecv", "0"}, {"udprecv", "70000"}, {"udprecv", "9", "-1"}, {"udprecv", "9", "100000"},
	} {
		if err := r[args[0]].Run(io.Discard, args[1:]); err == nil {
			t.Errorf("%q: no error", args)
		}
	}

	// The shell checks the number of arguments.
	sh := newShell(UDP(func(string, string) (net.PacketConn, error) { return nil, errors.New("no sockets here") }))
	for line, want := range map[string]string{
		"udpsend":            "usage: udpsend addr:port text...\n",
		"udpsend 10.0.0.1:9": "usage: udpsend addr:port text...\n",
		"udprecv":            "usage: udprecv port [seconds]\n",
		"udprecv 9 1 2":      "usage: udprecv port [seconds]\n",
	} {
		var b bytes.Buffer
		sh.Exec(line, &b)
		if b.String() != want {
			t.Errorf("%s: got %q, want %q", line, b.String(), want)
		}
	}
}
