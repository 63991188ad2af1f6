package qemu_amd64

// The memory layout follows the RAM QEMU gives (-m). This file has no
// build tag so that the host tests the arithmetic; entry_amd64.s does the
// same sums before the runtime starts, and Init checks that both agree.

import "fmt"

// Fixed parts of the layout. Everything below RamStart is QEMU's and
// tamago's: the boot page tables at 0x9000-0xcfff (tamago amd64/amd64.h),
// the firmware and the PVH boot data, all below 1 MB. The kernel image is
// linked at RamStart+64K (`-ldflags "-T 0x00410000"`, see the Makefile).
const (
	RamStart = 0x00400000 // the Go runtime's memory starts here (4 MB)

	// DMASize is the top of RAM, kept for DMA buffers (dma.Init): the
	// virtio rings and packet buffers (drivers/virtio/net.go): 256
	// receive pages (1 MB, for 64 KiB segments with MRG_RXBUF), 256
	// transmit buffers of 1600 bytes and 16 of 64 KiB (for TSO), about
	// 2.5 MB.
	DMASize = 0x00400000 // 4 MB

	// StackOffset is tamago amd64's goos.RamStackOffset (amd64.go): the
	// boot stack starts that far below the end of the runtime's memory,
	// and the heap may not grow past the stack. Init checks it.
	StackOffset = 0x00100000 // 1 MB

	// MinHeap is the least room the heap must have between the end of the
	// kernel image and the stack for a cluster node to boot and join a
	// LAN of 64 (measured, see docs/guide.md "Memory").
	MinHeap = 0x00c00000 // 12 MB

	// MaxRAM caps what the runtime uses: the RAM QEMU puts below 3 GB
	// is in tamago's cacheable identity map; beyond 2 GB is left unused.
	MaxRAM = 0x80000000 // 2 GB

	mb = 1 << 20
)

// Layout is how the board splits the RAM.
type Layout struct {
	RAM      uint64 // bytes of RAM QEMU gave (fw_cfg item FW_CFG_RAM_SIZE)
	RamStart uint64 // the Go runtime's memory: heap, stack and the image
	RamSize  uint64
	DMAStart uint64 // DMA buffers, at the top of the RAM used
	DMASize  uint64
	ImageEnd uint64 // the end of the kernel image (text, data, bss)
}

// HeapRoom returns the bytes between the end of the image and the boot
// stack: all the heap can ever have. The Go runtime does not know it, so
// the kernel gives it as a memory limit (debug.SetMemoryLimit), lest the
// heap grow by GOGC's rule into memory that is not there.
func (l Layout) HeapRoom() uint64 {
	return l.RamStart + l.RamSize - StackOffset - l.ImageEnd
}

// Used returns the bytes of RAM the layout uses, at most MaxRAM.
func (l Layout) Used() uint64 { return l.DMAStart + l.DMASize }

// MinRAM returns the least RAM, in bytes rounded up to a MB, that a
// kernel whose image (text, data and bss) ends at imageEnd needs.
func MinRAM(imageEnd uint64) uint64 {
	need := imageEnd + MinHeap + StackOffset + DMASize
	return (need + mb - 1) &^ (mb - 1)
}

// ErrTooLittleRAM is returned by LayoutFor when QEMU gives less RAM than
// the kernel needs.
type ErrTooLittleRAM struct {
	RAM, Need uint64
}

func (e ErrTooLittleRAM) Error() string {
	return fmt.Sprintf("QEMU gave %d MB of RAM, this kernel needs %d MB: run QEMU with -m %dM or more",
		e.RAM/mb, e.Need/mb, e.Need/mb)
}

// LayoutFor returns the layout for ram bytes of RAM and a kernel image
// ending at imageEnd: the runtime from RamStart up to the DMA buffers,
// which take the top DMASize bytes of the RAM (capped at MaxRAM).
func LayoutFor(ram, imageEnd uint64) (Layout, error) {
	used := min(ram, MaxRAM)
	if need := MinRAM(imageEnd); used < need {
		return Layout{}, ErrTooLittleRAM{RAM: ram, Need: need}
	}
	top := used - DMASize
	return Layout{
		RAM:      ram,
		RamStart: RamStart,
		RamSize:  top - RamStart,
		DMAStart: top,
		DMASize:  DMASize,
		ImageEnd: imageEnd,
	}, nil
}
