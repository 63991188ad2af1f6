//go:build tamago

package qemu_amd64

// Memory layout for `-m 128M` (build with `-tags linkramstart` and link with
// `-T 0x01010000`): the runtime owns 96 MB from 16 MB, DMA buffers (virtio
// rings and packet buffers) the 16 MB above it. Below 16 MB sit the page
// tables tamago builds at 0x9000-0xcfff and QEMU's boot data.
const (
	RamStart = 0x01000000
	RamSize  = 0x06000000
	DMAStart = 0x07000000
	DMASize  = 0x01000000
)

// The runtime learns RamStart and RamSize through goos.RamStart and
// goos.RamSize (tamago_internals.go).
