// Command fornaxd is a Fornax cluster node as a Linux daemon: the
// cluster package, unchanged, on one interface of a Linux host. It
// gossips with Fornax VMs and other fornaxd hosts on that interface's
// subnet (docs/protocol.md, keyed or not), serves its name space (/cluster,
// and /dev with sysname, kmesg and time, the layout of a Fornax VM) over
// 9P2000, logs membership changes to stderr and, on SIGTERM or SIGINT,
// sends LEAVE and exits 0. `fornaxd -help` lists the flags;
// docs/guide.md ("fornaxd") shows a session.
//
// The pieces are apart so that each is tested on its own: flags.go (the
// command line), iface.go (choosing the interface, address and id),
// socket_linux.go (the gossip socket), proc.go (the host's figures from
// /proc), keyfile.go (the cluster key) and this file, which puts them
// together and runs them.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"fornax/cluster"
	"fornax/face"
	"fornax/fs/file"
	"fornax/fs/ninep"
	"fornax/fs/ns"
	"fornax/fs/sys"
	"fornax/internal/names"
	"fornax/mdns"
	"fornax/mdns/nodeinfo"
)

func main() {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, sigs))
}

// run is fornaxd: it returns the exit status, 0 after a signal, 2 for a
// bad command line, 1 when something else fails.
func run(args []string, stdout, stderr io.Writer, sigs <-chan os.Signal) int {
	o, err := parseFlags(args)
	if errors.Is(err, flag.ErrHelp) {
		writeUsage(stdout)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "fornaxd: %v\n", err)
		return 2
	}
	logger := log.New(stderr, "", log.LstdFlags)
	d, err := start(o, logger)
	if err != nil {
		fmt.Fprintf(stderr, "fornaxd: %v\n", err)
		if errors.As(err, new(usageError)) {
			return 2
		}
		return 1
	}
	return d.serve(sigs)
}

// daemon is a running fornaxd.
type daemon struct {
	node  *cluster.Node
	conn  net.PacketConn
	l     net.Listener // nil without 9P
	srv   *ninep.Server
	hl    net.Listener // nil without the HTTP face
	face  *face.Server
	mconn net.PacketConn // nil with -mdns=false
	mdns  *mdns.Server
	minfo func() (mdns.Info, bool)
	logf  func(format string, args ...any)
	intro string // the line that says what runs where
}

// start sets everything up from the options, or fails without leaving
// anything open. Errors about the options are usageErrors.
func start(o options, logger *log.Logger) (*daemon, error) {
	me, err := identify(o)
	if err != nil {
		return nil, err
	}
	started := time.Now()
	kern := sys.New(sys.Machine{
		Uptime: func() time.Duration { return time.Since(started) },
		Now:    time.Now,
	}, me.name)
	// Log lines go to stderr and, as in a VM, to /dev/kmesg.
	logf := func(format string, args ...any) {
		kern.Logf(format, args...)
		logger.Printf(format, args...)
	}
	proc := newProcFiles(logf)
	if err := proc.sample(); err != nil {
		return nil, fmt.Errorf("%w: fornaxd reads the host's figures from /proc (is it mounted?)", err)
	}

	conn, err := listenGossip(me.ifc.name, cluster.DefaultPort)
	if err != nil {
		return nil, err
	}
	seeds, err := cluster.ParseSeeds(o.seeds) // checked by parseFlags
	if err != nil {
		conn.Close()
		return nil, err
	}
	// The key is read last: from here Assemble has it, and clears it.
	keys, err := loadKeys(o.keyFile, logger)
	if err != nil {
		conn.Close()
		return nil, err
	}
	node, desc, err := cluster.Assemble(cluster.Config{
		ID:        me.id,
		Name:      me.name,
		Addr:      me.prefix.Addr(),
		Prefix:    me.prefix,
		Resources: proc.Resources,
		Logf:      logf,
		Keys:      keys,
		Seeds:     seeds,
	}, o.profile, conn)
	if err != nil {
		conn.Close()
		return nil, err
	}
	kern.SetNameFunc(node.Name) // a rename through ctl shows in /dev/sysname

	d := &daemon{node: node, conn: conn, logf: logf}
	mdnsDesc := "no mDNS (-mdns=false)"
	if o.mdns {
		if err := d.listenMDNS(o, me, logf); err != nil {
			conn.Close()
			return nil, err
		}
		mdnsDesc = fmt.Sprintf("mDNS on udp/%d", mdns.Port)
	}
	ninepDesc, err := d.listen9P(o, me.prefix.Addr(), node.Tree(), kern.Dev())
	if err != nil {
		d.closeAll()
		return nil, err
	}
	uptime := func() time.Duration { return time.Since(started) }
	httpDesc, err := d.listenHTTP(o, me.prefix.Addr(), uptime, proc.Resources)
	if err != nil {
		d.closeAll()
		return nil, err
	}
	d.intro = fmt.Sprintf("fornaxd: node %s (%s) on %s %v, udp/%d, %s, profile %s; %s; %s; %s",
		me.id, me.name, me.ifc.name, me.prefix, cluster.DefaultPort, desc.Key, desc.Profile, ninepDesc, httpDesc, mdnsDesc)
	return d, nil
}

// self is who the node is and where it gossips.
type self struct {
	ifc      ifaceInfo
	prefix   netip.Prefix
	id, name string
}

// identify resolves -iface, -addr, -id and -name against the host.
func identify(o options) (self, error) {
	bad := func(err error) error { return usageError{err.Error()} }
	ifs, err := loadInterfaces()
	if err != nil {
		return self{}, err
	}
	var me self
	if me.ifc, err = pickInterface(ifs, o.iface); err != nil {
		return self{}, bad(err)
	}
	if me.prefix, err = pickAddr(me.ifc, o.addr); err != nil {
		return self{}, bad(err)
	}
	if me.id, err = nodeID(me.ifc, o.id); err != nil {
		return self{}, bad(err)
	}
	me.name = o.name
	if me.name == "" {
		host, _ := os.Hostname()
		me.name = defaultName(host, me.id)
	}
	return me, nil
}

// loadKeys reads -key-file, if given.
func loadKeys(path string, logger *log.Logger) ([][]byte, error) {
	if path == "" {
		return nil, nil
	}
	key, warning, err := readKeyFile(path)
	if err != nil {
		return nil, usageError{err.Error()}
	}
	if warning != "" {
		logger.Printf("fornaxd: warning: %s", warning)
	}
	return [][]byte{key}, nil
}

// listen9P opens the 9P listener of -listen (default addr:564) on a name
// space of /cluster and /dev, the paths of a Fornax VM, and describes
// it; with -listen none it does nothing.
func (d *daemon) listen9P(o options, addr netip.Addr, clusterTree, dev file.Server) (string, error) {
	if o.listen == listenNone {
		return "no 9P (-listen none)", nil
	}
	space := ns.New()
	if err := space.Mount("/cluster", clusterTree); err != nil {
		return "", err
	}
	if err := space.Mount("/dev", dev); err != nil {
		return "", err
	}
	if d.mdns != nil {
		if err := space.Mount("/mdns", d.mdns); err != nil {
			return "", err
		}
	}
	where := o.listen
	if where == "" {
		where = netip.AddrPortFrom(addr, ninePPort).String()
	}
	l, err := net.Listen("tcp", where)
	if err != nil {
		return "", listenError(where, err)
	}
	d.l, d.srv = l, ninep.New(space, ninep.Config{Writable: o.rw})
	mode := "read-only"
	if o.rw {
		mode = "read-write (-9p-rw)"
	}
	return fmt.Sprintf("9P on tcp %v, %s", l.Addr(), mode), nil
}

// listenHTTP opens the HTTP face on addr:-http and describes it; with
// -http none it does nothing.
func (d *daemon) listenHTTP(o options, addr netip.Addr, uptime func() time.Duration, res func() cluster.Resources) (string, error) {
	if o.httpPort == 0 {
		return "no HTTP (-http none)", nil
	}
	cols := []face.Collector{face.MachineCollector(uptime, res)}
	if d.srv != nil {
		cols = append(cols, face.NinePCollector(&d.srv.Stats))
	}
	f, err := face.New(face.Config{Node: d.node, Addr: addr, Port: o.httpPort, Profile: o.profile.Name,
		Resources: res, Collectors: cols})
	if err != nil {
		return "", err
	}
	where := netip.AddrPortFrom(addr, o.httpPort).String()
	l, err := net.Listen("tcp", where)
	if err != nil {
		return "", fmt.Errorf("-http %d: %w", o.httpPort, err)
	}
	d.hl, d.face = l, f
	return fmt.Sprintf("HTTP on tcp %v", l.Addr()), nil
}

// listenMDNS opens the mDNS socket on the interface and sets up the
// responder of the node (package mdns, docs/guide.md "Names (mDNS)").
func (d *daemon) listenMDNS(o options, me self, logf func(string, ...any)) error {
	conn, err := listenMDNS(me.ifc.name)
	if err != nil {
		return err
	}
	addr := me.prefix.Addr()
	d.minfo = func() (mdns.Info, bool) {
		var ninep uint16 // 9P's port, once listen9P has it
		if d.l != nil {
			if ta, ok := d.l.Addr().(*net.TCPAddr); ok {
				ninep = uint16(ta.Port)
			}
		}
		return nodeinfo.Info(d.node, addr, o.profile.Name, nodeinfo.Ports{NineP: ninep, HTTP: o.httpPort})
	}
	r := mdns.New(mdns.Config{Link: me.prefix.Masked(), Logf: logf})
	d.mconn, d.mdns = conn, mdns.NewServer(r, conn, nil)
	return nil
}

// closeAll closes what start opened.
func (d *daemon) closeAll() {
	d.conn.Close()
	for _, c := range []io.Closer{d.l, d.hl, d.mconn} {
		if c != nil {
			c.Close()
		}
	}
}

// listenError says how to get the 9P port.
func listenError(addr string, err error) error {
	switch {
	case errors.Is(err, syscall.EACCES):
		return fmt.Errorf("-listen %s: %w: ports below 1024 need root or CAP_NET_BIND_SERVICE (sudo setcap cap_net_bind_service=ep fornaxd), or choose another port (-listen :5640)", addr, err)
	case errors.Is(err, syscall.EADDRINUSE):
		return fmt.Errorf("-listen %s: %w: another server has that port; choose another (-listen :5640) or turn 9P off (-listen none)", addr, err)
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return fmt.Errorf("-listen %s: %w: the address is not one of this host's", addr, err)
	}
	return fmt.Errorf("-listen %s: %w", addr, err)
}

// serve runs the node and the 9P server until a signal, or until either
// fails; then it leaves the cluster and closes everything. It returns
// the exit status.
func (d *daemon) serve(sigs <-chan os.Signal) int {
	d.logf("%s", d.intro)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runDone := make(chan error, 1)
	go func() { runDone <- d.node.Run(ctx) }()
	srvDone := make(chan error, 1)
	if d.l != nil {
		go func() { srvDone <- d.srv.Serve(d.l) }()
	}
	httpDone := make(chan error, 1)
	if d.hl != nil {
		go func() { httpDone <- d.face.Serve(d.hl) }()
	}
	mdnsDone := make(chan error, 1)
	followDone := make(chan struct{})
	if d.mdns != nil {
		go func() { mdnsDone <- d.mdns.Run(ctx) }()
		changed, err := nodeinfo.Changes(ctx, d.node)
		if err != nil { // then every nodeinfo.Recheck only
			d.logf("mdns: following the node's events: %v", err)
		}
		go func() { nodeinfo.Follow(ctx, d.mdns, d.minfo, changed, d.logf); close(followDone) }()
	} else {
		close(followDone)
	}
	code := 0
	select {
	case s := <-sigs:
		d.logf("fornaxd: %s: leaving the cluster", signalName(s))
	case err := <-runDone:
		runDone <- err
		d.logf("fornaxd: gossip stopped: %v", err)
		code = 1
	case err := <-srvDone:
		d.logf("fornaxd: 9P stopped: %v", err)
		code = 1
	case err := <-httpDone:
		d.logf("fornaxd: HTTP stopped: %v", err)
		code = 1
	case err := <-mdnsDone:
		d.logf("fornaxd: mDNS stopped: %v", err)
		code = 1
	}
	// Leave writes the LEAVE before it returns, and a datagram handed to
	// the kernel is sent even once the socket is closed; a broadcast
	// needs no ARP first. So nothing to wait for but the write itself.
	d.node.Leave()
	cancel()
	<-runDone
	<-followDone
	if d.mdns != nil {
		// The goodbye (TTL 0) is written before Set returns.
		info, _ := d.minfo()
		d.mdns.Set(info, false)
		d.mconn.Close()
	}
	if d.l != nil {
		d.l.Close()
	}
	if d.hl != nil {
		d.hl.Close()
	}
	d.conn.Close()
	d.logf("fornaxd: stopped")
	return code
}

// signalName names the signals fornaxd stops on as kill(1) does.
func signalName(s os.Signal) string {
	switch s {
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGINT:
		return "SIGINT"
	}
	return s.String()
}

// defaultName is the node's name without -name: the host name up to its
// first dot, if that is a valid node name, else fornax-<id> as a Fornax
// VM without name= (docs/protocol.md §3).
func defaultName(host, id string) string {
	short, _, _ := strings.Cut(host, ".")
	if names.ValidName(short) {
		return short
	}
	return "fornax-" + id
}
