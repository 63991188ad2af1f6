//go:build tamago

package main

// The network's console commands: ifconfig, udpsend and udprecv.

import (
	"io"
	"net"

	"fornax/drivers/virtio"
	"fornax/fs/shell"
	"fornax/kernel/commands"
	"fornax/kernel/netstack"
)

// netCommands registers ifconfig, for stack st over nic, and the
// datagram commands, which use Go's net package (net.SocketFunc, set by
// st.Install).
func netCommands(s *system, st *netstack.Stack, nic *virtio.Net) {
	s.shell.Add(shell.Command{Name: "ifconfig", Help: "network address, MAC and counters", Run: func(w io.Writer, args []string) error {
		_, err := w.Write(ifconfig(st, nic))
		return err
	}})
	addCommands(s.shell, commands.UDP(net.ListenPacket))
}
