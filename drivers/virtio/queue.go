package virtio

import (
	"encoding/binary"
	"errors"
	"sync/atomic"
	"unsafe"
)

// Split virtqueue layout (virtio-v1.2 §2.7).
const (
	descSize  = 16 // struct virtq_desc (§2.7.5)
	descAlign = 16 // §2.7, Table 2.2
	ringAlign = 4  // used ring needs 4 (§2.7); avail gets 4 too, for atomic idx access

	availHdr = 4 // flags, idx (§2.7.6)
	usedHdr  = 4 // flags, idx (§2.7.8)
	usedElem = 8 // struct virtq_used_elem: id, len

	// MaxQueueSize is the largest split queue size (§2.7).
	MaxQueueSize = 32768
)

// Descriptor flags (virtio-v1.2 §2.7.5).
const (
	descFNext  = 1
	descFWrite = 2
)

// Ring flags (virtio-v1.2 §2.7.7).
const (
	usedFNoNotify     = 1 // VIRTQ_USED_F_NO_NOTIFY, in used.flags
	availFNoInterrupt = 1 // VIRTQ_AVAIL_F_NO_INTERRUPT, in avail.flags
)

// Buffer is one device-reachable buffer of a descriptor chain.
type Buffer struct {
	Addr     uint64
	Len      uint32
	Writable bool // device writes it (VIRTQ_DESC_F_WRITE)
}

// Queue is a split virtqueue (virtio-v1.2 §2.7), driver side. It is not
// safe for concurrent use; callers serialize access to one queue.
//
// Memory ordering: descriptors and the avail ring entry are written with
// plain stores, then avail.idx is published with an atomic store; used.idx
// is read with an atomic load before the used entries it covers. On amd64
// an atomic store is an XCHG, a full barrier, so the following load of
// used.flags (NeedNotify) cannot be reordered before the publication
// (§2.7.13.3.1, §2.7.13.4.1).
type Queue struct {
	size uint16

	desc, avail, used             []byte
	descAddr, availAddr, usedAddr uint64

	free  []uint16 // free descriptor indices (stack)
	next  []uint16 // shadow of desc[i].next, not trusting device memory
	chain []uint16 // chain length by head index, 0 if not in flight

	availIdx   uint16 // shadow of avail.idx
	availFlags uint16 // shadow of avail.flags
	lastUsed   uint16 // used.idx up to which entries were consumed
	heads      int    // chains in flight

	// broken is set when the device broke the used ring's contract;
	// Used returns nothing until Reset (after a device reset).
	broken bool

	badIDs   uint64 // used entries naming no chain in flight
	overruns uint64 // used.idx moved past the chains in flight
}

// NewQueue allocates and zeroes a split virtqueue of size descriptors,
// size being a power of two no larger than MaxQueueSize.
func NewQueue(mem Memory, size int) (*Queue, error) {
	if size <= 0 || size > MaxQueueSize || size&(size-1) != 0 {
		return nil, errors.New("virtio: queue size not a power of 2 in 1..32768")
	}

	q := &Queue{size: uint16(size)}
	var err error

	if q.descAddr, q.desc, err = alloc(mem, descSize*size, descAlign); err != nil {
		return nil, err
	}
	// +2: used_event / avail_event, unused without VIRTIO_F_EVENT_IDX
	if q.availAddr, q.avail, err = alloc(mem, availHdr+2*size+2, ringAlign); err != nil {
		return nil, err
	}
	if q.usedAddr, q.used, err = alloc(mem, usedHdr+usedElem*size+2, ringAlign); err != nil {
		return nil, err
	}

	q.free = make([]uint16, size)
	q.next = make([]uint16, size)
	q.chain = make([]uint16, size)
	q.Reset()

	return q, nil
}

// Reset returns the queue to its state after NewQueue, every descriptor
// free, keeping its memory, its interrupt suppression and its counters.
// Call it only while the device owns no buffer: before the queue is
// enabled or after a device reset (virtio-v1.2 §2.4, §4.2.3.1).
func (q *Queue) Reset() {
	clear(q.desc)
	clear(q.avail)
	clear(q.used)
	clear(q.next)
	clear(q.chain)

	q.free = q.free[:q.size]
	for i := range q.free {
		q.free[i] = q.size - 1 - uint16(i) // pop 0 first
	}

	q.availIdx, q.lastUsed, q.heads, q.broken = 0, 0, 0, false
	atomic.StoreUint32(word(q.avail), uint32(q.availFlags))
}

// alloc allocates size bytes of DMA memory at align, zeroed: the rings
// must start so (virtio-v1.2 §2.7), and Memory may hand out memory used
// before.
func alloc(mem Memory, size, align int) (uint64, []byte, error) {
	addr, buf, err := allocDirty(mem, size, align)
	if err == nil {
		clear(buf)
	}
	return addr, buf, err
}

// allocDirty is alloc without the zeroing, for packet buffers: the
// device reads of a transmit buffer only the length the driver wrote,
// and the driver of a receive buffer only the length the device wrote.
// Clearing them (2.4 MiB with TSO and MRG_RXBUF) was a fifth of the
// guest code run at boot, and touched every page of them, which QEMU
// then keeps as the VM's private memory.
func allocDirty(mem Memory, size, align int) (uint64, []byte, error) {
	addr, buf := mem.Alloc(size, align)

	if len(buf) < size || addr%uint64(align) != 0 ||
		uintptr(unsafe.Pointer(&buf[0]))%uintptr(align) != 0 {
		return 0, nil, errors.New("virtio: DMA allocation failed")
	}

	return addr, buf[:size], nil
}

// word returns the 32-bit word at b[0:4] for atomic access.
func word(b []byte) *uint32 {
	return (*uint32)(unsafe.Pointer(&b[0]))
}

// Size returns the number of descriptors.
func (q *Queue) Size() int { return int(q.size) }

// Addrs returns the guest-physical addresses of the descriptor table, the
// driver (avail) area and the device (used) area (virtio-v1.2 §2.7).
func (q *Queue) Addrs() (desc, driver, device uint64) {
	return q.descAddr, q.availAddr, q.usedAddr
}

// Free returns the number of free descriptors.
func (q *Queue) Free() int { return len(q.free) }

// InFlight returns the number of descriptors owned by the device.
func (q *Queue) InFlight() int { return int(q.size) - len(q.free) }

// BadIDs returns how many used entries named a descriptor that was not
// the head of a chain in flight.
func (q *Queue) BadIDs() uint64 { return q.badIDs }

// Overruns returns how many times used.idx ran ahead of the chains in
// flight.
func (q *Queue) Overruns() uint64 { return q.overruns }

// Broken reports whether the device broke the used ring's contract: the
// queue yields nothing more until the device is reset and Reset called.
func (q *Queue) Broken() bool { return q.broken }

// Add posts bufs as one descriptor chain and publishes it in the avail
// ring (virtio-v1.2 §2.7.13). It returns false, changing nothing, when
// fewer than len(bufs) descriptors are free.
func (q *Queue) Add(bufs ...Buffer) (head uint16, ok bool) {
	n := len(bufs)

	if n == 0 || n > len(q.free) {
		return 0, false
	}

	// take n descriptors, write them back to front so each knows its next
	var next uint16

	for i := n - 1; i >= 0; i-- {
		id := q.free[len(q.free)-1]
		q.free = q.free[:len(q.free)-1]

		var flags uint16
		if bufs[i].Writable {
			flags |= descFWrite
		}
		if i < n-1 {
			flags |= descFNext
		}

		d := q.desc[int(id)*descSize:][:descSize]
		binary.LittleEndian.PutUint64(d[0:], bufs[i].Addr)
		binary.LittleEndian.PutUint32(d[8:], bufs[i].Len)
		binary.LittleEndian.PutUint16(d[12:], flags)
		binary.LittleEndian.PutUint16(d[14:], next)

		q.next[id] = next
		next = id
	}

	head = next
	q.chain[head] = uint16(n)
	q.heads++

	// avail ring entry, then publish idx (§2.7.13.2, §2.7.13.3)
	slot := availHdr + 2*int(q.availIdx%q.size)
	binary.LittleEndian.PutUint16(q.avail[slot:], head)
	q.availIdx++

	// the driver owns avail.flags and avail.idx
	atomic.StoreUint32(word(q.avail), uint32(q.availIdx)<<16|uint32(q.availFlags))

	return head, true
}

// SuppressInterrupts asks the device not to interrupt when it uses this
// queue's buffers (VIRTQ_AVAIL_F_NO_INTERRUPT, §2.7.7): for a queue whose
// used ring the driver reaps when it next needs it, like transmit.
func (q *Queue) SuppressInterrupts() {
	q.availFlags = availFNoInterrupt
	atomic.StoreUint32(word(q.avail), uint32(q.availIdx)<<16|uint32(q.availFlags))
}

// NeedNotify reports whether the device asked to be notified of new
// available buffers (VIRTQ_USED_F_NO_NOTIFY clear, §2.7.10). Call it after
// Add; the atomic store in Add orders it after the publication.
func (q *Queue) NeedNotify() bool {
	return atomic.LoadUint32(word(q.used))&usedFNoNotify == 0
}

// usedIdx returns used.idx (§2.7.8).
func (q *Queue) usedIdx() uint16 {
	return uint16(atomic.LoadUint32(word(q.used)) >> 16)
}

// Used consumes one used ring entry (virtio-v1.2 §2.7.14), returning the
// head of the completed chain and the number of bytes the device wrote.
// The chain's descriptors are free again on return.
//
// A device that breaks the ring's contract breaks the queue (see Broken)
// rather than have the driver act on entries it cannot trust:
//   - used.idx ahead of lastUsed by more than the chains in flight: each
//     used entry returns one chain made available (§2.7.8), so the
//     entries past that are stale ones from the ring's previous lap;
//   - an id that is no chain's head in flight: the chain the device
//     really consumed is unknown, and its buffer would be lost.
func (q *Queue) Used() (head uint16, length uint32, ok bool) {
	if q.broken {
		return 0, 0, false
	}

	idx := q.usedIdx() // atomic load before reading the entries

	if idx == q.lastUsed {
		return 0, 0, false
	}
	if int(idx-q.lastUsed) > q.heads {
		q.overruns++
		q.broken = true
		return 0, 0, false
	}

	slot := usedHdr + usedElem*int(q.lastUsed%q.size)
	id := binary.LittleEndian.Uint32(q.used[slot:])
	length = binary.LittleEndian.Uint32(q.used[slot+4:])

	if id >= uint32(q.size) || q.chain[id] == 0 {
		q.badIDs++ // not ours or already returned: never double-free
		q.broken = true
		return 0, 0, false
	}

	q.lastUsed++
	head = uint16(id)
	q.release(head)

	return head, length, true
}

func (q *Queue) release(head uint16) {
	id := head

	for n := q.chain[head]; n > 0; n-- {
		q.free = append(q.free, id)
		id = q.next[id]
	}

	q.chain[head] = 0
	q.heads--
}
