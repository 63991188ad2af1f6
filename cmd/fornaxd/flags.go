package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"fornax/cluster"
	"fornax/face"
	"fornax/internal/names"
)

// options are fornaxd's settings, from its flags.
type options struct {
	iface   string     // interface to gossip on; "" picks the only candidate
	addr    netip.Addr // which IPv4 address of it; invalid for the first
	name    string     // node name; "" for the default (defaultName)
	id      string     // node id; "" derives it from the MAC
	keyFile string     // cluster key file; "" for none (plain, §9)
	listen  string     // 9P address; "" for <addr>:564; "none" for no 9P
	profile cluster.Profile
	rw      bool // 9P clients may write ctl files (docs/protocol.md §10)
	// httpPort is the HTTP face's port on the gossip address; 0 for none.
	httpPort uint16
	mdns     bool // answer for the node over mDNS on -iface
	// seeds are nodes off -iface's subnet to introduce ourselves to by
	// unicast (docs/protocol.md §4.6), as cluster.ParseSeeds reads
	// them; "" for none: broadcast only.
	seeds string
}

// listenNone turns 9P off.
const listenNone = "none"

// ninePPort is 9P's port (IANA's 9pfs), the one Fornax VMs serve on.
const ninePPort = 564

// usageError is a bad command line: exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return usageError{fmt.Sprintf(format, args...) + " (fornaxd -help lists the flags)"}
}

const usageHead = `fornaxd is a Fornax cluster node as a Linux daemon: it gossips with
Fornax VMs and other fornaxd hosts by UDP broadcast on port 9710 of one
interface's subnet (docs/protocol.md), serves its /cluster tree over 9P,
logs membership changes to stderr, and on SIGTERM or SIGINT tells its
peers it is leaving (LEAVE) and exits 0.

Usage:

	fornaxd [flags]

Flags:

`

const usageTail = `
The gossip socket is bound to -iface (SO_BINDTODEVICE), so a host with
several interfaces gossips on that one only. That needs no privilege on
Linux 5.7 and later (root or CAP_NET_RAW before); serving 9P on port 564,
below 1024, needs root or CAP_NET_BIND_SERVICE (or -listen :5640):

	sudo setcap cap_net_bind_service=ep fornaxd

9P has no authentication and no encryption: whoever reaches -listen reads
the whole tree, and with -9p-rw can make the node leave, rename it or
replace its keys (docs/protocol.md §10). Keep -9p-rw to a trusted network.

Every node of a cluster must run the same -profile, and hold the same key
if any (make one with: openssl rand -hex 32 > cluster.key).

Examples:

	fornaxd -iface eth1
	fornaxd -iface br0 -name db-1 -key-file /etc/fornax/cluster.key -profile fast
	fornaxd -iface eth0 -key-file /etc/fornax/cluster.key -seeds 10.1.0.2,10.2.0.7
	mount -t 9p -o trans=tcp,port=564,version=9p2000 10.0.0.50 /mnt/fornax
`

// newFlagSet returns fornaxd's flags, bound to o.
func newFlagSet(o *options, profile, addr, httpPort *string) *flag.FlagSet {
	fs := flag.NewFlagSet("fornaxd", flag.ContinueOnError)
	fs.StringVar(&o.iface, "iface", "", "the `interface` to gossip on, e.g. eth0\n(default: the only one that is up, not loopback, and has an IPv4 address)")
	fs.StringVar(addr, "addr", "", "which IPv4 `address` of -iface to use (default: its first)")
	fs.StringVar(&o.name, "name", "", "the node's `name`: 1-63 of A-Z a-z 0-9 . _ -\n(default: the host name up to its first dot if it is a valid name, else fornax-<id>)")
	fs.StringVar(&o.id, "id", "", "the node `id`: 8 lowercase hex digits (default: derived from the MAC of -iface,\nas Fornax VMs derive theirs, docs/protocol.md §7)")
	fs.StringVar(&o.keyFile, "key-file", "", "the cluster key: a `file` of 64 hex digits; with it every message is signed\nand only signed ones are accepted (docs/protocol.md §9). Default: no key")
	fs.StringVar(&o.listen, "listen", "", "serve the name space (/cluster, /dev) over 9P2000 on this TCP `address`,\nor \"none\" (default: the address of -iface, port 564)")
	fs.StringVar(profile, "profile", cluster.Profiles[0].Name, "the timing `profile`: "+profileNames()+" (docs/protocol.md §4.4)")
	fs.StringVar(httpPort, "http", strconv.Itoa(face.DefaultPort), "serve the HTTP face (/metrics, /sd, /v1/members, a live page: docs/guide.md) on this TCP `port`\nof the gossip address, the same on every node, or \"none\"")
	fs.BoolVar(&o.mdns, "mdns", true, "answer to <name>.local and publish the node's services over mDNS / DNS-SD\n(udp/5353 on -iface; docs/guide.md \"Names (mDNS)\"); -mdns=false turns it off")
	fs.BoolVar(&o.rw, "9p-rw", false, "let 9P clients write /cluster/ctl (as a VM's 9p=rw); default read-only")
	fs.StringVar(&o.seeds, "seeds", "", "nodes on other subnets to reach by unicast: IPv4 `addresses` separated by commas,\ne.g. 10.1.0.2,10.2.0.7, the same list on every node (docs/protocol.md §4.6;\nuse a key with them, §10). Default: none, broadcast on -iface's subnet only")
	return fs
}

func profileNames() string {
	var s []string
	for _, p := range cluster.Profiles {
		s = append(s, p.Name)
	}
	return strings.Join(s, " or ")
}

// writeUsage prints -help.
func writeUsage(w io.Writer) {
	var o options
	var p, a, h string
	fs := newFlagSet(&o, &p, &a, &h)
	fs.SetOutput(w)
	io.WriteString(w, usageHead)
	fs.PrintDefaults()
	io.WriteString(w, usageTail)
}

// parseFlags parses the command line. -help returns flag.ErrHelp; any
// other error is a usageError of one line that names the flag.
func parseFlags(args []string) (options, error) {
	var o options
	var profile, addr, httpPort string
	fs := newFlagSet(&o, &profile, &addr, &httpPort)
	fs.SetOutput(io.Discard) // errors are ours, one line each
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return o, err
		}
		return o, usagef("%v", err)
	}
	if fs.NArg() > 0 {
		return o, usagef("unexpected argument %q: fornaxd takes flags only", fs.Arg(0))
	}
	var err error
	if o.profile, err = cluster.LookupProfile(profile); err != nil {
		return o, usagef("-profile %q: want %s, the profile of every other node", profile, profileNames())
	}
	if addr != "" {
		if o.addr, err = netip.ParseAddr(addr); err != nil || !o.addr.Is4() {
			return o, usagef("-addr %q: want an IPv4 address of -iface, e.g. 10.0.0.50", addr)
		}
	}
	if o.name != "" {
		if err := names.CheckName(o.name); err != nil {
			return o, usagef("-name %q: %v", o.name, err)
		}
	}
	if o.id != "" {
		if err := names.CheckID(o.id); err != nil {
			return o, usagef("-id %q: %v, e.g. 0a1b2c3d (or leave -id out to derive it from the MAC)", o.id, err)
		}
	}
	if o.listen != "" && o.listen != listenNone {
		if err := checkListen(o.listen); err != nil {
			return o, usagef("-listen %q: %v", o.listen, err)
		}
	}
	if httpPort != "none" {
		p, err := strconv.ParseUint(httpPort, 10, 16)
		if err != nil || p == 0 {
			return o, usagef("-http %q: want a port from 1 to 65535, or none", httpPort)
		}
		o.httpPort = uint16(p)
	}
	if _, err := cluster.ParseSeeds(o.seeds); err != nil {
		return o, usagef("-seeds %q: %v", o.seeds, err)
	}
	if o.iface != "" && strings.ContainsAny(o.iface, "/ \x00") {
		return o, usagef("-iface %q: not an interface name (ip link lists them)", o.iface)
	}
	return o, nil
}

// checkListen accepts host:port with a numeric port; the host may be
// empty (every address) or an IP address.
func checkListen(s string) error {
	host, portText, err := net.SplitHostPort(s)
	if err != nil {
		return errors.New("want an address and a port, e.g. 10.0.0.50:564 or :5640")
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return errors.New("want a numeric port, e.g. :5640")
	}
	if host != "" {
		if _, err := netip.ParseAddr(host); err != nil {
			return errors.New("want an IP address and a port, e.g. 10.0.0.50:564 or :5640")
		}
	}
	if port < 1 || port > 65535 {
		return errors.New("want a port from 1 to 65535, e.g. :5640")
	}
	return nil
}
