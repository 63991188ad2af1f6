package virtio

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"fornax/drivers/virtio/virtiotest"
)

func TestReceive(t *testing.T) {
	n, dev := newNet(t, nil)

	for i := 0; i < 5; i++ {
		if !dev.Inject(frame(i, 64+i)) {
			t.Fatal("no receive buffer")
		}
	}
	for i := 0; i < 5; i++ {
		if f := receive(t, n); !bytes.Equal(f, frame(i, 64+i)) {
			t.Fatalf("frame %d: %q", i, f)
		}
	}

	s := n.Stats()
	if s.RxPackets != 5 || s.RxBytes != 64+65+66+67+68 {
		t.Errorf("stats %+v", s)
	}
	if s.RX.InFlight != 256 {
		t.Errorf("%d rx buffers posted, want 256", s.RX.InFlight)
	}
}

// TestReceiveRingFull fills every receive buffer: the device drops what
// does not fit, and the driver recovers as it refills.
func TestReceiveRingFull(t *testing.T) {
	n, dev := newNet(t, func(d *virtiotest.Device) { d.QueueNumMax = 8 })

	for i := 0; i < 12; i++ {
		if ok := dev.Inject(frame(i, 80)); ok != (i < 8) {
			t.Fatalf("frame %d: delivered %v", i, ok)
		}
	}
	if dev.RxDropped() != 4 {
		t.Errorf("device dropped %d", dev.RxDropped())
	}
	if s := n.Stats(); s.RX.InFlight != 8 || s.RX.Free != 0 {
		t.Errorf("rx queue %+v", s.RX)
	}

	for i := 0; i < 8; i++ {
		if f := receive(t, n); !bytes.Equal(f, frame(i, 80)) {
			t.Fatalf("frame %d: %q", i, f[:10])
		}
	}

	for i := 20; i < 28; i++ {
		if !dev.Inject(frame(i, 80)) {
			t.Fatalf("frame %d dropped after refill", i)
		}
	}
	for i := 20; i < 28; i++ {
		if f := receive(t, n); !bytes.Equal(f, frame(i, 80)) {
			t.Fatalf("frame %d after refill: %q", i, f[:10])
		}
	}
}

// TestReceiveBlocks checks that ReceiveFunc sleeps until the interrupt: a frame
// in the used ring without one is not picked up by polling.
func TestReceiveBlocks(t *testing.T) {
	mem := virtiotest.NewMemory(8 << 20)
	dev := virtiotest.NewDevice(mem, testMAC)
	n := &Net{Regs: dev, Mem: mem}
	if err := n.Init(); err != nil {
		t.Fatal(err)
	}

	done := make(chan []byte)
	go func() {
		buf := make([]byte, MaxFrameSize)
		k, _ := receiveInto(n, buf)
		done <- buf[:k]
	}()

	time.Sleep(20 * time.Millisecond)
	dev.Inject(frame(1, 70)) // raises dev.IRQ, which nobody services yet

	select {
	case <-done:
		t.Fatal("ReceiveFunc returned without an interrupt")
	case <-time.After(50 * time.Millisecond):
	}

	<-dev.IRQ
	n.HandleInterrupt()

	select {
	case f := <-done:
		if !bytes.Equal(f, frame(1, 70)) {
			t.Errorf("frame %q", f)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ReceiveFunc not woken by the interrupt")
	}

	// Close wakes a blocked ReceiveFunc
	errc := make(chan error)
	go func() {
		_, err := receiveInto(n, make([]byte, MaxFrameSize))
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond)
	n.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("ReceiveFunc after Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not wake ReceiveFunc")
	}
	if err := send(n, frame(1, 60)); !errors.Is(err, ErrClosed) {
		t.Errorf("Transmit after Close: %v", err)
	}
}

func TestChecksumFlags(t *testing.T) {
	n, dev := newNet(t, nil)
	for _, c := range []struct {
		flags uint8
		want  bool
	}{{0, false}, {NetHdrFNeedsCsum, true}, {NetHdrFDataValid, true}, {NetHdrFNeedsCsum | NetHdrFDataValid, true}} {
		dev.InjectHdr(frame(int(c.flags), 200), virtiotest.Hdr{Flags: c.flags})
		if r := receiveInfo(t, n); r.checksumOK != c.want || !bytes.Equal(r.b, frame(int(c.flags), 200)) {
			t.Errorf("flags %#x: checksumOK %v, want %v", c.flags, r.checksumOK, c.want)
		}
	}
}

// TestMergeable: 64 KiB segments spread over page-sized buffers come out
// whole, over many turns of the ring, and every buffer goes back.
func TestMergeable(t *testing.T) {
	n, dev := newNet(t, nil)
	for i, size := range []int{MaxRxFrameSize, 60000, 4096 - NetHdrSize, 4096 - NetHdrSize + 1, 1514, 8192, MaxRxFrameSize} {
		for k := range 40 { // 40 × up to 17 buffers: several turns of 256
			f := frame(i*100+k, size)
			if !dev.InjectHdr(f, virtiotest.Hdr{Flags: NetHdrFNeedsCsum, GSOType: NetHdrGSOTCPv4}) {
				t.Fatalf("size %d: device found no buffers", size)
			}
			r := receiveInfo(t, n)
			if !bytes.Equal(r.b, f) || !r.checksumOK {
				t.Fatalf("size %d #%d: got %d bytes (checksumOK %v), want %d", size, k, len(r.b), r.checksumOK, size)
			}
		}
	}
	s := n.Stats()
	if s.RxErrors != 0 || s.RX.InFlight != s.RX.Size || s.Resets != 0 {
		t.Errorf("after: %+v", s)
	}
}

// TestMergeableExhaustion: with every buffer filled the device drops;
// once the driver has taken the frames, all buffers are back.
func TestMergeableExhaustion(t *testing.T) {
	n, dev := newNet(t, nil)
	sent := 0
	for dev.InjectHdr(frame(sent, 60000), virtiotest.Hdr{}) {
		sent++
	}
	if sent != 256/15 { // 60012 bytes take 15 pages
		t.Errorf("%d 60000-byte frames fit in 256 pages, want %d", sent, 256/15)
	}
	for i := range sent {
		if r := receiveInfo(t, n); !bytes.Equal(r.b, frame(i, 60000)) {
			t.Fatalf("frame %d: %d bytes", i, len(r.b))
		}
	}
	if s := n.Stats(); s.RX.InFlight != 256 || s.RxErrors != 0 {
		t.Errorf("after: %+v", s)
	}
	dev.Inject(frame(7, 64))
	if r := receiveInfo(t, n); !bytes.Equal(r.b, frame(7, 64)) {
		t.Error("no frame after exhaustion")
	}
}

// TestMergeableLies: a device that lies in num_buffers or gso_type, or
// sends more than 64 KiB, gets its frame dropped and counted, and the
// driver goes on with every buffer.
func TestMergeableLies(t *testing.T) {
	n, dev := newNet(t, nil)
	errs := uint64(0)
	for i, h := range []virtiotest.Hdr{
		{GSOType: 3},                // GSO_UDP, not negotiated
		{GSOType: 4 | NetHdrGSOECN}, // GSO_TCPV6
	} {
		dev.InjectHdr(frame(100+i, 5000), h)
		errs++
		dev.Inject(frame(i, 3000))
		if r := receiveInfo(t, n); !bytes.Equal(r.b, frame(i, 3000)) {
			t.Fatalf("good frame after %+v: %d bytes", h, len(r.b))
		}
		if s := n.Stats(); s.RxErrors != errs || s.RX.InFlight != 256 {
			t.Fatalf("lie %+v: RxErrors %d, want %d; %d buffers posted", h, s.RxErrors, errs, s.RX.InFlight)
		}
	}
	// Over 64 KiB: 70000 bytes in 18 pages.
	dev.Inject(frame(200, 70000))
	dev.Inject(frame(201, 3000))
	if r := receiveInfo(t, n); !bytes.Equal(r.b, frame(201, 3000)) {
		t.Fatalf("good frame after 70000 bytes: %d bytes", len(r.b))
	}
	if s := n.Stats(); s.RxErrors != errs+1 || s.RX.InFlight != 256 {
		t.Errorf("70000-byte frame: RxErrors %d, want %d", s.RxErrors, errs+1)
	}
}
