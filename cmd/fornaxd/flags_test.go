package main

import (
	"bytes"
	"errors"
	"flag"
	"net/netip"
	"strings"
	"testing"
)

func TestParseFlags(t *testing.T) {
	o, err := parseFlags([]string{"-iface", "eth1", "-addr", "10.0.0.50", "-name", "db-1", "-id", "0a1b2c3d",
		"-key-file", "/etc/k", "-listen", ":5640", "-profile", "fast", "-9p-rw", "-http", "8080", "-mdns=false",
		"-seeds", "10.1.0.2,10.2.0.7"})
	if err != nil {
		t.Fatal(err)
	}
	want := options{iface: "eth1", addr: netip.MustParseAddr("10.0.0.50"), name: "db-1", id: "0a1b2c3d",
		keyFile: "/etc/k", listen: ":5640", rw: true, httpPort: 8080, seeds: "10.1.0.2,10.2.0.7"}
	if o.profile.Name != "fast" {
		t.Errorf("profile %q", o.profile.Name)
	}
	o.profile = want.profile
	if o != want {
		t.Errorf("got %+v\nwant %+v", o, want)
	}

	o, err = parseFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.profile.Name != "default" || o.rw || o.iface != "" || o.listen != "" || o.addr.IsValid() || o.httpPort != 9711 || !o.mdns || o.seeds != "" {
		t.Errorf("defaults: %+v", o)
	}
	if o, err := parseFlags([]string{"-listen", "none"}); err != nil || o.listen != listenNone {
		t.Errorf("-listen none: %+v, %v", o, err)
	}
	if o, err := parseFlags([]string{"-http", "none"}); err != nil || o.httpPort != 0 {
		t.Errorf("-http none: %+v, %v", o, err)
	}
}

func TestParseFlagsHelp(t *testing.T) {
	for _, arg := range []string{"-help", "-h", "--help"} {
		if _, err := parseFlags([]string{arg}); !errors.Is(err, flag.ErrHelp) {
			t.Errorf("%s: %v", arg, err)
		}
	}
	var b bytes.Buffer
	writeUsage(&b)
	for _, f := range []string{"-iface", "-addr", "-name", "-id", "-key-file", "-listen", "-profile", "-9p-rw", "-http", "-mdns", "-seeds", "CAP_NET_BIND_SERVICE", "SO_BINDTODEVICE", "mount -t 9p"} {
		if !strings.Contains(b.String(), f) {
			t.Errorf("-help does not mention %s", f)
		}
	}
}

// Each bad command line gets one line that names the flag and says what
// to do.
func TestParseFlagsBad(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-bogus"}, "-bogus"},
		{[]string{"-iface"}, "-iface"},
		{[]string{"extra"}, `unexpected argument "extra"`},
		{[]string{"-profile", "slow"}, `-profile "slow": want default or fast`},
		{[]string{"-addr", "10.0.0"}, `-addr "10.0.0": want an IPv4 address`},
		{[]string{"-addr", "fe80::1"}, `-addr "fe80::1": want an IPv4 address`},
		{[]string{"-name", "a b"}, `-name "a b": character ' ' not allowed`},
		{[]string{"-name", strings.Repeat("x", 64)}, `must be 1 to 63 characters`},
		{[]string{"-id", "0A1B2C3D"}, `-id "0A1B2C3D": must be 8 lowercase hex digits`},
		{[]string{"-id", "123"}, `-id "123"`},
		{[]string{"-listen", "564"}, `-listen "564": want an address and a port`},
		{[]string{"-listen", ":http"}, `-listen ":http": want a numeric port`},
		{[]string{"-listen", ":70000"}, `want a port from 1 to 65535`},
		{[]string{"-listen", "host:564"}, `want an IP address and a port`},
		{[]string{"-iface", "eth0/1"}, `-iface "eth0/1": not an interface name`},
		{[]string{"-9p-rw=maybe"}, `-9p-rw`},
		{[]string{"-seeds", "10.1.0.2;10.2.0.7"}, `-seeds "10.1.0.2;10.2.0.7": bad seed "10.1.0.2;10.2.0.7": want unicast IPv4 addresses separated by commas`},
		{[]string{"-seeds", "10.1.0.2,"}, `-seeds "10.1.0.2,": bad seed ""`},
		{[]string{"-seeds", "fe80::1"}, `bad seed "fe80::1"`},
		{[]string{"-seeds", "224.0.0.251"}, `bad seed "224.0.0.251"`},
		{[]string{"-seeds", "10.1.0.2, 10.2.0.7"}, `bad seed " 10.2.0.7"`},
		{[]string{"-http", "0"}, `-http "0": want a port from 1 to 65535, or none`},
		{[]string{"-http", ":80"}, `-http ":80": want a port`},
		{[]string{"-http", "70000"}, `-http "70000"`},
	} {
		_, err := parseFlags(c.args)
		var ue usageError
		if !errors.As(err, &ue) {
			t.Errorf("%q: %v, want a usage error", c.args, err)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, c.want) || strings.Contains(msg, "\n") || !strings.HasSuffix(msg, "(fornaxd -help lists the flags)") {
			t.Errorf("%q: %q, want one line with %q", c.args, msg, c.want)
		}
	}
}

func TestDefaultName(t *testing.T) {
	for _, c := range []struct{ host, want string }{
		{"db-1", "db-1"},
		{"db-1.example.com", "db-1"},
		{"", "fornax-0a1b2c3d"},
		{"host_with_ünicode", "fornax-0a1b2c3d"},
		{strings.Repeat("h", 64), "fornax-0a1b2c3d"},
	} {
		if got := defaultName(c.host, "0a1b2c3d"); got != c.want {
			t.Errorf("defaultName(%q) = %q, want %q", c.host, got, c.want)
		}
	}
}
