package bootcfg

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"fornax/drivers/virtio"
)

func TestParse(t *testing.T) {
	def := Config{Name: DefaultName}
	with := func(f func(*Config)) Config {
		c := def
		f(&c)
		return c
	}
	pfx := netip.MustParsePrefix
	addr := netip.MustParseAddr
	tests := []struct {
		cmdline  string
		want     Config
		warnings []string
	}{
		{"", def, nil},
		{"   ", def, nil},
		{"name=n1", with(func(c *Config) { c.Name, c.NameSet = "n1", true }), nil},
		{"name=A.b_c-9", with(func(c *Config) { c.Name, c.NameSet = "A.b_c-9", true }), nil},
		{"name=" + strings.Repeat("x", 63), with(func(c *Config) { c.Name, c.NameSet = strings.Repeat("x", 63), true }), nil},
		{"name=" + strings.Repeat("x", 64), def, []string{`bootcfg: ignoring bad name= value "` + strings.Repeat("x", 64) + `": must be 1 to 63 characters`}},
		{"name=", def, []string{`bootcfg: ignoring bad name= value "": must be 1 to 63 characters`}},
		{"name=a/b", def, []string{`bootcfg: ignoring bad name= value "a/b": character '/' not allowed (use A-Z a-z 0-9 . _ -)`}},
		{"ip=10.0.0.2/24", with(func(c *Config) { c.Addr = pfx("10.0.0.2/24") }), nil},
		{"ip=10.0.0.0/31", with(func(c *Config) { c.Addr = pfx("10.0.0.0/31") }), nil},
		{"ip=10.0.0.7/32", with(func(c *Config) { c.Addr = pfx("10.0.0.7/32") }), nil},
		{"ip=10.0.0.3/30", def, []string{`bootcfg: ignoring bad ip= value "10.0.0.3/30": broadcast address of 10.0.0.0/30`}},
		{"ip=10.0.0.300/24", def, []string{`bootcfg: ignoring bad ip= value "10.0.0.300/24": IPv4 field has value >255`}},
		{"ip=10.0.0.2", def, []string{`bootcfg: ignoring bad ip= value "10.0.0.2": missing /prefix length`}},
		{"ip=10.0.0.2/33", def, []string{`bootcfg: ignoring bad ip= value "10.0.0.2/33": prefix length must be 1 to 32`}},
		{"ip=10.0.0.2/0", def, []string{`bootcfg: ignoring bad ip= value "10.0.0.2/0": prefix length must be 1 to 32`}},
		{"ip=10.0.0.2/024", def, []string{`bootcfg: ignoring bad ip= value "10.0.0.2/024": prefix length must be 1 to 32`}},
		{"ip=10.0.0.2/+24", def, []string{`bootcfg: ignoring bad ip= value "10.0.0.2/+24": prefix length must be 1 to 32`}},
		{"ip=10.0.0.0/24", def, []string{`bootcfg: ignoring bad ip= value "10.0.0.0/24": network address of 10.0.0.0/24`}},
		{"ip=10.0.0.255/24", def, []string{`bootcfg: ignoring bad ip= value "10.0.0.255/24": broadcast address of 10.0.0.0/24`}},
		{"ip=fd00::2/64", def, []string{`bootcfg: ignoring bad ip= value "fd00::2/64": not an IPv4 address`}},
		{"ip=::ffff:10.0.0.2/120", def, []string{`bootcfg: ignoring bad ip= value "::ffff:10.0.0.2/120": not an IPv4 address`}},
		{"ip=0.0.0.0/8", def, []string{`bootcfg: ignoring bad ip= value "0.0.0.0/8": not a host address`}},
		{"ip=127.0.0.2/8", def, []string{`bootcfg: ignoring bad ip= value "127.0.0.2/8": loopback address`}},
		{"ip=224.0.0.5/24", def, []string{`bootcfg: ignoring bad ip= value "224.0.0.5/24": multicast address`}},
		{"ip=", def, []string{`bootcfg: ignoring bad ip= value "": missing /prefix length`}},
		{"gw=10.0.0.1", with(func(c *Config) { c.Gateway = addr("10.0.0.1") }), nil},
		{"ip=10.0.0.2/24 gw=10.0.0.1", with(func(c *Config) { c.Addr, c.Gateway = pfx("10.0.0.2/24"), addr("10.0.0.1") }), nil},
		{"gw=10.0.0.1 ip=10.0.0.2/24", with(func(c *Config) { c.Addr, c.Gateway = pfx("10.0.0.2/24"), addr("10.0.0.1") }), nil},
		{"ip=10.0.0.2/24 gw=10.0.1.1", with(func(c *Config) { c.Addr = pfx("10.0.0.2/24") }), []string{`bootcfg: ignoring bad gw= value "10.0.1.1": not in 10.0.0.0/24`}},
		{"ip=10.0.0.2/24 gw=10.0.0.2", with(func(c *Config) { c.Addr = pfx("10.0.0.2/24") }), []string{`bootcfg: ignoring bad gw= value "10.0.0.2": is the node's own address`}},
		{"ip=10.0.0.2/24 gw=10.0.0.255", with(func(c *Config) { c.Addr = pfx("10.0.0.2/24") }), []string{`bootcfg: ignoring bad gw= value "10.0.0.255": broadcast address of 10.0.0.0/24`}},
		{"gw=10.0.0", def, []string{`bootcfg: ignoring bad gw= value "10.0.0": IPv4 address too short`}},
		{"id=0a1b2c3d", with(func(c *Config) { c.ID = "0a1b2c3d" }), nil},
		{"9p=rw", with(func(c *Config) { c.NinePWritable = true }), nil},
		{"9p=ro", def, nil},
		{"9p=rw 9p=ro", def, []string{`bootcfg: duplicate key "9p": the last one wins`}},
		{"9p=RW", def, []string{`bootcfg: ignoring bad 9p= value "RW": want ro or rw`}},
		{"9p=", def, []string{`bootcfg: ignoring bad 9p= value "": want ro or rw`}},
		{"profile=fast", with(func(c *Config) { c.Profile = "fast" }), nil},
		{"profile=fsat", with(func(c *Config) { c.Profile = "fsat" }), nil}, // the cluster service refuses it
		{"seeds=10.1.0.2,10.2.0.7", with(func(c *Config) { c.Seeds = "10.1.0.2,10.2.0.7" }), nil},
		{"seeds=10.1.0.2,,300.1.1.1", with(func(c *Config) { c.Seeds = "10.1.0.2,,300.1.1.1" }), nil}, // the cluster service refuses it
		{"offload=off", with(func(c *Config) { c.OffloadsOff = virtio.AllOffloads }), nil},
		{"offload=on", def, nil},
		{"offload=csum", with(func(c *Config) { c.OffloadsOff = virtio.OffloadMrg | virtio.OffloadRxTSO | virtio.OffloadTxTSO }), nil},
		{"offload=mrg,csum,rxtso", with(func(c *Config) { c.OffloadsOff = virtio.OffloadTxTSO }), nil},
		{"offload=csum,txtso", with(func(c *Config) { c.OffloadsOff = virtio.OffloadMrg | virtio.OffloadRxTSO }), nil},
		{"offload=csum,mrg,rxtso,txtso", def, nil},
		{"offload=no", def, []string{`bootcfg: ignoring bad offload= value "no": want on, off, or some of csum,mrg,rxtso,txtso`}},
		{"offload=", def, []string{`bootcfg: ignoring bad offload= value "": want on, off, or some of csum,mrg,rxtso,txtso`}},
		{"offload=csum,", def, []string{`bootcfg: ignoring bad offload= value "csum,": want on, off, or some of csum,mrg,rxtso,txtso`}},
		{"offload=csum,rxtso", def, []string{`bootcfg: ignoring bad offload= value "csum,rxtso": rxtso needs csum and mrg`}},
		{"offload=txtso", def, []string{`bootcfg: ignoring bad offload= value "txtso": txtso needs csum`}},
		{"http=off", with(func(c *Config) { c.HTTPOff = true }), nil},
		{"http=8080", with(func(c *Config) { c.HTTPPort = 8080 }), nil},
		{"http=0", def, []string{`bootcfg: ignoring bad http= value "0": want off or a port from 1 to 65535`}},
		{"http=65536", def, []string{`bootcfg: ignoring bad http= value "65536": want off or a port from 1 to 65535`}},
		{"http=on", def, []string{`bootcfg: ignoring bad http= value "on": want off or a port from 1 to 65535`}},
		{"mdns=off", with(func(c *Config) { c.MDNSOff = true }), nil},
		{"mdns=on", def, nil},
		{"mdns=off mdns=on", def, []string{`bootcfg: duplicate key "mdns": the last one wins`}},
		{"mdns=no", def, []string{`bootcfg: ignoring bad mdns= value "no": want on or off`}},
		{"mdns=", def, []string{`bootcfg: ignoring bad mdns= value "": want on or off`}},
		{"mtu=1450", with(func(c *Config) { c.MTU = 1450 }), nil},
		{"mtu=68", with(func(c *Config) { c.MTU = 68 }), nil},
		{"mtu=1500", with(func(c *Config) { c.MTU = 1500 }), nil},
		{"mtu=67", def, []string{`bootcfg: ignoring bad mtu= value "67": want an MTU from 68 to 1500`}},
		{"mtu=1501", def, []string{`bootcfg: ignoring bad mtu= value "1501": want an MTU from 68 to 1500`}},
		{"mtu=9000", def, []string{`bootcfg: ignoring bad mtu= value "9000": want an MTU from 68 to 1500`}},
		{"mtu=01450", def, []string{`bootcfg: ignoring bad mtu= value "01450": want an MTU from 68 to 1500`}},
		{"mtu=+1450", def, []string{`bootcfg: ignoring bad mtu= value "+1450": want an MTU from 68 to 1500`}},
		{"mtu=", def, []string{`bootcfg: ignoring bad mtu= value "": want an MTU from 68 to 1500`}},
		{"mtu=auto", def, []string{`bootcfg: ignoring bad mtu= value "auto": want an MTU from 68 to 1500`}},
		{"profile=Fast", def, []string{`bootcfg: ignoring bad profile= value "Fast": want a profile name, such as fast (1 to 32 of a-z)`}},
		{"profile=", def, []string{`bootcfg: ignoring bad profile= value "": want a profile name, such as fast (1 to 32 of a-z)`}},
		{"seeds=host.example", def, []string{`bootcfg: ignoring bad seeds= value "host.example": want IPv4 addresses separated by commas, such as 10.1.0.2,10.2.0.7`}},
		{"seeds=", def, []string{`bootcfg: ignoring bad seeds= value "": want IPv4 addresses separated by commas, such as 10.1.0.2,10.2.0.7`}},
		{"id=0A1B2C3D", def, []string{`bootcfg: ignoring bad id= value "0A1B2C3D": must be 8 lowercase hex digits`}},
		{"id=0a1b2c3", def, []string{`bootcfg: ignoring bad id= value "0a1b2c3": must be 8 lowercase hex digits`}},
		{"id=0a1b2c3g", def, []string{`bootcfg: ignoring bad id= value "0a1b2c3g": must be 8 lowercase hex digits`}},
		{"foo=bar", def, []string{`bootcfg: ignoring unknown key "foo"`}},
		{"=x", def, []string{`bootcfg: ignoring unknown key ""`}},
		{"Name=x", def, []string{`bootcfg: ignoring unknown key "Name"`}},
		{"quiet", def, []string{`bootcfg: ignoring "quiet": not key=value`}},
		{"name=a name=b", with(func(c *Config) { c.Name, c.NameSet = "b", true }), []string{`bootcfg: duplicate key "name": the last one wins`}},
		// The last value decides even when it is bad.
		{"name=a name=b/c", def, []string{
			`bootcfg: duplicate key "name": the last one wins`,
			`bootcfg: ignoring bad name= value "b/c": character '/' not allowed (use A-Z a-z 0-9 . _ -)`,
		}},
		{"console=ttyS0 earlyprintk=ttyS0 reboot=t panic=-1 virtio_mmio.device=512@0xfeb00e00:12 virtio_mmio.device=512@0xfeb00c00:11", def, nil},
		{
			"console=ttyS0 name=n2\tip=192.168.1.10/24  gw=192.168.1.1 id=deadbeef virtio_mmio.device=512@0xfeb00e00:12",
			Config{Name: "n2", NameSet: true, Addr: pfx("192.168.1.10/24"), Gateway: addr("192.168.1.1"), ID: "deadbeef"},
			nil,
		},
		{
			"bogus name=n3 ip=10.0.0.300/24 x=1",
			with(func(c *Config) { c.Name, c.NameSet = "n3", true }),
			[]string{
				`bootcfg: ignoring "bogus": not key=value`,
				`bootcfg: ignoring unknown key "x"`,
				`bootcfg: ignoring bad ip= value "10.0.0.300/24": IPv4 field has value >255`,
			},
		},
	}
	for _, tt := range tests {
		got, warnings := Parse(tt.cmdline)
		if got != tt.want {
			t.Errorf("Parse(%q) = %+v, want %+v", tt.cmdline, got, tt.want)
		}
		if !slices.Equal(warnings, tt.warnings) {
			t.Errorf("Parse(%q) warnings:\n%q\nwant\n%q", tt.cmdline, warnings, tt.warnings)
		}
	}
}

func TestString(t *testing.T) {
	tests := []struct {
		cmdline, want string
	}{
		{"", ""},
		{"name=fornax", "name=fornax"},
		{"name=n1 ip=10.0.0.2/24", "name=n1 ip=10.0.0.2/24"},
		{"id=0a1b2c3d gw=10.0.0.1 ip=10.0.0.2/24 name=n1", "name=n1 ip=10.0.0.2/24 gw=10.0.0.1 id=0a1b2c3d"},
		{"9p=rw name=n1", "name=n1 9p=rw"},
		{"9p=ro name=n1", "name=n1"},
		{"profile=fast name=n1", "name=n1 profile=fast"},
		{"profile=default", "profile=default"},
		{"seeds=10.1.0.2 name=n1", "name=n1 seeds=10.1.0.2"},
		{"offload=off name=n1", "name=n1 offload=off"},
		{"offload=mrg,csum", "offload=csum,mrg"},
		{"offload=csum,mrg,rxtso,txtso", ""},
		{"http=off name=n1", "name=n1 http=off"},
		{"http=8080", "http=8080"},
		{"mdns=off name=n1", "name=n1 mdns=off"},
		{"mdns=on", ""},
		{"mtu=1450 name=n1", "name=n1 mtu=1450"},
	}
	for _, tt := range tests {
		c, _ := Parse(tt.cmdline)
		if got := c.String(); got != tt.want {
			t.Errorf("Parse(%q).String() = %q, want %q", tt.cmdline, got, tt.want)
		}
	}
}

// TestLinkMTU: mtu= lowers the device's MTU and never raises it.
func TestLinkMTU(t *testing.T) {
	for _, c := range []struct {
		mtu, device, want int
		warn              bool
	}{
		{0, 1500, 1500, false},
		{0, 1450, 1450, false},
		{1400, 1500, 1400, false},
		{1400, 1450, 1400, false},
		{1450, 1450, 1450, false},
		{1500, 1450, 1450, true},
		{1451, 1450, 1450, true},
	} {
		got, warning := Config{MTU: c.mtu}.LinkMTU(c.device)
		if got != c.want || (warning != "") != c.warn {
			t.Errorf("mtu=%d on a %d device: %d, %q", c.mtu, c.device, got, warning)
		}
		if c.warn && (!strings.HasPrefix(warning, "bootcfg: ") || !strings.Contains(warning, "mtu=")) {
			t.Errorf("warning %q", warning)
		}
	}
}

// valid restates the rules of the package doc independently of the code.
func valid(c Config) string {
	if n := len(c.Name); n < 1 || n > 63 || strings.Trim(c.Name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != "" {
		return "bad name"
	}
	if c.ID != "" && (len(c.ID) != 8 || strings.Trim(c.ID, "0123456789abcdef") != "") {
		return "bad id"
	}
	if c.Addr.IsValid() {
		a := c.Addr.Addr()
		if !a.Is4() || c.Addr.Bits() < 1 || c.Addr.Bits() > 32 {
			return "bad ip"
		}
		if c.Addr.Bits() < 31 {
			b := a.As4()
			host := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
			host &= 1<<(32-c.Addr.Bits()) - 1
			if host == 0 || host == 1<<(32-c.Addr.Bits())-1 {
				return "ip is network or broadcast address"
			}
		}
	} else if c.Addr != (netip.Prefix{}) {
		return "invalid non-zero ip"
	}
	if c.MTU != 0 && (c.MTU < 68 || c.MTU > 1500) {
		return "bad mtu"
	}
	if c.Gateway.IsValid() {
		if !c.Gateway.Is4() {
			return "bad gw"
		}
		if c.Addr.IsValid() && (!c.Addr.Contains(c.Gateway) || c.Gateway == c.Addr.Addr()) {
			return "gw outside subnet"
		}
	}
	return ""
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"",
		"name=n1 ip=10.0.0.2/24 gw=10.0.0.1 id=0a1b2c3d",
		"name=n1 9p=rw",
		"ip=10.0.0.255/24 gw=10.0.0.1",
		"ip=192.168.0.1/30 gw=192.168.0.2",
		"name=a name=b foo bar=baz console=ttyS0",
		"ip=1.2.3.4/31 gw=1.2.3.5 id=DEADBEEF",
		"mdns=off http=off",
		"mtu=1450 mtu=9000",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, cmdline string) {
		c, warnings := Parse(cmdline)
		if why := valid(c); why != "" {
			t.Fatalf("Parse(%q) = %+v: %s", cmdline, c, why)
		}
		for _, w := range warnings {
			if !strings.HasPrefix(w, "bootcfg: ") || strings.ContainsAny(w, "\n\r") {
				t.Fatalf("Parse(%q): warning %q is not one bootcfg line", cmdline, w)
			}
		}
		// String gives a command line that parses back cleanly.
		c3, warnings3 := Parse(c.String())
		if c3 != c || len(warnings3) != 0 {
			t.Fatalf("Parse(%q) = %+v; Parse(%q) = %+v, %q", cmdline, c, c.String(), c3, warnings3)
		}
	})
}
