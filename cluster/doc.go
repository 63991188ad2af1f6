// Package cluster is Fornax's cluster membership: nodes on one IPv4
// subnet find each other by UDP broadcast gossip on port 9710, nodes
// given seeds reach peers on other subnets by unicast, and each serves
// what it knows as a Plan 9 style file tree, mounted by the kernel at
// /cluster. It is the reference implementation of docs/protocol.md,
// which is the contract: the section numbers in comments (§4.1, §8.2)
// are that document's.
//
// The package is plain Go, with no dependency on the kernel: it runs on
// the host as well as in the TamaGo image built with -tags cluster, and
// the kernel's name space takes its tree through an interface. It is made
// of:
//
//   - the codec (codec.go): the messages ANNOUNCE, HEARTBEAT, LEAVE,
//     PROBE, ASK, RELAY, SYNC and STATE (codec_state.go), one table of
//     their verbs (verbs.go), Parse, Validate and Append
//     of their one canonical wire form (§2, §3), signing and checking them
//     (§9.1), the reasons a datagram is dropped (§6), and the rules for
//     node ids and names (ValidID, ValidName, after fornax/internal/names);
//   - the table (table.go): the peers, keyed by node id, and their states
//     online, suspect and dead (§4.3, §5), with the bounded memory of
//     what each signer last sent (seen.go, §9.2);
//   - the node (node.go, config.go, run.go, receive.go, send.go, logs.go):
//     New and Run, an I/O shell around small pure parts that, like the
//     table, decide with the time passed in: the send schedule
//     (schedule.go), fast-join answers and refutations (replier.go),
//     probes of quiet peers, direct and through helpers (ASK, RELAY),
//     and their budgets (prober.go, prober_ask.go, quiet.go, probe.go)
//     (§4.5), seeds and the state exchange, SYNC and STATE: a
//     newcomer's whole view in one answer, peers off the subnet reached
//     by unicast, and what a node takes from off it (span.go, state.go,
//     state_recv.go, §4.6), and the
//     numbers of signed messages (sequencer.go, §9.1); validation of what
//     arrives (§6), the statistics and the log within its budgets (§8.2,
//     §8.3; limit.go), the registry of running containers (Containers,
//     containers.go) and the Clock it keeps time by (clock.go);
//   - the tree (tree.go): Tree, the /cluster files (§8), each directory a
//     table of entries, and ctl, the control file (§8.1);
//   - the keys (keys.go): key files and fingerprints, the keyring and the
//     auth modes plain, mixed and keyed (§9).
//
// Using it takes a socket, a Config and a goroutine:
//
//	// A UDP socket on DefaultPort that may send to the broadcast address.
//	pc, err := net.ListenPacket("udp4", ":9710")
//	...
//	node, err := cluster.New(cluster.Config{
//		ID:     cluster.IDFromMAC(mac),
//		Addr:   netip.MustParseAddr("10.0.2.15"),
//		Prefix: netip.MustParsePrefix("10.0.2.15/24"),
//	}, pc)
//	...
//	go node.Run(ctx) // gossips until ctx is done or the socket fails
//	space.Mount("/cluster", node.Tree())
//
// Run sends the node's own messages on schedule and takes in its peers';
// Peers, Name, Containers, Join, Leave and Rename are safe to call from
// any goroutine meanwhile, and so are the Tree's methods (Stat, ReadDir,
// ReadFile, WriteFile: the kernel's name-space Server), which are how an
// operator sees and steers the node: ls /cluster/nodes, echo leave >
// /cluster/ctl. Time comes from Config.Clock, so tests run a node on a
// fake clock; the other fields of Config left zero take the protocol's
// defaults.
package cluster
