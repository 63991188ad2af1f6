//go:build tamago

package virtio

import (
	"github.com/usbarmory/tamago/dma"
)

// DMA allocates from a TamaGo DMA region, identity-mapped so that a
// buffer's address is its guest-physical address. A nil Region means the
// global one (dma.Init, done by the board package).
type DMA struct {
	Region *dma.Region
}

// Alloc implements Memory; the memory is reserved for good.
func (d DMA) Alloc(size, align int) (uint64, []byte) {
	var addr uint
	var buf []byte

	if d.Region != nil {
		addr, buf = d.Region.Reserve(size, align)
	} else {
		addr, buf = dma.Reserve(size, align)
	}

	return uint64(addr), buf
}
