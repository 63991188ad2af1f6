package virtio

import (
	"fmt"
	"strings"
)

// Offloads is a set of the offloads the driver can take, named as the
// command line's offload= and /net/virtio name them (docs/guide.md,
// "Network path"). Each stands for one or two feature bits.
type Offloads uint8

const (
	OffloadCsum  Offloads = 1 << iota // csum: checksums both ways (CSUM, GUEST_CSUM)
	OffloadMrg                        // mrg: mergeable receive buffers (MRG_RXBUF)
	OffloadRxTSO                      // rxtso: 64 KiB receive segments (GUEST_TSO4); needs csum and mrg
	OffloadTxTSO                      // txtso: 64 KiB transmit segments (HOST_TSO4); needs csum

	AllOffloads = OffloadCsum | OffloadMrg | OffloadRxTSO | OffloadTxTSO
)

// offloads is the one table of the offloads, in the order they are
// listed: name, feature bits, and the offloads each needs (§5.1.3.1).
var offloads = [...]struct {
	o        Offloads
	name     string
	features uint64
	needs    Offloads
}{
	{OffloadCsum, "csum", FeatureNetCsum | FeatureNetGuestCsum, 0},
	{OffloadMrg, "mrg", FeatureNetMrgRxbuf, 0},
	{OffloadRxTSO, "rxtso", FeatureNetGuestTSO4, OffloadCsum | OffloadMrg},
	{OffloadTxTSO, "txtso", FeatureNetHostTSO4, OffloadCsum},
}

// OffloadNamed is the offload called name, or 0.
func OffloadNamed(name string) Offloads {
	for _, e := range offloads {
		if e.name == name {
			return e.o
		}
	}
	return 0
}

// Names lists the offloads of o by name, in the table's order.
func (o Offloads) Names() []string {
	var l []string
	for _, e := range offloads {
		if o&e.o != 0 {
			l = append(l, e.name)
		}
	}
	return l
}

// Check reports an offload in o that needs one o lacks, as a set of
// offloads to keep must not have: the driver would drop it anyway.
func (o Offloads) Check() error {
	for _, e := range offloads {
		if o&e.o != 0 && o&e.needs != e.needs {
			return fmt.Errorf("%s needs %s", e.name, strings.Join(e.needs.Names(), " and "))
		}
	}
	return nil
}

// features is the feature bits of the offloads in o.
func (o Offloads) features() uint64 {
	var f uint64
	for _, e := range offloads {
		if o&e.o != 0 {
			f |= e.features
		}
	}
	return f
}

// offloadsOf is the offloads any of whose feature bits is in f: csum
// for either direction's checksums, so that a TSO is never listed
// without the csum it needs.
func offloadsOf(f uint64) Offloads {
	var o Offloads
	for _, e := range offloads {
		if f&e.features != 0 {
			o |= e.o
		}
	}
	return o
}

// wantFeatures is the subset of offered the driver takes. The receive
// offloads go together: GUEST_TSO4 needs GUEST_CSUM (§5.1.3.1) and, with
// page-sized buffers, MRG_RXBUF to hold 64 KiB segments; MRG_RXBUF alone
// is taken too (it costs nothing). So do the transmit ones: HOST_TSO4
// needs CSUM.
//
// A receive queue of rxBufs pages that cannot hold a 64 KiB segment
// takes no GUEST_TSO4: the device would wait for room that never comes
// (QEMU holds a frame until the buffers for all of it are posted).
// Feature bits in decline are not taken, nor those that need them.
func wantFeatures(offered, decline uint64, rxBufs int) uint64 {
	want := uint64(FeatureVersion1|FeatureNetMAC) |
		(FeatureNetGuestCsum|FeatureNetMrgRxbuf|FeatureNetCsum)&^decline
	got := offered & want
	if got&(FeatureNetGuestCsum|FeatureNetMrgRxbuf) == FeatureNetGuestCsum|FeatureNetMrgRxbuf &&
		rxBufs*mrgBufSize >= NetHdrSize+MaxRxFrameSize {
		want |= FeatureNetGuestTSO4 &^ decline
	}
	if got&FeatureNetCsum != 0 {
		want |= FeatureNetHostTSO4 &^ decline // needs CSUM (§5.1.3.1)
	}
	return offered & want
}
