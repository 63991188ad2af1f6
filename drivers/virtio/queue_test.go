package virtio

import (
	"bytes"
	"encoding/binary"
	"testing"

	"fornax/drivers/virtio/virtiotest"
)

// complete plays the device: it consumes the next avail entry and
// returns it in the used ring with length n.
func complete(t *testing.T, q *Queue, devAvail *uint16, devUsed *uint16, n uint32) uint16 {
	t.Helper()

	if idx := binary.LittleEndian.Uint16(q.avail[2:]); idx == *devAvail {
		t.Fatal("nothing available")
	}

	head := binary.LittleEndian.Uint16(q.avail[availHdr+2*int(*devAvail%q.size):])
	*devAvail++

	slot := usedHdr + usedElem*int(*devUsed%q.size)
	binary.LittleEndian.PutUint32(q.used[slot:], uint32(head))
	binary.LittleEndian.PutUint32(q.used[slot+4:], n)
	*devUsed++
	binary.LittleEndian.PutUint16(q.used[2:], *devUsed)

	return head
}

func TestQueueLayout(t *testing.T) {
	mem := virtiotest.NewMemory(1 << 20)
	mem.Alloc(3, 1) // misalign the arena's next offset

	q, err := NewQueue(mem, 8)
	if err != nil {
		t.Fatal(err)
	}

	desc, driver, device := q.Addrs()
	if desc%16 != 0 || driver%2 != 0 || device%4 != 0 {
		t.Errorf("misaligned rings: %#x %#x %#x", desc, driver, device)
	}
	if len(q.desc) != 8*16 || len(q.avail) != 6+2*8 || len(q.used) != 6+8*8 {
		t.Errorf("ring sizes %d %d %d", len(q.desc), len(q.avail), len(q.used))
	}

	for _, size := range []int{0, 3, 65536} {
		if _, err := NewQueue(mem, size); err == nil {
			t.Errorf("NewQueue(%d) succeeded", size)
		}
	}
}

func TestQueueExhaustion(t *testing.T) {
	mem := virtiotest.NewMemory(1 << 20)
	q, err := NewQueue(mem, 8)
	if err != nil {
		t.Fatal(err)
	}

	for i := 0; i < 8; i++ {
		head, ok := q.Add(Buffer{Addr: uint64(0x1000 * (i + 1)), Len: uint32(i + 1)})
		if !ok {
			t.Fatalf("Add %d failed", i)
		}
		if head != uint16(i) {
			t.Errorf("Add %d: head %d", i, head)
		}
	}

	desc := bytes.Clone(q.desc)
	avail := bytes.Clone(q.avail)

	if _, ok := q.Add(Buffer{Addr: 0xdead0000, Len: 1}); ok {
		t.Fatal("Add on a full queue succeeded")
	}
	if !bytes.Equal(desc, q.desc) || !bytes.Equal(avail, q.avail) {
		t.Fatal("failed Add changed the rings")
	}
	if q.Free() != 0 || q.InFlight() != 8 {
		t.Errorf("free %d in flight %d", q.Free(), q.InFlight())
	}
	if _, _, ok := q.Used(); ok {
		t.Error("Used on an empty used ring")
	}

	// the device returns two; a 3-descriptor chain still does not fit
	var devAvail, devUsed uint16
	complete(t, q, &devAvail, &devUsed, 0)
	complete(t, q, &devAvail, &devUsed, 0)

	for i := 0; i < 2; i++ {
		if head, _, ok := q.Used(); !ok || head != uint16(i) {
			t.Fatalf("Used = %d, %v", head, ok)
		}
	}

	three := []Buffer{{Addr: 1, Len: 1}, {Addr: 2, Len: 2, Writable: true}, {Addr: 3, Len: 3, Writable: true}}
	if _, ok := q.Add(three...); ok {
		t.Fatal("3-descriptor chain fit in 2 free descriptors")
	}
	if _, ok := q.Add(three[:2]...); !ok {
		t.Fatal("2-descriptor chain did not fit")
	}

	// the chain: readable then writable, linked with NEXT
	head := binary.LittleEndian.Uint16(q.avail[availHdr+2*(8%8):])
	d0 := q.desc[int(head)*16:]
	if binary.LittleEndian.Uint16(d0[12:]) != descFNext {
		t.Errorf("first descriptor flags %#x", binary.LittleEndian.Uint16(d0[12:]))
	}
	d1 := q.desc[int(binary.LittleEndian.Uint16(d0[14:]))*16:]
	if binary.LittleEndian.Uint64(d1) != 2 || binary.LittleEndian.Uint16(d1[12:]) != descFWrite {
		t.Errorf("second descriptor addr %d flags %#x", binary.LittleEndian.Uint64(d1), binary.LittleEndian.Uint16(d1[12:]))
	}

	// the device completes in avail order: the six singles, then the chain
	for i := 2; i < 8; i++ {
		complete(t, q, &devAvail, &devUsed, 0)
		if h, _, ok := q.Used(); !ok || h != uint16(i) {
			t.Fatalf("Used = %d %v, want %d", h, ok, i)
		}
	}
	complete(t, q, &devAvail, &devUsed, 42)
	if h, n, ok := q.Used(); !ok || h != head || n != 42 {
		t.Fatalf("Used = %d %d %v, want chain %d", h, n, ok, head)
	}
	if q.Free() != 8 || pending(q) != 0 {
		t.Errorf("free %d pending %d after all completed", q.Free(), pending(q))
	}
}

// used writes the device's used ring: entries ids from slot 0, and idx.
func used(q *Queue, idx uint16, ids ...uint32) {
	for i, id := range ids {
		binary.LittleEndian.PutUint32(q.used[usedHdr+usedElem*i:], id)
	}
	binary.LittleEndian.PutUint16(q.used[2:], idx)
}

func TestQueueBogusUsed(t *testing.T) {
	mem := virtiotest.NewMemory(1 << 20)
	q, _ := NewQueue(mem, 4)

	for _, tc := range []struct {
		name      string
		posted    int
		idx       uint16
		ids       []uint32
		good      int // entries accepted before the queue breaks
		bad, over uint64
	}{
		{"never posted", 1, 1, []uint32{3}, 0, 1, 0},
		{"out of range", 1, 1, []uint32{9}, 0, 1, 0},
		{"returned twice", 2, 2, []uint32{0, 0}, 1, 1, 0},
		{"index past the chains in flight", 1, 2, []uint32{0, 0}, 0, 0, 1},
		{"index a lap ahead", 4, 4 + 4, []uint32{0, 1, 2, 3}, 0, 0, 1},
	} {
		q.Reset()
		bad, over := q.BadIDs(), q.Overruns()
		for i := 0; i < tc.posted; i++ {
			q.Add(Buffer{Addr: 1, Len: 1})
		}
		used(q, tc.idx, tc.ids...)

		good := 0
		for ; good <= len(tc.ids); good++ {
			if _, _, ok := q.Used(); !ok {
				break
			}
		}
		if good != tc.good || !q.Broken() || q.BadIDs()-bad != tc.bad || q.Overruns()-over != tc.over {
			t.Errorf("%s: %d accepted, broken %v, bad ids %d, overruns %d", tc.name, good, q.Broken(), q.BadIDs()-bad, q.Overruns()-over)
		}
		if q.Free() != 4-tc.posted+tc.good {
			t.Errorf("%s: %d free: a descriptor was freed on a bogus entry", tc.name, q.Free())
		}
		used(q, tc.idx+1, 0)
		if _, _, ok := q.Used(); ok {
			t.Errorf("%s: a broken queue yielded an entry", tc.name)
		}
	}

	q.Reset()
	if q.Broken() || q.Free() != 4 || pending(q) != 0 {
		t.Errorf("after Reset: broken %v, free %d, pending %d", q.Broken(), q.Free(), pending(q))
	}
	if head, ok := q.Add(Buffer{Addr: 1, Len: 1}); !ok || head != 0 {
		t.Errorf("Add after Reset: %d %v", head, ok)
	}
}

func TestQueueNoNotify(t *testing.T) {
	mem := virtiotest.NewMemory(1 << 20)
	q, _ := NewQueue(mem, 4)

	if !q.NeedNotify() {
		t.Error("NeedNotify false with used.flags 0")
	}
	q.used[0] = usedFNoNotify
	if q.NeedNotify() {
		t.Error("NeedNotify true with VIRTQ_USED_F_NO_NOTIFY")
	}
}

// pending returns the number of used entries not yet consumed.
func pending(q *Queue) int {
	return int(q.usedIdx() - q.lastUsed) // uint16 wrap-around
}
