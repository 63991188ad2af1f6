//go:build tamago && cluster

package main

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"time"

	board "fornax/board/qemu_amd64"
	"fornax/cluster"
	"fornax/kernel/shell"
	"fornax/kernel/sys"
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
	keys, keyDesc, err := clusterKeys()
	if err != nil {
		return err
	}
	defer clearKeys(keys) // the node keeps copies
	pc, err := net.ListenPacket("udp4", fmt.Sprintf(":%d", cluster.DefaultPort))
	if err != nil {
		return err
	}
	meter := sys.NewLoadMeter(board.IdleTime, board.Uptime, board.NumCPU(), time.Second)
	var seed [16]byte
	crand.Read(seed[:])
	// Without name= the node is named after its id (fornax-<id>), so
	// that peers tell nodes apart.
	name := ""
	if s.cfg.NameSet {
		name = s.kern.Name()
	}
	profile := cluster.Profiles[0]
	if s.cfg.Profile != "" {
		// A profile the cluster does not know stops the service rather
		// than run another: peers judge us by the profile we announce
		// with (protocol §4.4).
		if profile, err = cluster.LookupProfile(s.cfg.Profile); err != nil {
			pc.Close()
			return fmt.Errorf("profile=%s: %w", s.cfg.Profile, err)
		}
	}
	cfg := cluster.Config{
		ID:     id,
		Name:   name,
		Addr:   s.cfg.Addr.Addr(),
		Prefix: s.cfg.Addr,
		Resources: func() cluster.Resources {
			total, _, free := s.kern.Mem()
			return cluster.Resources{CPUs: board.NumCPU(), MemTotal: total, MemFree: free, Load: meter.Load()}
		},
		Rand:  rand.New(rand.NewPCG(binary.LittleEndian.Uint64(seed[:8]), binary.LittleEndian.Uint64(seed[8:]))),
		Logf:  s.kern.Logf,
		Clock: startClusterClock(),
		Keys:  keys,
	}
	profile.Apply(&cfg)
	node, err := cluster.New(cfg, pc)
	if err != nil {
		pc.Close()
		return err
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
	if profile.Name != cluster.Profiles[0].Name {
		keyDesc += ", profile " + profile.Name // §4.4: every node must run it
	}
	fmt.Fprintf(s.con, "cluster: node %s joined on udp/%d, %s\n", id, cluster.DefaultPort, keyDesc)
	return nil
}

// keyFile is the fw_cfg file of the cluster key: QEMU's
// -fw_cfg name=opt/fornax/key,file=cluster.key. Not the command line,
// which /proc/cmdline shows to anyone at the console.
const keyFile = "opt/fornax/key"

// keyFileMax bounds what is read of it: a key file is 65 bytes.
const keyFileMax = 4096

// clusterKeys reads the cluster key, if QEMU was given one, and describes
// it by its fingerprint ("key 1a2b3c4d", or "no key"). A key file that is
// there but bad is an error: running keyless instead would be a surprise.
// The error never quotes the file.
func clusterKeys() (keys [][]byte, desc string, err error) {
	text, err := board.FwCfgFile(keyFile, keyFileMax)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, "no key", nil
	case errors.Is(err, board.ErrFwCfgTooLarge):
		return nil, "", fmt.Errorf("%w: a key file holds 64 hex digits (make one with: openssl rand -hex 32)", err)
	case err != nil:
		return nil, "", err
	}
	defer clear(text)
	key, err := cluster.ParseKey(text)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", keyFile, err)
	}
	return [][]byte{key}, "key " + cluster.Fingerprint(key), nil
}

func clearKeys(keys [][]byte) {
	for _, k := range keys {
		clear(k)
	}
}
