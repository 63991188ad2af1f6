package main

import (
	"fmt"
	"net"
	"net/netip"
	"time"

	"fornax/cluster"
)

// checkFanOut makes sure the LAN behaves as one: with n nodes' sockets
// open, one broadcast reaches each node once (its sender included, as a
// looped-back echo) and one unicast reaches its addressee only.
func checkFanOut(n int) error {
	bcast := broadcastAddr(subnet)
	conns := make([]*dualConn, n)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	for k := range conns {
		c, err := listenDual(hostAddr(k), bcast, cluster.DefaultPort)
		if err != nil {
			return fmt.Errorf("fan-out check: node %d: %w", k, err)
		}
		conns[k] = c
	}
	send := func(to netip.Addr, msg string) error {
		_, err := conns[0].WriteTo([]byte(msg), net.UDPAddrFromAddrPort(netip.AddrPortFrom(to, cluster.DefaultPort)))
		return err
	}
	if err := send(bcast, "broadcast"); err != nil {
		return fmt.Errorf("fan-out check: %w", err)
	}
	if err := send(hostAddr(1), "unicast"); err != nil {
		return fmt.Errorf("fan-out check: %w", err)
	}
	// Every copy arrives within microseconds; after a wait, each socket
	// is read until it has been quiet for a little while.
	time.Sleep(300 * time.Millisecond)
	for k, c := range conns {
		got := map[string]int{}
		c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		buf := make([]byte, 64)
		for {
			m, _, err := c.ReadFrom(buf)
			if err != nil {
				break
			}
			got[string(buf[:m])]++
		}
		wantUni := 0
		if k == 1 {
			wantUni = 1
		}
		if got["broadcast"] != 1 || got["unicast"] != wantUni || len(got) > 2 {
			return fmt.Errorf("fan-out check: node %d received %v, want one broadcast and %d unicast: the namespace's link does not behave as a LAN", k, got, wantUni)
		}
	}
	return nil
}
