package virtio

import (
	"bytes"
	"errors"
	"testing"

	"fornax/drivers/virtio/virtiotest"
)

func TestTransmit(t *testing.T) {
	n, dev := newNet(t, nil)

	for i := 0; i < 3; i++ {
		if err := send(n, frame(i, 60+i)); err != nil {
			t.Fatal(err)
		}
	}

	got := dev.Transmitted()
	if len(got) != 3 {
		t.Fatalf("%d frames transmitted", len(got))
	}
	for i, f := range got {
		if !bytes.Equal(f, frame(i, 60+i)) {
			t.Errorf("frame %d corrupted", i)
		}
	}

	// a frame in pieces arrives whole
	f := frame(7, 90)
	if err := n.TransmitParts([][]byte{f[:14], f[14:20], nil, f[20:]}); err != nil {
		t.Fatal(err)
	}
	if got := dev.Transmitted(); len(got) != 1 || !bytes.Equal(got[0], f) {
		t.Errorf("frame from parts: %q", got)
	}
	if err := n.TransmitParts([][]byte{make([]byte, MaxFrameSize), {0}}); !errors.Is(err, ErrFrameSize) {
		t.Errorf("oversized frame from parts: %v", err)
	}

	if err := send(n, make([]byte, MaxFrameSize+1)); !errors.Is(err, ErrFrameSize) {
		t.Errorf("oversized frame: %v", err)
	}
	if err := send(n, make([]byte, MaxFrameSize)); err != nil {
		t.Errorf("maximum frame: %v", err)
	}

	s := n.Stats()
	if s.TxPackets != 5 || s.TxBytes != 60+61+62+90+MaxFrameSize || s.TxErrors != 2 {
		t.Errorf("stats %+v", s)
	}
	if s.TX.InFlight != 0 || s.TX.Free != 256 {
		t.Errorf("tx queue %+v", s.TX)
	}
}

func TestTransmitReclaimAndDrop(t *testing.T) {
	n, dev := newNet(t, func(d *virtiotest.Device) {
		d.QueueNumMax = 8
		d.HoldTX = true
	})

	for i := 0; i < 8; i++ {
		if err := send(n, frame(i, 100)); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
	}
	for i := 8; i < 10; i++ {
		if err := send(n, frame(i, 100)); !errors.Is(err, ErrTxFull) {
			t.Fatalf("frame %d on a full queue: %v", i, err)
		}
	}

	s := n.Stats()
	if s.TxDrops != 2 || s.TX.InFlight != 8 || s.TX.Free != 0 {
		t.Errorf("stats %+v", s)
	}

	dev.CompleteTX()
	got := dev.Transmitted()
	if len(got) != 8 {
		t.Fatalf("%d frames transmitted", len(got))
	}
	for i, f := range got {
		if !bytes.Equal(f, frame(i, 100)) {
			t.Errorf("frame %d overwritten", i)
		}
	}

	// buffers come back: lazily, before the next send
	for i := 0; i < 8; i++ {
		if err := send(n, frame(100+i, 100)); err != nil {
			t.Fatalf("after reclaim: %v", err)
		}
	}
	dev.CompleteTX()
	if got := dev.Transmitted(); len(got) != 8 || !bytes.Equal(got[7], frame(107, 100)) {
		t.Errorf("second round: %d frames", len(got))
	}
	if s := n.Stats(); s.TX.InFlight != 0 || s.TX.Free != 8 || s.TxPackets != 16 {
		t.Errorf("stats %+v", s)
	}
}

func TestNoNotify(t *testing.T) {
	n, dev := newNet(t, func(d *virtiotest.Device) { d.NoNotify = true; d.HoldTX = true })

	for i := 0; i < 4; i++ {
		send(n, frame(i, 60))
	}
	if k := dev.Notifies(1); k != 0 {
		t.Errorf("%d tx notifications despite VIRTQ_USED_F_NO_NOTIFY", k)
	}
	dev.CompleteTX()
	if len(dev.Transmitted()) != 4 {
		t.Error("frames lost")
	}
}

func TestTransmitOffload(t *testing.T) {
	n, dev := newNet(t, nil)
	if csum, tso := n.TxOffloads(); !csum || !tso {
		t.Fatalf("TxOffloads %v %v", csum, tso)
	}
	parts := func(f []byte) [][]byte { return [][]byte{f[:54], f[54:]} }
	// Refused: offsets outside the frame, no mss room, too big.
	for _, c := range []struct{ size, start, off, hdrLen, mss int }{
		{100, 34, 100, 54, 0},     // checksum field past the end
		{100, 10, 16, 54, 0},      // checksum inside the Ethernet header
		{70000, 34, 16, 54, 1460}, // over 64 KiB
		{3000, 34, 16, 54, 0},     // over 1526 bytes without segmentation
		{3000, 34, 16, 20, 1460},  // headers end before the checksum starts
	} {
		if err := n.TransmitOffload(parts(tcpFrame(c.size)), c.start, c.off, c.hdrLen, c.mss); err == nil {
			t.Errorf("%+v: accepted", c)
		}
	}
	if s := n.Stats(); s.TxErrors != 5 || s.TxPackets != 0 {
		t.Errorf("after refusals: %+v", s)
	}
	// 200 frames of 60000 bytes through 16 big buffers: each reclaimed.
	for i := range 200 {
		if err := n.TransmitOffload(parts(tcpFrame(60000)), 34, 16, 54, 1460); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
	}
	tso, csum := dev.Offloaded()
	if tso != 200 || csum != 0 {
		t.Errorf("device: %d segmented, %d checksummed", tso, csum)
	}
	if got := len(dev.Transmitted()); got != 200*42 { // 59946 payload bytes / 1460
		t.Errorf("%d segments, want %d", got, 200*42)
	}
	// A small one: checksum only.
	if err := n.TransmitOffload(parts(tcpFrame(600)), 34, 16, 54, 1460); err != nil {
		t.Fatal(err)
	}
	if _, csum := dev.Offloaded(); csum != 1 {
		t.Errorf("%d checksummed, want 1", csum)
	}
}

func TestTransmitDeclined(t *testing.T) {
	n, dev := newNetOpts(t, func(n *Net) { n.Decline = AllOffloads })
	if csum, tso := n.TxOffloads(); csum || tso {
		t.Fatalf("all declined: TxOffloads %v %v", csum, tso)
	}
	if err := n.TransmitOffload([][]byte{tcpFrame(600)}, 34, 16, 54, 0); err == nil {
		t.Error("an offload accepted without CSUM")
	}
	if len(dev.Transmitted()) != 0 {
		t.Error("sent anyway")
	}
}

// TestTransmitOutOfOrder: small and 64 KiB frames completed in reverse
// order, round after round: each buffer goes back to its own free list
// (the used id says which), none is lost or handed out twice.
func TestTransmitOutOfOrder(t *testing.T) {
	n, dev := newNet(t, func(d *virtiotest.Device) { d.HoldTX, d.ReverseTX = true, true })
	sent := 0
	for round := range 20 {
		for k := range 12 { // 6 big, 6 small, interleaved
			var err error
			if k%2 == 0 {
				err = n.TransmitOffload([][]byte{tcpFrame(30000 + round)}, 34, 16, 54, 1460)
			} else {
				err = n.TransmitParts([][]byte{frame(round*100+k, 100+k)})
			}
			if err != nil {
				t.Fatalf("round %d frame %d: %v", round, k, err)
			}
			sent++
		}
		dev.CompleteTX()
	}
	s := n.Stats()
	if s.TxPackets != uint64(sent) || s.TxErrors != 0 || s.TxDrops != 0 || s.TX.InFlight != 0 {
		t.Errorf("after %d frames: %+v", sent, s)
	}
	n.tx.Lock()
	free, bigFree := len(n.tx.free), len(n.tx.bigFree)
	seen := map[int]bool{}
	for _, i := range n.tx.bigFree {
		if seen[i] {
			t.Errorf("big buffer %d free twice", i)
		}
		seen[i] = true
	}
	n.tx.Unlock()
	if free != s.TX.Size || bigFree != bigTxSlots {
		t.Errorf("free buffers: %d small of %d, %d big of %d", free, s.TX.Size, bigFree, bigTxSlots)
	}
	// And all 16 big ones can be in flight at once, the 17th waits.
	dev.HoldTX = true
	for i := range bigTxSlots + 1 {
		err := n.TransmitOffload([][]byte{tcpFrame(20000)}, 34, 16, 54, 1460)
		if (i < bigTxSlots) != (err == nil) {
			t.Errorf("big frame %d: %v", i, err)
		}
	}
}
