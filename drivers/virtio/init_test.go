package virtio

import (
	"slices"
	"sync/atomic"
	"testing"

	"fornax/drivers/virtio/virtiotest"
)

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
	if n.features != wantF || n.Offloads() != AllOffloads {
		t.Errorf("features %#x, Offloads() %v", n.features, n.Offloads().Names())
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
