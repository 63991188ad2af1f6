//go:build tamago && cluster

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"strings"
	"time"

	board "fornax/board/qemu_amd64"
	"fornax/cluster"
	"fornax/fs/shell"
	"fornax/fs/sys"
)

func init() {
	services = append(services, service{20, "cluster", startCluster})
}

// startCluster joins the cluster on udp/9710 and mounts /cluster.
func startCluster(s *system) error {
	if s.net == nil {
		return errors.New("needs the network (ip= on the command line)")
	}
	id := s.cfg.ID
	if id == "" {
		id = cluster.IDFromMAC(s.net.Info().MAC)
	}
	profile := cluster.Profiles[0]
	if s.cfg.Profile != "" {
		// A profile the cluster does not know stops the service rather
		// than run another: peers judge us by the profile we announce
		// with (protocol §4.4).
		var err error
		if profile, err = cluster.LookupProfile(s.cfg.Profile); err != nil {
			return fmt.Errorf("profile=%s: %w", s.cfg.Profile, err)
		}
	}
	// A bad seed list stops the service, as a bad profile does: a node
	// started with seeds is meant to reach them, and would otherwise
	// sit alone on its segment saying nothing.
	seeds, err := cluster.ParseSeeds(s.cfg.Seeds)
	if err != nil {
		return fmt.Errorf("seeds=%s: %w", s.cfg.Seeds, err)
	}
	pc, err := net.ListenPacket("udp4", fmt.Sprintf(":%d", cluster.DefaultPort))
	if err != nil {
		return err
	}
	// The key is read last: from here Assemble has it, and clears it.
	keys, err := clusterKeys()
	if err != nil {
		pc.Close()
		return err
	}
	meter := sys.NewLoadMeter(board.IdleTime, board.Uptime, board.NumCPU(), time.Second)
	// Without name= the node is named after its id (fornax-<id>), so
	// that peers tell nodes apart.
	name := ""
	if s.cfg.NameSet {
		name = s.kern.Name()
	}
	res := func() cluster.Resources {
		total, _, free := s.kern.Mem()
		return cluster.Resources{CPUs: board.NumCPU(), MemTotal: total, MemFree: free, Load: meter.Load()}
	}
	node, desc, err := cluster.Assemble(cluster.Config{
		ID:        id,
		Name:      name,
		Addr:      s.cfg.Addr.Addr(),
		Prefix:    s.cfg.Addr,
		Resources: res,
		Logf:      s.kern.Logf,
		Clock:     startClusterClock(),
		Keys:      keys,
		Seeds:     seeds,
	}, profile, pc)
	if err != nil {
		pc.Close()
		// The package's errors begin with its name, which is the
		// service's: main adds that.
		msg, _ := strings.CutPrefix(err.Error(), "cluster: ")
		return errors.New(msg)
	}
	if err := s.space.Mount("/cluster", node.Tree()); err != nil {
		return err
	}
	// The node's name is the system's name: a rename through
	// /cluster/ctl shows in /dev/sysname and the prompt.
	s.kern.SetNameFunc(node.Name)
	s.shell.Add(shell.Command{Name: "container", Usage: "add|rm name", Help: "register or unregister a running container (advertised to peers)", MinArgs: 2, MaxArgs: 2, Run: func(w io.Writer, args []string) error {
		switch args[0] {
		case "add":
			return node.Containers().Add(args[1])
		case "rm":
			node.Containers().Remove(args[1])
			return nil
		}
		return fmt.Errorf("unknown subcommand %q: want add or rm", args[0])
	}})
	s.shell.Add(shell.Command{Name: "nodes", Help: "the cluster on one screen: this node, then its peers (/cluster/view)", Run: func(w io.Writer, args []string) error {
		b, err := node.Tree().ReadFile("view")
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}})
	go func() {
		// Run ends only if the socket fails: say so where people look.
		err := node.Run(context.Background())
		s.kern.Logf("cluster: stopped: %v", err)
		fmt.Fprintf(s.con, "cluster: stopped: %v\n", err)
	}()
	fmt.Fprintf(s.con, "cluster: node %s joined on udp/%d, %s\n", id, cluster.DefaultPort, desc)
	theNode = clusterNode{node, profile.Name, res}
	return nil
}

// keyFile is the fw_cfg file of the cluster key: QEMU's
// -fw_cfg name=opt/fornax/key,file=cluster.key. Not the command line,
// which /proc/cmdline shows to anyone at the console.
const keyFile = "opt/fornax/key"

// keyFileMax bounds what is read of it: a key file is 65 bytes.
const keyFileMax = 4096

// clusterKeys reads the cluster key, if QEMU was given one. A key file
// that is there but bad is an error: running keyless instead would be a
// surprise. The error never quotes the file.
func clusterKeys() ([][]byte, error) {
	text, err := board.FwCfgFile(keyFile, keyFileMax)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil
	case errors.Is(err, board.ErrFwCfgTooLarge):
		return nil, fmt.Errorf("%w: a key file holds 64 hex digits (make one with: openssl rand -hex 32)", err)
	case err != nil:
		return nil, err
	}
	defer clear(text)
	key, err := cluster.ParseKey(text)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", keyFile, err)
	}
	return [][]byte{key}, nil
}
