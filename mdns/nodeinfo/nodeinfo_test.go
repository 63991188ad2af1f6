package nodeinfo

import (
	"net/netip"
	"reflect"
	"testing"

	"fornax/cluster"
	"fornax/mdns"
)

func TestFromCtl(t *testing.T) {
	addr := netip.MustParseAddr("10.0.0.2")
	txt := func(auth string) []string { return []string{"id=0a1b2c3d", "profile=fast", "auth=" + auth} }
	fornax := mdns.Service{Type: "_fornax._udp", Port: cluster.DefaultPort}
	for _, tc := range []struct {
		name   string
		ctl    string
		ports  Ports
		joined bool
		want   []mdns.Service
	}{
		{"gossip only, plain", "joined\nauth plain\n", Ports{}, true,
			[]mdns.Service{withTXT(fornax, txt("plain"))}},
		{"left, signed", "left\nauth signed\nkey 1234 primary\n", Ports{}, false,
			[]mdns.Service{withTXT(fornax, txt("signed"))}},
		{"no auth line", "joined\n", Ports{}, true,
			[]mdns.Service{withTXT(fornax, txt("plain"))}},
		{"9P and the face", "joined\nauth mixed\n", Ports{NineP: 564, HTTP: 9711}, true, []mdns.Service{
			withTXT(fornax, txt("mixed")),
			{Type: "_9p._tcp", Port: 564, TXT: txt("mixed")},
			{Type: "_http._tcp", Port: 9711, TXT: append([]string{"path=/"}, txt("mixed")...)},
			{Type: "_prometheus-http._tcp", Port: 9711, TXT: append([]string{"path=/metrics"}, txt("mixed")...)},
		}},
		{"the face alone", "joined\nauth plain\n", Ports{HTTP: 8080}, true, []mdns.Service{
			withTXT(fornax, txt("plain")),
			{Type: "_http._tcp", Port: 8080, TXT: append([]string{"path=/"}, txt("plain")...)},
			{Type: "_prometheus-http._tcp", Port: 8080, TXT: append([]string{"path=/metrics"}, txt("plain")...)},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			info, joined := fromCtl(tc.ctl, "0a1b2c3d", "n1", addr, "fast", tc.ports)
			if joined != tc.joined {
				t.Errorf("joined %v, want %v", joined, tc.joined)
			}
			if info.Name != "n1" || info.Addr != addr {
				t.Errorf("name %q addr %v", info.Name, info.Addr)
			}
			if !reflect.DeepEqual(info.Services, tc.want) {
				t.Errorf("services\n%+v, want\n%+v", info.Services, tc.want)
			}
			if err := mdns.CheckInfo(info); err != nil {
				t.Errorf("CheckInfo: %v", err)
			}
		})
	}
}

func withTXT(s mdns.Service, txt []string) mdns.Service {
	s.TXT = txt
	return s
}

// TestOwnEvent: Follow wakes for the node's own events and lost ones,
// not for its peers'.
func TestOwnEvent(t *testing.T) {
	for _, tc := range []struct {
		lines string
		want  bool
	}{
		{"12.345 0a1b2c3d left\n", true},
		{"12.345 0a1b2c3d renamed db-1\n", true},
		{"12.345 99999999 renamed db-1\n", false},
		{"12.345 99999999 suspect\n12.400 0a1b2c3d joined n 10.0.0.2\n", true},
		{"lost 3 events\n", true},
		{"", false},
		{"garbage\n", false},
	} {
		if got := ownEvent(tc.lines, "0a1b2c3d"); got != tc.want {
			t.Errorf("ownEvent(%q) = %v, want %v", tc.lines, got, tc.want)
		}
	}
}
