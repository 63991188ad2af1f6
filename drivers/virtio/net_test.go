package virtio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"fornax/drivers/virtio/virtiotest"
)

var testMAC = [6]byte{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}

// newNet returns an initialized Net on a simulated device whose interrupts
// are serviced by a goroutine, as in the kernel.
func newNet(t *testing.T, setup func(*virtiotest.Device)) (*Net, *virtiotest.Device) {
	t.Helper()
	return newNetWith(t, setup, nil)
}

// newNetWith is newNet with the device set up by setup and the Net's
// options by opts, before Init; either may be nil.
func newNetWith(t *testing.T, setup func(*virtiotest.Device), opts func(*Net)) (*Net, *virtiotest.Device) {
	t.Helper()

	mem := virtiotest.NewMemory(16 << 20)
	dev := virtiotest.NewDevice(mem, testMAC)
	if setup != nil {
		setup(dev)
	}

	n := &Net{Regs: dev, Mem: mem}
	if opts != nil {
		opts(n)
	}
	if err := n.Init(); err != nil {
		t.Fatal(err)
	}

	stop := virtiotest.ServeIRQ(dev, n.HandleInterrupt)

	t.Cleanup(func() {
		n.Close()
		stop()
		if errs := dev.Errors(); len(errs) > 0 {
			t.Errorf("device saw protocol errors: %q", errs)
		}
	})

	return n, dev
}

func frame(i int, size int) []byte {
	f := make([]byte, size)
	copy(f, fmt.Sprintf("frame %d", i))
	for j := 14; j < size; j++ {
		f[j] = byte(i + j)
	}
	return f
}

func receive(t *testing.T, n *Net) []byte {
	t.Helper()

	type result struct {
		n   int
		err error
	}
	buf := make([]byte, MaxFrameSize)
	c := make(chan result, 1)
	go func() {
		k, err := n.Receive(buf)
		c <- result{k, err}
	}()

	select {
	case r := <-c:
		if r.err != nil {
			t.Fatalf("Receive: %v", r.err)
		}
		return buf[:r.n]
	case <-time.After(5 * time.Second):
		t.Fatal("Receive timed out")
	}
	return nil
}

func TestInitNegotiation(t *testing.T) {
	n, dev := newNet(t, nil)

	want := []uint32{0, StatusAcknowledge, StatusAcknowledge | StatusDriver,
		StatusAcknowledge | StatusDriver | StatusFeaturesOK,
		StatusAcknowledge | StatusDriver | StatusFeaturesOK | StatusDriverOK}
	if got := dev.StatusLog(); !slices.Equal(got, want) {
		t.Errorf("status writes %v, want %v", got, want)
	}

	// Every offload the device offers is taken.
	wantF := uint64(FeatureVersion1 | FeatureNetMAC | FeatureNetCsum | FeatureNetHostTSO4 | FeatureNetGuestCsum | FeatureNetGuestTSO4 | FeatureNetMrgRxbuf)
	if f := dev.DriverFeatures(); f != wantF {
		t.Errorf("driver features %#x, want %#x", f, wantF)
	}
	if n.Features() != wantF {
		t.Errorf("Features() = %#x", n.Features())
	}
	if dev.QueueNum(0) != 256 || dev.QueueNum(1) != 256 {
		t.Errorf("queue sizes %d %d", dev.QueueNum(0), dev.QueueNum(1))
	}
	if dev.Notifies(0) != 1 {
		t.Errorf("%d rx notifications after Init, want 1", dev.Notifies(0))
	}
	if n.MAC() != testMAC {
		t.Errorf("MAC %x", n.MAC())
	}

	s := n.Stats()
	if s.RX.InFlight != 256 || s.RX.Free != 0 || s.TX.Free != 256 {
		t.Errorf("queue stats %+v %+v", s.RX, s.TX)
	}
}

func TestInitQueueSize(t *testing.T) {
	_, dev := newNet(t, func(d *virtiotest.Device) { d.QueueNumMax = 200 })
	if dev.QueueNum(0) != 128 || dev.QueueNum(1) != 128 {
		t.Errorf("queue sizes %d %d, want 128", dev.QueueNum(0), dev.QueueNum(1))
	}

	mem := virtiotest.NewMemory(8 << 20)
	n := &Net{Regs: virtiotest.NewDevice(mem, testMAC), Mem: mem, QueueSize: 16}
	if err := n.Init(); err != nil {
		t.Fatal(err)
	}
	if s := n.Stats(); s.RX.Size != 16 || s.TX.Size != 16 {
		t.Errorf("QueueSize 16: %d %d", s.RX.Size, s.TX.Size)
	}
}

// TestInitSmallQueueNoTSO: a receive queue of fewer than 17 pages cannot
// hold a 64 KiB segment, so GUEST_TSO4 is declined, whether the driver
// or the device makes the queue small; the other offloads stay.
func TestInitSmallQueueNoTSO(t *testing.T) {
	for _, c := range []struct {
		name              string
		queueSize, numMax int
		tso               bool
	}{
		{"default", 0, 256, true},
		{"driver 32", 32, 256, true},
		{"driver 16", 16, 256, false},
		{"device 16", 0, 16, false},
		{"device 31", 0, 31, false}, // rounds down to 16
		{"device 32", 0, 32, true},
	} {
		_, dev := newNetWith(t, func(d *virtiotest.Device) { d.QueueNumMax = uint32(c.numMax) },
			func(n *Net) { n.QueueSize = c.queueSize })
		f := dev.DriverFeatures()
		if tso := f&FeatureNetGuestTSO4 != 0; tso != c.tso {
			t.Errorf("%s: GUEST_TSO4 %v, want %v", c.name, tso, c.tso)
		}
		if f&(FeatureNetGuestCsum|FeatureNetMrgRxbuf) != FeatureNetGuestCsum|FeatureNetMrgRxbuf {
			t.Errorf("%s: features %#x lack GUEST_CSUM or MRG_RXBUF", c.name, f)
		}
	}
}

// refuse is a device that never accepts FEATURES_OK.
type refuse struct{ *virtiotest.Device }

func (r refuse) Read32(off uint32) uint32 {
	v := r.Device.Read32(off)
	if off == RegStatus {
		v &^= StatusFeaturesOK
	}
	return v
}

func TestInitFeaturesRefused(t *testing.T) {
	mem := virtiotest.NewMemory(8 << 20)
	dev := virtiotest.NewDevice(mem, testMAC)
	n := &Net{Regs: refuse{dev}, Mem: mem}

	if err := n.Init(); err == nil {
		t.Fatal("Init succeeded without FEATURES_OK")
	}

	log := dev.StatusLog()
	if last := log[len(log)-1]; last&StatusFailed == 0 || last&StatusDriverOK != 0 {
		t.Errorf("last status %#x, want FAILED and not DRIVER_OK", last)
	}
	if dev.QueueNum(0) != 0 {
		t.Error("queues set up after refused features")
	}
}

func TestInitLegacyRefused(t *testing.T) {
	mem := virtiotest.NewMemory(8 << 20)
	dev := virtiotest.NewDevice(mem, testMAC)
	dev.Features &^= FeatureVersion1

	if err := (&Net{Regs: dev, Mem: mem}).Init(); err == nil {
		t.Fatal("Init succeeded without VIRTIO_F_VERSION_1")
	}
}

// slowReset reads a non-zero status for a while after reset.
type slowReset struct {
	*virtiotest.Device
	busy  atomic.Int32
	reads atomic.Int32
}

func (s *slowReset) Write32(off, v uint32) {
	if off == RegStatus && v == 0 {
		s.busy.Store(5)
	}
	s.Device.Write32(off, v)
}

func (s *slowReset) Read32(off uint32) uint32 {
	if off == RegStatus && s.busy.Load() > 0 {
		s.busy.Add(-1)
		s.reads.Add(1)
		return StatusDriverOK
	}
	return s.Device.Read32(off)
}

func TestInitWaitsForReset(t *testing.T) {
	mem := virtiotest.NewMemory(8 << 20)
	r := &slowReset{Device: virtiotest.NewDevice(mem, testMAC)}

	if err := (&Net{Regs: r, Mem: mem}).Init(); err != nil {
		t.Fatal(err)
	}
	if r.reads.Load() != 5 {
		t.Errorf("%d status reads while resetting", r.reads.Load())
	}
	if log := r.StatusLog(); log[0] != 0 || log[1] != StatusAcknowledge {
		t.Errorf("status writes %v", log)
	}
}

// bytewise adds 8-bit accesses, only to the configuration space.
type bytewise struct {
	*virtiotest.Device
	byteReads int
}

func (b *bytewise) Read8(off uint32) uint8 {
	b.byteReads++
	w := b.Device.Read32(off &^ 3)
	return uint8(w >> (8 * (off & 3)))
}

func (b *bytewise) Read32(off uint32) uint32 {
	if off >= RegConfig {
		panic("32-bit read of configuration space")
	}
	return b.Device.Read32(off)
}

func TestMAC(t *testing.T) {
	mem := virtiotest.NewMemory(8 << 20)
	b := &bytewise{Device: virtiotest.NewDevice(mem, testMAC)}
	n := &Net{Regs: b, Mem: mem}
	if err := n.Init(); err != nil {
		t.Fatal(err)
	}
	if n.MAC() != testMAC || b.byteReads != 6 {
		t.Errorf("MAC %x after %d byte reads", n.MAC(), b.byteReads)
	}

	// no VIRTIO_NET_F_MAC: a random, locally administered unicast MAC
	dev := virtiotest.NewDevice(mem, testMAC)
	dev.Features &^= FeatureNetMAC
	n = &Net{Regs: dev, Mem: mem}
	if err := n.Init(); err != nil {
		t.Fatal(err)
	}
	if mac := n.MAC(); mac == testMAC || mac[0]&3 != 2 {
		t.Errorf("made-up MAC %x", mac)
	}
	if dev.DriverFeatures()&FeatureNetMAC != 0 {
		t.Error("accepted a feature not offered")
	}
}

func TestTransmit(t *testing.T) {
	n, dev := newNet(t, nil)

	for i := 0; i < 3; i++ {
		if err := n.Transmit(frame(i, 60+i)); err != nil {
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

	if err := n.Transmit(make([]byte, MaxFrameSize+1)); !errors.Is(err, ErrFrameSize) {
		t.Errorf("oversized frame: %v", err)
	}
	if err := n.Transmit(make([]byte, MaxFrameSize)); err != nil {
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
		if err := n.Transmit(frame(i, 100)); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
	}
	for i := 8; i < 10; i++ {
		if err := n.Transmit(frame(i, 100)); !errors.Is(err, ErrTxFull) {
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
		if err := n.Transmit(frame(100+i, 100)); err != nil {
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

	// truncated into a short buffer: reported, counted, buffer recycled
	dev.Inject(frame(9, 200))
	buf := make([]byte, 100)
	if k, err := n.Receive(buf); !errors.Is(err, io.ErrShortBuffer) || k != 100 {
		t.Errorf("short buffer: %d, %v", k, err)
	}

	s := n.Stats()
	if s.RxPackets != 5 || s.RxBytes != 64+65+66+67+68 || s.RxDrops != 1 {
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

// TestReceiveBlocks checks that Receive sleeps until the interrupt: a frame
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
		k, _ := n.Receive(buf)
		done <- buf[:k]
	}()

	time.Sleep(20 * time.Millisecond)
	dev.Inject(frame(1, 70)) // raises dev.IRQ, which nobody services yet

	select {
	case <-done:
		t.Fatal("Receive returned without an interrupt")
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
		t.Fatal("Receive not woken by the interrupt")
	}

	// Close wakes a blocked Receive
	errc := make(chan error)
	go func() {
		_, err := n.Receive(make([]byte, MaxFrameSize))
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond)
	n.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("Receive after Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not wake Receive")
	}
	if err := n.Transmit(frame(1, 60)); !errors.Is(err, ErrClosed) {
		t.Errorf("Transmit after Close: %v", err)
	}
}

func TestSpuriousInterrupt(t *testing.T) {
	n, dev := newNet(t, nil)

	for i := 0; i < 3; i++ {
		n.HandleInterrupt() // status 0
	}
	dev.RaiseSpurious()

	deadline := time.Now().Add(5 * time.Second)
	for n.Stats().Spurious != 4 {
		if time.Now().After(deadline) {
			t.Fatalf("spurious %d", n.Stats().Spurious)
		}
		time.Sleep(time.Millisecond)
	}

	// a configuration change interrupt is acknowledged and counted
	dev.SetInterrupt(IntConfigChange)
	for n.Stats().ConfigChanges != 1 {
		if time.Now().After(deadline) {
			t.Fatal("config change not seen")
		}
		time.Sleep(time.Millisecond)
	}
	if s := dev.Read32(RegInterruptStatus); s != 0 {
		t.Errorf("InterruptStatus %#x after ack", s)
	}

	dev.Inject(frame(7, 60))
	if f := receive(t, n); !bytes.Equal(f, frame(7, 60)) {
		t.Error("receive after spurious interrupts")
	}
	// the frame's interrupt may be serviced after Receive saw the frame
	for n.Stats().Interrupts < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("interrupts %d", n.Stats().Interrupts)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestWrapAround drives more than 65536 frames each way through queues of
// 8, so that avail.idx and used.idx wrap.
func TestWrapAround(t *testing.T) {
	n, dev := newNet(t, func(d *virtiotest.Device) { d.QueueNumMax = 8 })

	const count = 65536 + 200

	buf := make([]byte, MaxFrameSize)
	var f [64]byte

	for i := 0; i < count; i++ {
		binary.LittleEndian.PutUint32(f[:], uint32(i))

		if err := n.Transmit(f[:]); err != nil {
			t.Fatalf("Transmit %d: %v", i, err)
		}
		if got := dev.Transmitted(); len(got) != 1 || !bytes.Equal(got[0], f[:]) {
			t.Fatalf("frame %d: transmitted %d", i, len(got))
		}

		if !dev.Inject(f[:]) {
			t.Fatalf("Inject %d: no buffer", i)
		}
		k, err := n.Receive(buf)
		if err != nil || !bytes.Equal(buf[:k], f[:]) {
			t.Fatalf("Receive %d: %v", i, err)
		}
	}

	if n.tx.q.availIdx != count%65536 || n.rx.q.lastUsed != count%65536 {
		t.Errorf("indices %d %d", n.tx.q.availIdx, n.rx.q.lastUsed)
	}

	s := n.Stats()
	if s.TxPackets != count || s.RxPackets != count || s.TxDrops != 0 || s.RxErrors != 0 || s.TxErrors != 0 {
		t.Errorf("stats %+v", s)
	}
	if s.TX.Free != 8 || s.RX.InFlight != 8 || s.RX.BadIDs+s.RX.Overruns+s.TX.BadIDs+s.TX.Overruns+s.Resets != 0 {
		t.Errorf("queues %+v %+v", s.RX, s.TX)
	}
	if dev.RxDropped() != 0 {
		t.Errorf("device dropped %d", dev.RxDropped())
	}
}

func TestNoNotify(t *testing.T) {
	n, dev := newNet(t, func(d *virtiotest.Device) { d.NoNotify = true; d.HoldTX = true })

	for i := 0; i < 4; i++ {
		n.Transmit(frame(i, 60))
	}
	if k := dev.Notifies(1); k != 0 {
		t.Errorf("%d tx notifications despite VIRTQ_USED_F_NO_NOTIFY", k)
	}
	dev.CompleteTX()
	if len(dev.Transmitted()) != 4 {
		t.Error("frames lost")
	}
}

// waitResets waits until the driver has reset the device n times.
func waitResets(t *testing.T, n *Net, want uint64) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); n.Stats().Resets < want; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d device resets, want %d", n.Stats().Resets, want)
		}
	}
}

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
			if _, err := n.Receive(buf); err != nil {
				return
			}
		}
	}()

	for i := 0; i < 3; i++ {
		if err := n.Transmit(frame(i, 60)); err != nil {
			t.Fatal(err)
		}
	}
	dev.SetUsedID(func(q int, head uint32) uint32 { return head ^ 4 })
	dev.CompleteTX()
	dev.SetUsedID(nil)
	n.Transmit(frame(3, 60)) // reaps: finds the bogus id
	waitResets(t, n, 1)
	if s := n.Stats(); s.TX.BadIDs != 1 || s.TX.Free != 8 {
		t.Errorf("after unknown ids: %+v", s.TX)
	}

	n.Transmit(frame(4, 60))
	dev.JumpUsed(1, 100)
	n.Transmit(frame(5, 60))
	waitResets(t, n, 2)
	if s := n.Stats(); s.TX.Overruns != 1 || s.TX.Free != 8 || s.TxErrors != 2 {
		t.Errorf("after the jump: %+v", s)
	}

	dev.HoldTX = false
	dev.Transmitted()
	if err := n.Transmit(frame(6, 60)); err != nil {
		t.Fatal(err)
	}
	dev.CompleteTX()
	if got := dev.Transmitted(); len(got) != 1 || !bytes.Equal(got[0], frame(6, 60)) {
		t.Errorf("after the resets, transmitted %d frames", len(got))
	}
}

// TestResetFails has the device refuse to come back: Receive and
// Transmit then fail with a reason instead of spinning.
func TestResetFails(t *testing.T) {
	n, dev := newNet(t, nil)
	dev.Inject(frame(1, 80))
	receive(t, n)

	dev.QueueNumMax = 8 // the device shrinks its queues: the rings no longer fit
	dev.JumpUsed(0, 300)
	_, err := n.Receive(make([]byte, MaxFrameSize))
	if err == nil || !strings.Contains(err.Error(), "device now takes 8") {
		t.Fatalf("Receive: %v", err)
	}
	if err := n.Transmit(frame(2, 60)); err == nil {
		t.Error("Transmit on a failed device succeeded")
	}
	if log := dev.StatusLog(); log[len(log)-1]&StatusFailed == 0 {
		t.Errorf("status writes %v: FAILED not set", log)
	}
}
