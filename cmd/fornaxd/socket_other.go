//go:build !linux

package main

import (
	"errors"
	"net"
)

// listenGossip needs Linux: SO_BINDTODEVICE, and /proc for the figures.
func listenGossip(ifname string, port int) (net.PacketConn, error) {
	return nil, errors.New("fornaxd runs on Linux only (it binds its socket to an interface with SO_BINDTODEVICE)")
}
