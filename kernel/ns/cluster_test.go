package ns_test

import (
	"fornax/cluster"
	"fornax/kernel/ns"
)

// The cluster's tree is mounted at /cluster: it must be a Server. The
// cluster package does not import ns (it imports nothing of the kernel),
// so the check is here; a _test file is not linked into the kernel, so
// the plain image does not import the cluster for it.
var _ ns.Server = (*cluster.Tree)(nil)

// Its events file is read as a stream through the name space.
var _ ns.Streamer = (*cluster.Tree)(nil)
