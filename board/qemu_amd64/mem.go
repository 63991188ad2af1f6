//go:build tamago

package qemu_amd64

import (
	"runtime"
	"runtime/goos"
)

// fw_cfg item the entry reads (QEMU docs/specs/fw_cfg.rst: FW_CFG_RAM_SIZE,
// le64); fwcfg.go has the ports.
const fwCfgRAMSize = 0x03

// entry is the kernel's ELF entry point (entry_amd64.s): it sizes the
// runtime's memory before tamago starts. Go never calls it.
func entry()

// fwRAM is the RAM size QEMU reported, stored by entry; 0 if the kernel
// was linked without it.
var fwRAM uint64

// mem is the layout in use, set by Init.
var mem Layout

// checkLayout computes the layout for the RAM QEMU gave and checks that
// entry put the runtime where the layout says. It runs in Init, before
// the heap may be used: on a mismatch it panics with a constant string.
func checkLayout() {
	if fwRAM == 0 {
		panic("board: the kernel was linked without its entry point, which sizes memory: link with -ldflags \"-E fornax/board/qemu_amd64.entry\" (see the Makefile)")
	}
	_, end := runtime.DataRegion()
	l, err := LayoutFor(fwRAM, end)
	if err != nil {
		// entry refuses this before the runtime starts.
		panic("board: too little RAM for this kernel, and entry did not see it (entry_amd64.s and layout.go disagree)")
	}
	if uint64(goos.RamSize) != l.RamSize || uint64(goos.RamStart) != l.RamStart {
		panic("board: entry_amd64.s and layout.go disagree on the runtime's memory")
	}
	if uint64(goos.RamStackOffset) != StackOffset {
		panic("board: tamago's RamStackOffset is no longer StackOffset (layout.go): recheck the layout (docs/tamago.md)")
	}
	mem = l
}

// Memory returns the memory layout: the RAM QEMU gave, the runtime's part
// and the DMA buffers'.
func Memory() Layout { return mem }
