package virtio

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"fornax/drivers/virtio/virtiotest"
)

// TestUsedIndexJump has the device move used.idx past the buffers it
// holds: the driver must not hand the previous lap's frames up again.
func TestUsedIndexJump(t *testing.T) {
	n, dev := newNet(t, nil)

	// a full lap of the 256-entry ring, so that every used entry names
	// a buffer holding an old frame
	for i := 0; i < 256; i++ {
		dev.Inject(frame(i, 80))
		if f := receive(t, n); !bytes.Equal(f, frame(i, 80)) {
			t.Fatalf("frame %d: %q", i, f[:10])
		}
	}

	dev.Inject(frame(1000, 80))
	dev.JumpUsed(0, 256) // 257 entries pending, 256 buffers posted

	got := make(chan []byte, 1)
	go func() { got <- receive(t, n) }()
	waitResets(t, n, 1)
	dev.Inject(frame(2000, 80))

	select {
	case f := <-got:
		if !bytes.Equal(f, frame(2000, 80)) {
			t.Fatalf("received %q, want the frame sent after the jump", f[:10])
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no frame after the device reset")
	}

	s := n.Stats()
	if s.RX.Overruns != 1 || s.Resets != 1 || s.RX.InFlight != 256 || s.RxPackets != 257 {
		t.Errorf("stats %+v", s)
	}
	resets := 0
	for _, v := range dev.StatusLog() {
		if v == 0 {
			resets++
		}
	}
	if resets != 2 {
		t.Errorf("status writes %v: want one reset after Init's", dev.StatusLog())
	}
}

// TestUnknownUsedID has the device consume every receive buffer but
// report ids the driver never posted: the buffers come back with a
// device reset instead of being lost.
func TestUnknownUsedID(t *testing.T) {
	n, dev := newNet(t, func(d *virtiotest.Device) { d.QueueNumMax = 8 })

	dev.SetUsedID(func(q int, head uint32) uint32 { return head + 100 })
	for i := 0; i < 8; i++ {
		if !dev.Inject(frame(i, 80)) {
			t.Fatalf("frame %d: no buffer", i)
		}
	}
	dev.SetUsedID(nil)

	got := make(chan []byte, 1)
	go func() { got <- receive(t, n) }()
	waitResets(t, n, 1)
	if !dev.Inject(frame(9, 80)) {
		t.Fatal("receive buffers lost to the bogus ids")
	}
	if f := <-got; !bytes.Equal(f, frame(9, 80)) {
		t.Fatalf("received %q", f[:10])
	}

	s := n.Stats()
	if s.RX.BadIDs != 1 || s.RX.InFlight != 8 || s.RxPackets != 1 || s.RxErrors != 1 {
		t.Errorf("stats %+v", s)
	}
}

// TestTransmitBogusUsed covers the transmit queue: completions with an
// unknown id, then a used.idx far ahead; each time the device is reset
// by the receiving goroutine and every transmit buffer is free again.
func TestTransmitBogusUsed(t *testing.T) {
	n, dev := newNet(t, func(d *virtiotest.Device) { d.QueueNumMax = 8; d.HoldTX = true })
	go func() {
		buf := make([]byte, MaxFrameSize)
		for {
			if _, err := receiveInto(n, buf); err != nil {
				return
			}
		}
	}()

	for i := 0; i < 3; i++ {
		if err := send(n, frame(i, 60)); err != nil {
			t.Fatal(err)
		}
	}
	dev.SetUsedID(func(q int, head uint32) uint32 { return head ^ 4 })
	dev.CompleteTX()
	dev.SetUsedID(nil)
	send(n, frame(3, 60)) // reaps: finds the bogus id
	waitResets(t, n, 1)
	if s := n.Stats(); s.TX.BadIDs != 1 || s.TX.Free != 8 {
		t.Errorf("after unknown ids: %+v", s.TX)
	}

	send(n, frame(4, 60))
	dev.JumpUsed(1, 100)
	send(n, frame(5, 60))
	waitResets(t, n, 2)
	if s := n.Stats(); s.TX.Overruns != 1 || s.TX.Free != 8 || s.TxErrors != 2 {
		t.Errorf("after the jump: %+v", s)
	}

	dev.HoldTX = false
	dev.Transmitted()
	if err := send(n, frame(6, 60)); err != nil {
		t.Fatal(err)
	}
	dev.CompleteTX()
	if got := dev.Transmitted(); len(got) != 1 || !bytes.Equal(got[0], frame(6, 60)) {
		t.Errorf("after the resets, transmitted %d frames", len(got))
	}
}

// TestResetFails has the device refuse to come back: ReceiveFunc and
// TransmitParts then fail with a reason instead of spinning.
func TestResetFails(t *testing.T) {
	n, dev := newNet(t, nil)
	dev.Inject(frame(1, 80))
	receive(t, n)

	dev.QueueNumMax = 8 // the device shrinks its queues: the rings no longer fit
	dev.JumpUsed(0, 300)
	_, err := receiveInto(n, make([]byte, MaxFrameSize))
	if err == nil || !strings.Contains(err.Error(), "device now takes 8") {
		t.Fatalf("ReceiveFunc: %v", err)
	}
	if err := send(n, frame(2, 60)); err == nil {
		t.Error("Transmit on a failed device succeeded")
	}
	if log := dev.StatusLog(); log[len(log)-1]&StatusFailed == 0 {
		t.Errorf("status writes %v: FAILED not set", log)
	}
}

// TestMergeableBroken: a num_buffers the used ring does not hold (more
// than the device used, or more than the queue) loses where the next
// frame starts, which breaks the queue's contract: the driver resets the
// device, taking back every buffer, and goes on.
func TestMergeableBroken(t *testing.T) {
	for _, nb := range []uint16{3, 0xffff} {
		n, dev := newNet(t, nil)
		got := make(chan rx, 1)
		go func() { got <- receiveInfo(t, n) }()
		dev.InjectHdr(frame(1, 5000), virtiotest.Hdr{NumBuffers: nb}) // 2 used
		waitResets(t, n, 1)
		dev.Inject(frame(2, 3000))
		if r := <-got; !bytes.Equal(r.b, frame(2, 3000)) {
			t.Fatalf("num_buffers %d: after the reset: %d bytes", nb, len(r.b))
		}
		if s := n.Stats(); s.RxErrors != 1 || s.RX.InFlight != 256 {
			t.Errorf("num_buffers %d: after: %+v", nb, s)
		}
	}
}
