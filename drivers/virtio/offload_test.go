package virtio

import (
	"bytes"
	"testing"
	"time"

	"fornax/drivers/virtio/virtiotest"
)

// rx is one frame as ReceiveFunc handed it over.
type rx struct {
	b          []byte
	checksumOK bool
}

// receiveInfo waits for the next frame and what the device said of it.
func receiveInfo(t *testing.T, n *Net) rx {
	t.Helper()
	c := make(chan rx, 1)
	go func() {
		n.ReceiveFunc(func(f [][]byte, ok bool) { c <- rx{bytes.Join(f, nil), ok} })
	}()
	select {
	case r := <-c:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("ReceiveFunc timed out")
	}
	return rx{}
}

// TestDecline: offloads can be declined one by one, and one that needs
// a declined one (§5.1.3.1) goes with it.
func TestDecline(t *testing.T) {
	const (
		base = FeatureVersion1 | FeatureNetMAC
		csum = FeatureNetCsum | FeatureNetGuestCsum
		mrg  = FeatureNetMrgRxbuf
		rx   = FeatureNetGuestTSO4
		tx   = FeatureNetHostTSO4
		all  = base | csum | mrg | rx | tx
	)
	for _, c := range []struct {
		decline, want uint64
	}{
		{0, all},
		{tx, all &^ tx},
		{rx, all &^ rx},
		{rx | tx, base | csum | mrg},
		{mrg, base | csum | tx}, // rx needs mrg
		{csum, base | mrg},      // both TSOs need csum
		{FeatureNetGuestCsum, all &^ (FeatureNetGuestCsum | rx)},
		{FeatureNetCsum, all &^ (FeatureNetCsum | tx)},
		{csum | mrg | rx | tx, base},
	} {
		_, dev := newNetOpts(t, func(n *Net) { n.Decline = c.decline })
		if f := dev.DriverFeatures(); f != c.want {
			t.Errorf("decline %#x: features %#x, want %#x", c.decline, f, c.want)
		}
	}
}

func TestNoOffload(t *testing.T) {
	n2, dev2 := newNetOpts(t, func(n *Net) { n.NoOffload = true })
	if f := dev2.DriverFeatures(); f != FeatureVersion1|FeatureNetMAC {
		t.Errorf("NoOffload: driver features %#x", f)
	}
	// A device that sets the flags anyway gets no word taken for it.
	dev2.InjectHdr(frame(1, 100), virtiotest.Hdr{Flags: NetHdrFDataValid})
	if r := receiveInfo(t, n2); r.checksumOK || !bytes.Equal(r.b, frame(1, 100)) {
		t.Errorf("NoOffload, DATA_VALID set: checksumOK %v", r.checksumOK)
	}
	// Nor a GSO frame it never agreed to.
	dev2.InjectHdr(frame(2, 100), virtiotest.Hdr{GSOType: NetHdrGSOTCPv4})
	dev2.Inject(frame(3, 100))
	if r := receiveInfo(t, n2); !bytes.Equal(r.b, frame(3, 100)) {
		t.Errorf("after a GSO frame without GUEST_TSO4: got %q", r.b[:8])
	}
	if s := n2.Stats(); s.RxErrors != 1 {
		t.Errorf("RxErrors %d, want 1", s.RxErrors)
	}
}

// newNetOpts is newNet with the Net's options set before Init.
func newNetOpts(t *testing.T, opts func(*Net)) (*Net, *virtiotest.Device) {
	t.Helper()
	return newNetWith(t, nil, opts)
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

// tcpFrame is an Ethernet/IPv4/TCP frame of size bytes with a 20-byte
// TCP header: enough for the simulated device to segment it.
func tcpFrame(size int) []byte {
	f := frame(9, size)
	f[12], f[13] = 0x08, 0x00
	ip := f[14:]
	ip[0], ip[9] = 0x45, 6
	ip[34-14+12] = 5 << 4 // TCP data offset
	return f
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

func TestTransmitNoOffload(t *testing.T) {
	n, dev := newNetOpts(t, func(n *Net) { n.NoOffload = true })
	if csum, tso := n.TxOffloads(); csum || tso {
		t.Fatalf("NoOffload: TxOffloads %v %v", csum, tso)
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
