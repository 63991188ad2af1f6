// Package virtiotest provides host-side stand-ins for testing the virtio
// driver and what sits on it: fake DMA memory, a simulated modern
// virtio-mmio network device, and an in-memory pair of NICs.
//
// It does not import package virtio, so that package's own tests can use
// it; the types satisfy virtio's interfaces structurally.
package virtiotest

import (
	"fmt"
	"sync"
	"sync/atomic"
	"unsafe"
)

// MemoryBase is the fake guest-physical address of a Memory's first byte;
// above 4 GiB so that drivers must program both halves of addresses.
const MemoryBase = 0x1_4000_0000

// Memory is fake DMA memory: a []byte arena at made-up guest-physical
// addresses, which the simulated device resolves back into the arena.
type Memory struct {
	mu    sync.Mutex
	arena []byte
	next  uint64
}

// NewMemory returns size bytes of fake DMA memory.
func NewMemory(size int) *Memory {
	return &Memory{arena: make([]byte, size)}
}

// Alloc implements virtio.Memory: a bump allocator that never frees. It
// returns a nil slice when the arena is exhausted.
func (m *Memory) Alloc(size, align int) (uint64, []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()

	if align < 8 {
		align = 8
	}

	off := (m.next + uint64(align) - 1) &^ (uint64(align) - 1)
	if size < 0 || off+uint64(size) > uint64(len(m.arena)) {
		return 0, nil
	}

	m.next = off + uint64(size)

	return MemoryBase + off, m.arena[off : off+uint64(size) : off+uint64(size)]
}

// Slice resolves n bytes at guest-physical address addr, or returns an
// error if they are not all inside allocated memory.
func (m *Memory) Slice(addr uint64, n int) ([]byte, error) {
	m.mu.Lock()
	limit := m.next
	m.mu.Unlock()

	if addr < MemoryBase || n < 0 || addr-MemoryBase+uint64(n) > limit {
		return nil, fmt.Errorf("DMA to unmapped address %#x+%d", addr, n)
	}

	off := addr - MemoryBase

	return m.arena[off : off+uint64(n)], nil
}

// word returns the aligned 32-bit word at addr for atomic access.
func (m *Memory) word(addr uint64) (*uint32, error) {
	if addr%4 != 0 {
		return nil, fmt.Errorf("unaligned ring index at %#x", addr)
	}

	b, err := m.Slice(addr, 4)
	if err != nil {
		return nil, err
	}

	return (*uint32)(unsafe.Pointer(&b[0])), nil
}

// Load32 atomically loads the 32-bit word at addr.
func (m *Memory) Load32(addr uint64) (uint32, error) {
	w, err := m.word(addr)
	if err != nil {
		return 0, err
	}
	return atomic.LoadUint32(w), nil
}

// Store32 atomically stores the 32-bit word at addr.
func (m *Memory) Store32(addr uint64, v uint32) error {
	w, err := m.word(addr)
	if err != nil {
		return err
	}
	atomic.StoreUint32(w, v)
	return nil
}
