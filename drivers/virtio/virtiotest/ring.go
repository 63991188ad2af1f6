package virtiotest

import (
	"encoding/binary"
	"fmt"
)

// The device side of a split virtqueue (virtio-v1.2 §2.7): taking
// chains from the avail ring, returning them in the used ring.

// popAvail takes the next available head (§2.7.13.1, device side).
func (d *Device) popAvail(q *queue) (uint16, bool) {
	w, err := d.Mem.Load32(q.driver)
	if err != nil {
		d.errorf("avail: %v", err)
		return 0, false
	}

	if q.lastAvail == uint16(w>>16) {
		return 0, false
	}

	if n := uint16(w>>16) - q.lastAvail; uint32(n) > q.num {
		d.errorf("avail.idx %d runs %d ahead of %d: more than the queue size", uint16(w>>16), n, q.lastAvail)
	}

	slot, err := d.Mem.Slice(q.driver+4+2*uint64(uint32(q.lastAvail)%q.num), 2)
	if err != nil {
		d.errorf("avail: %v", err)
		return 0, false
	}

	q.lastAvail++

	return binary.LittleEndian.Uint16(slot), true
}

type seg struct {
	buf   []byte
	write bool
}

// chain walks a descriptor chain (§2.7.5).
func (d *Device) chain(q *queue, head uint16) (segs []seg, err error) {
	id := uint32(head)

	for i := uint32(0); ; i++ {
		if id >= q.num || i >= q.num {
			return nil, fmt.Errorf("bad descriptor chain from %d", head)
		}

		desc, err := d.Mem.Slice(q.desc+16*uint64(id), 16)
		if err != nil {
			return nil, err
		}

		addr := binary.LittleEndian.Uint64(desc[0:])
		n := binary.LittleEndian.Uint32(desc[8:])
		flags := binary.LittleEndian.Uint16(desc[12:])

		if flags&4 != 0 {
			return nil, fmt.Errorf("indirect descriptor %d", id)
		}

		buf, err := d.Mem.Slice(addr, int(n))
		if err != nil {
			return nil, fmt.Errorf("descriptor %d: %v", id, err)
		}

		segs = append(segs, seg{buf: buf, write: flags&2 != 0})

		if flags&1 == 0 {
			return segs, nil
		}

		id = uint32(binary.LittleEndian.Uint16(desc[14:]))
	}
}

// pushUsed adds a used element and publishes used.idx (§2.7.8).
func (d *Device) pushUsed(q *queue, id, n uint32) {
	d.pushUsedQuiet(q, id, n)
	d.publishUsed(q)
}

// pushUsedQuiet adds a used element without publishing used.idx.
func (d *Device) pushUsedQuiet(q *queue, id, n uint32) {
	if d.usedID != nil {
		id = d.usedID(d.index(q), id)
	}

	elem, err := d.Mem.Slice(q.device+4+8*uint64(uint32(q.usedIdx)%q.num), 8)
	if err != nil {
		d.errorf("used: %v", err)
		return
	}

	binary.LittleEndian.PutUint32(elem[0:], id)
	binary.LittleEndian.PutUint32(elem[4:], n)
	q.usedIdx++
}

// index returns the number of queue q.
func (d *Device) index(q *queue) int {
	if q == &d.q[0] {
		return 0
	}
	return 1
}

func (d *Device) publishUsed(q *queue) {
	var flags uint32
	if d.NoNotify {
		flags = 1
	}

	if err := d.Mem.Store32(q.device, flags|uint32(q.usedIdx)<<16); err != nil {
		d.errorf("used: %v", err)
	}
}
