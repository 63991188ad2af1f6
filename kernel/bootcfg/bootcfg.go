// Package bootcfg parses the kernel command line the board passes to
// Fornax (QEMU's -append string) into the node's boot configuration.
//
// The command line is a list of space-separated key=value words:
//
//	name=n1 ip=10.0.0.2/24 gw=10.0.0.1 id=0a1b2c3d 9p=rw profile=fast
//
// Parsing never fails: a word that cannot be used is reported as a warning
// and the key it set keeps its default, so a typo cannot stop a node from
// booting.
package bootcfg

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"fornax/drivers/virtio"
	"fornax/internal/ipv4"
	"fornax/internal/names"
)

// DefaultName is the node name when none is given.
const DefaultName = "fornax"

// Config is a node's boot configuration.
type Config struct {
	// Name is the node name: 1 to 63 of A-Z a-z 0-9 . _ - (names.ValidName)
	Name string
	// NameSet reports whether name= gave Name; if not, Name is
	// DefaultName and a service may choose better (the cluster names
	// the node after its id).
	NameSet bool
	// Addr is the node's IPv4 address and prefix length; the zero Prefix
	// (not valid) means no address is configured.
	Addr netip.Prefix
	// Gateway is the default IPv4 gateway, inside Addr's subnet when Addr
	// is set; the zero Addr means none.
	Gateway netip.Addr
	// ID is the node id, 8 lowercase hex digits (names.ValidID), or ""
	// if unset.
	ID string
	// NinePWritable is 9p=rw: 9P clients may write the name space's
	// ctl files. The default, 9p=ro, serves it read-only.
	NinePWritable bool
	// Profile is the cluster's timing profile (profile=; docs/protocol.md
	// §4.4), "" for the default. Only its spelling is checked here, so
	// that the plain image links no cluster code: the cluster service
	// refuses a name cluster.LookupProfile does not know.
	Profile string
	// OffloadsOff are the network offloads the virtio-net driver
	// declines (offload=; docs/guide.md, "Network path"), to compare or to
	// work around a device. Zero takes every offload the device offers.
	OffloadsOff virtio.Offloads
	// HTTPPort is the HTTP face's TCP port (http=; docs/guide.md, "The
	// HTTP face"), 0 for its default; HTTPOff is http=off.
	HTTPPort uint16
	HTTPOff  bool
	// MTU is mtu=: the link's IP MTU, below the device's (docs/guide.md,
	// "Across hosts"), for a path narrower than the device says; 0 keeps
	// the device's (virtio-net's mtu, or 1500). See LinkMTU.
	MTU int
	// MDNSOff is mdns=off: the node does not answer to <name>.local nor
	// publish its services over mDNS (docs/guide.md, "Names (mDNS)").
	// The default, mdns=on, does.
	MDNSOff bool
	// Seeds is seeds=, the nodes off the subnet the cluster reaches by
	// unicast (docs/protocol.md §4.6), as given: IPv4 addresses
	// separated by commas. Only its spelling is checked here, as
	// Profile's is: the cluster service parses it (cluster.ParseSeeds).
	Seeds string
}

// parseOffloads reads offload='s value: on, off, or the offloads to keep,
// comma-separated, by the names of virtio's table; it returns those to
// decline.
func parseOffloads(v string) (virtio.Offloads, error) {
	switch v {
	case "on":
		return 0, nil
	case "off":
		return virtio.AllOffloads, nil
	}
	var keep virtio.Offloads
	for _, w := range strings.Split(v, ",") {
		o := virtio.OffloadNamed(w)
		if o == 0 {
			return 0, fmt.Errorf("want on, off, or some of %s", strings.Join(virtio.AllOffloads.Names(), ","))
		}
		keep |= o
	}
	if err := keep.Check(); err != nil {
		return 0, err
	}
	return virtio.AllOffloads &^ keep, nil
}

// keptString is offload='s value for the offloads off declined.
func keptString(off virtio.Offloads) string {
	if off&virtio.AllOffloads == virtio.AllOffloads {
		return "off"
	}
	return strings.Join((virtio.AllOffloads &^ off).Names(), ",")
}

// quiet reports whether key belongs to QEMU or Linux conventions and is
// passed over without a word, however often it appears.
func quiet(key string) bool {
	switch key {
	case "virtio_mmio.device", "console", "earlyprintk", "reboot", "panic":
		return true
	}
	return false
}

// known reports whether Parse uses key.
func known(key string) bool {
	switch key {
	case "name", "ip", "gw", "id", "9p", "profile", "offload", "http", "mdns", "mtu", "seeds":
		return true
	}
	return false
}

// Parse reads the command line. It returns the configuration and a
// warning for every word it ignored or value it overrode.
func Parse(cmdline string) (Config, []string) {
	var warnings []string
	warn := func(format string, args ...any) {
		warnings = append(warnings, "bootcfg: "+fmt.Sprintf(format, args...))
	}

	values := make(map[string]string)
	for _, word := range strings.Fields(cmdline) {
		key, value, ok := strings.Cut(word, "=")
		switch {
		case !ok:
			warn("ignoring %q: not key=value", word)
		case quiet(key):
		case !known(key):
			warn("ignoring unknown key %q", key)
		default:
			if _, dup := values[key]; dup {
				warn("duplicate key %q: the last one wins", key)
			}
			values[key] = value
		}
	}

	c := Config{Name: DefaultName}
	// gw is checked after ip, which it depends on.
	for _, key := range []string{"name", "ip", "gw", "id", "9p", "profile", "offload", "http", "mdns", "mtu", "seeds"} {
		value, ok := values[key]
		if !ok {
			continue
		}
		var err error
		switch key {
		case "name":
			if err = names.CheckName(value); err == nil {
				c.Name, c.NameSet = value, true
			}
		case "ip":
			c.Addr, err = parseAddr(value)
		case "gw":
			c.Gateway, err = parseGateway(value, c.Addr)
		case "id":
			if err = names.CheckID(value); err == nil {
				c.ID = value
			}
		case "9p":
			switch value {
			case "ro":
				c.NinePWritable = false
			case "rw":
				c.NinePWritable = true
			default:
				err = errors.New("want ro or rw")
			}
		case "offload":
			var off virtio.Offloads
			if off, err = parseOffloads(value); err == nil {
				c.OffloadsOff = off
			}
		case "profile":
			if err = checkProfile(value); err == nil {
				c.Profile = value
			}
		case "http":
			c.HTTPPort, c.HTTPOff, err = parseHTTP(value)
		case "mtu":
			c.MTU, err = parseMTU(value)
		case "seeds":
			if err = checkSeeds(value); err == nil {
				c.Seeds = value
			}
		case "mdns":
			switch value {
			case "on":
				c.MDNSOff = false
			case "off":
				c.MDNSOff = true
			default:
				err = errors.New("want on or off")
			}
		}
		if err != nil {
			warn("ignoring bad %s= value %q: %v", key, value, err)
		}
	}
	return c, warnings
}

// parseHTTP reads http='s value: off, or a TCP port.
func parseHTTP(s string) (port uint16, off bool, err error) {
	if s == "off" {
		return 0, true, nil
	}
	p, err := strconv.ParseUint(s, 10, 16)
	if err != nil || p == 0 {
		return 0, false, errors.New("want off or a port from 1 to 65535")
	}
	return uint16(p), false, nil
}

// parseMTU reads mtu='s value: an IP MTU the driver's buffers carry,
// from IPv4's minimum (68, RFC 791) to 1500.
func parseMTU(s string) (int, error) {
	m, err := strconv.Atoi(s)
	if err != nil || m < virtio.MinMTU || m > virtio.MTU || strconv.Itoa(m) != s {
		return 0, fmt.Errorf("want an MTU from %d to %d", virtio.MinMTU, virtio.MTU)
	}
	return m, nil
}

// LinkMTU returns the link's MTU on a device whose MTU is device: mtu=
// may lower it, never raise it (the device, or the path behind it, would
// drop the larger frames), and a warning says so if it tried.
func (c Config) LinkMTU(device int) (mtu int, warning string) {
	if c.MTU == 0 || c.MTU == device {
		return device, ""
	}
	if c.MTU > device {
		return device, fmt.Sprintf("bootcfg: ignoring mtu=%d: above the device's MTU, %d, which the link keeps", c.MTU, device)
	}
	return c.MTU, ""
}

// checkSeeds checks the spelling of a seed list: digits, dots and
// commas, a few dozen addresses at most.
func checkSeeds(s string) error {
	if s == "" || len(s) > 512 || strings.Trim(s, "0123456789.,") != "" {
		return errors.New("want IPv4 addresses separated by commas, such as 10.1.0.2,10.2.0.7")
	}
	return nil
}

// checkProfile checks the spelling of a profile name: 1 to 32 lowercase
// letters.
func checkProfile(s string) error {
	if s == "" || len(s) > 32 || strings.Trim(s, "abcdefghijklmnopqrstuvwxyz") != "" {
		return errors.New("want a profile name, such as fast (1 to 32 of a-z)")
	}
	return nil
}

// parseIPv4 parses a dotted-quad address fit for a host or router.
func parseIPv4(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		// netip's message repeats the input, which the warning already shows.
		msg, _ := strings.CutPrefix(err.Error(), fmt.Sprintf("ParseAddr(%q): ", s))
		return netip.Addr{}, errors.New(msg)
	}
	switch {
	case !a.Is4():
		return netip.Addr{}, errors.New("not an IPv4 address")
	case a.IsUnspecified(), a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return netip.Addr{}, errors.New("not a host address")
	case a.IsLoopback():
		return netip.Addr{}, errors.New("loopback address")
	case a.IsMulticast():
		return netip.Addr{}, errors.New("multicast address")
	}
	return a, nil
}

// parseAddr parses an address with its prefix length, as 10.0.0.2/24.
func parseAddr(s string) (netip.Prefix, error) {
	as, bs, ok := strings.Cut(s, "/")
	if !ok {
		return netip.Prefix{}, errors.New("missing /prefix length")
	}
	a, err := parseIPv4(as)
	if err != nil {
		return netip.Prefix{}, err
	}
	bits, err := strconv.Atoi(bs)
	if err != nil || bits < 1 || bits > 32 || strconv.Itoa(bits) != bs {
		return netip.Prefix{}, errors.New("prefix length must be 1 to 32")
	}
	p := netip.PrefixFrom(a, bits)
	if err := hostInSubnet(a, p); err != nil {
		return netip.Prefix{}, err
	}
	return p, nil
}

// hostInSubnet checks that a is a usable host address in p: inside it and,
// where the subnet has them (/30 and larger), not its network or broadcast
// address.
func hostInSubnet(a netip.Addr, p netip.Prefix) error {
	if !p.Contains(a) {
		return fmt.Errorf("not in %v", p.Masked())
	}
	if !ipv4.HasBroadcast(p) {
		return nil
	}
	network := p.Masked().Addr()
	if a == network {
		return fmt.Errorf("network address of %v", p.Masked())
	}
	if a == ipv4.Broadcast(p) {
		return fmt.Errorf("broadcast address of %v", p.Masked())
	}
	return nil
}

// parseGateway parses a gateway address, which must be a host in the
// node's subnet other than the node itself when the node has an address.
func parseGateway(s string, addr netip.Prefix) (netip.Addr, error) {
	gw, err := parseIPv4(s)
	if err != nil {
		return netip.Addr{}, err
	}
	if !addr.IsValid() {
		return gw, nil
	}
	if err := hostInSubnet(gw, addr); err != nil {
		return netip.Addr{}, err
	}
	if gw == addr.Addr() {
		return netip.Addr{}, errors.New("is the node's own address")
	}
	return gw, nil
}

// String gives the configuration as a command line Parse reads back,
// leaving out what is unset.
func (c Config) String() string {
	var w []string
	if c.NameSet {
		w = append(w, "name="+c.Name)
	}
	if c.Addr.IsValid() {
		w = append(w, "ip="+c.Addr.String())
	}
	if c.Gateway.IsValid() {
		w = append(w, "gw="+c.Gateway.String())
	}
	if c.ID != "" {
		w = append(w, "id="+c.ID)
	}
	if c.NinePWritable {
		w = append(w, "9p=rw")
	}
	if c.Profile != "" {
		w = append(w, "profile="+c.Profile)
	}
	if c.OffloadsOff != 0 {
		w = append(w, "offload="+keptString(c.OffloadsOff))
	}
	switch {
	case c.HTTPOff:
		w = append(w, "http=off")
	case c.HTTPPort != 0:
		w = append(w, "http="+strconv.Itoa(int(c.HTTPPort)))
	}
	if c.MDNSOff {
		w = append(w, "mdns=off")
	}
	if c.MTU != 0 {
		w = append(w, "mtu="+strconv.Itoa(c.MTU))
	}
	if c.Seeds != "" {
		w = append(w, "seeds="+c.Seeds)
	}
	return strings.Join(w, " ")
}
