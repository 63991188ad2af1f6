//go:build tamago && cluster

package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"

	"fornax/face"
	"fornax/mdns"
	"fornax/mdns/nodeinfo"
)

func init() {
	services = append(services, service{50, "mdns", startMDNS})
}

// startMDNS answers to <name>.local and publishes the node's services
// over mDNS on udp/5353 (docs/guide.md "Names (mDNS)"), as fornaxd
// does: the same records (package nodeinfo), /mdns in the name space, a
// goodbye on leave and at halt. mdns=off turns it off. It starts last,
// when 9P and the face are known to run or not.
func startMDNS(s *system) error {
	if s.cfg.MDNSOff {
		return nil
	}
	if theNode.node == nil {
		return errors.New("needs the cluster")
	}
	// TTL 255 (RFC 6762 §11).
	conn, err := s.net.ListenMulticast(mdns.Group, 255)
	if err != nil {
		return fmt.Errorf("udp/%d in %v: %w", mdns.Port, mdns.Group.Addr(), err)
	}
	var ports nodeinfo.Ports
	if s.ninep != nil {
		ports.NineP = NinePPort
	}
	if !s.cfg.HTTPOff {
		// A face that failed to start says so on the console.
		ports.HTTP = cmp.Or(s.cfg.HTTPPort, face.DefaultPort)
	}
	addr := s.cfg.Addr.Addr()
	info := func() (mdns.Info, bool) {
		return nodeinfo.Info(theNode.node, addr, theNode.profile, ports)
	}
	r := mdns.New(mdns.Config{Link: s.cfg.Addr.Masked(), Logf: s.kern.Logf})
	srv := mdns.NewServer(r, conn, nil)
	if err := s.space.Mount("/mdns", srv); err != nil {
		conn.Close()
		return err
	}
	go func() {
		// Run ends only if the socket fails.
		err := srv.Run(context.Background())
		s.kern.Logf("mdns: stopped: %v", err)
	}()
	changed, err := nodeinfo.Changes(context.Background(), theNode.node)
	if err != nil {
		return err
	}
	go nodeinfo.Follow(context.Background(), srv, info, changed, s.kern.Logf)
	s.atHalt(func() {
		// The goodbye (TTL 0, RFC 6762 §10.1) is written before Set
		// returns.
		i, _ := info()
		srv.Set(i, false)
	})
	fmt.Fprintf(s.con, "mdns: answering to <name>.local on udp/%d in %v (/mdns/host)\n", mdns.Port, mdns.Group.Addr())
	return nil
}
