//go:build tamago

package virtio

import (
	"sync/atomic"
	"unsafe"
)

// MMIO is the register window of a virtio-mmio device at Base
// (virtio-v1.2 §4.2.2), e.g. 0xfeb02e00 for the net device on QEMU
// microvm. Accesses are single volatile loads and stores.
type MMIO struct {
	Base uintptr
}

// NewMMIONet returns a Net for the virtio-mmio device at base using the
// global DMA region; call Init on it.
func NewMMIONet(base uintptr) *Net {
	return &Net{Regs: &MMIO{Base: base}, Mem: DMA{}}
}

func (m *MMIO) reg(off uint32) *uint32 {
	return (*uint32)(unsafe.Pointer(m.Base + uintptr(off)))
}

// Read32 implements Regs.
func (m *MMIO) Read32(off uint32) uint32 {
	return atomic.LoadUint32(m.reg(off))
}

// Write32 implements Regs.
func (m *MMIO) Write32(off uint32, v uint32) {
	atomic.StoreUint32(m.reg(off), v)
}

// Read8 implements ByteReader, for the device configuration space
// (virtio-v1.2 §4.2.2.2).
func (m *MMIO) Read8(off uint32) uint8 {
	return *(*uint8)(unsafe.Pointer(m.Base + uintptr(off)))
}

// Read16 implements HalfReader, for the device configuration space's
// 16-bit fields (virtio-v1.2 §4.2.2.2).
func (m *MMIO) Read16(off uint32) uint16 {
	return *(*uint16)(unsafe.Pointer(m.Base + uintptr(off)))
}
