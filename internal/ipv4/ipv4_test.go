package ipv4

import (
	"net"
	"net/netip"
	"testing"
)

func TestBroadcast(t *testing.T) {
	for p, want := range map[string]string{
		"10.0.2.15/24":   "10.0.2.255",
		"10.0.0.0/8":     "10.255.255.255",
		"192.168.1.5/30": "192.168.1.7",
		"172.16.0.1/12":  "172.31.255.255",
		"10.1.2.3/21":    "10.1.7.255",
		"10.0.0.4/31":    "10.0.0.5",
		"10.0.0.4/32":    "10.0.0.4",
		"10.9.8.7/0":     "255.255.255.255",
		"10.9.8.7/1":     "127.255.255.255",
		"10.0.0.2/23":    "10.0.1.255",
	} {
		if got := Broadcast(netip.MustParsePrefix(p)).String(); got != want {
			t.Errorf("Broadcast(%s) = %s, want %s", p, got, want)
		}
	}
	for _, p := range []netip.Prefix{{}, netip.MustParsePrefix("fd00::1/64")} {
		if got := Broadcast(p); got.IsValid() {
			t.Errorf("Broadcast(%v) = %v, want the zero Addr", p, got)
		}
	}
}

func TestHasBroadcast(t *testing.T) {
	for p, want := range map[string]bool{
		"10.0.0.1/8": true, "10.0.0.1/24": true, "10.0.0.1/30": true,
		"10.0.0.1/31": false, "10.0.0.1/32": false, "fd00::1/64": false,
	} {
		if got := HasBroadcast(netip.MustParsePrefix(p)); got != want {
			t.Errorf("HasBroadcast(%s) = %v, want %v", p, got, want)
		}
	}
	if HasBroadcast(netip.Prefix{}) {
		t.Error("HasBroadcast of the zero Prefix = true")
	}
}

func TestSource(t *testing.T) {
	for _, tc := range []struct {
		a    net.Addr
		want string
	}{
		{&net.TCPAddr{IP: net.ParseIP("10.0.0.2"), Port: 564}, "10.0.0.2"},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:10.0.0.2"), Port: 564}, "10.0.0.2"},
		{&net.UDPAddr{IP: net.ParseIP("10.0.0.3"), Port: 7}, "10.0.0.3"},
		{pipeAddr{}, "invalid IP"},
		{nil, "invalid IP"},
	} {
		if got := Source(tc.a).String(); got != tc.want {
			t.Errorf("Source(%v) = %s, want %s", tc.a, got, tc.want)
		}
	}
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }
