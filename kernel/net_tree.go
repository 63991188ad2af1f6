//go:build tamago

package main

// The /net tree: the interface's address and counters, the driver's, the
// services'.

import (
	"strings"

	"fornax/drivers/virtio"
	"fornax/fs/ns"
	"fornax/kernel/netstack"
	"fornax/kernel/netsvc"
)

// netTree returns the /net tree of stack st over nic, with services svc.
func netTree(s *system, st *netstack.Stack, nic *virtio.Net, svc *netsvc.Services) *ns.Dir {
	netDir := ns.NewDir()
	netDir.File("ifconfig", ns.File{Read: func() ([]byte, error) { return ifconfig(st, nic), nil }})
	netDir.File("addr", ns.File{Read: func() ([]byte, error) { return []byte(s.cfg.Addr.String() + "\n"), nil }})
	netDir.File("ether", ns.File{Read: func() ([]byte, error) { return []byte(st.Info().MAC.String() + "\n"), nil }})
	netDir.File("virtio", ns.File{Read: func() ([]byte, error) {
		// the offloads by offload='s names: virtio's one table
		l := append([]string{"virtio offloads"}, nic.Offloads().Names()...)
		return []byte(nic.Stats().String() + strings.Join(l, " ") + "\n"), nil
	}})
	netDir.File("services", ns.File{Read: func() ([]byte, error) { return []byte(svc.Stats.String()), nil }})
	return netDir
}

// ifconfig is /net/ifconfig and the ifconfig command's output: the
// stack's figures, then the driver's.
func ifconfig(st *netstack.Stack, nic *virtio.Net) []byte {
	return []byte(st.Info().String() + nic.Stats().String())
}
