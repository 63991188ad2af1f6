package virtio

import (
	"bytes"
	"errors"
	"testing"

	"fornax/drivers/virtio/virtiotest"
)

// TestMTUNegotiation: VIRTIO_NET_F_MTU (virtio-v1.2 §5.1.3, §5.1.4) is
// taken when the device offers an mtu the buffers carry, and MTU()
// follows it; otherwise the feature is declined and the link is 1500,
// with the offloads or without.
func TestMTUNegotiation(t *testing.T) {
	for _, c := range []struct {
		name    string
		offer   bool
		mtu     uint16
		take    bool
		wantMTU int
	}{
		{"not offered", false, 1450, false, 1500},
		{"vxlan 1450", true, 1450, true, 1450},
		{"1500", true, 1500, true, 1500},
		{"minimum 68", true, 68, true, 68},
		{"below the minimum", true, 67, false, 1500},
		{"zero", true, 0, false, 1500},
		{"jumbo 9000", true, 9000, false, 1500},
		{"1501", true, 1501, false, 1500},
	} {
		for _, off := range []Offloads{0, AllOffloads} {
			n, dev := newNetWith(t, func(d *virtiotest.Device) {
				d.MTU = c.mtu
				if c.offer {
					d.Features |= virtiotest.FeatureMTU
				}
			}, func(n *Net) { n.Decline = off })
			if took := dev.DriverFeatures()&FeatureNetMTU != 0; took != c.take {
				t.Errorf("%s, offloads %v: took VIRTIO_NET_F_MTU %v, want %v", c.name, off.Names(), took, c.take)
			}
			if n.MTU() != c.wantMTU {
				t.Errorf("%s, offloads %v: MTU() %d, want %d", c.name, off.Names(), n.MTU(), c.wantMTU)
			}
			// The other features do not depend on the MTU.
			if got, want := n.Offloads(), AllOffloads&^off; got != want {
				t.Errorf("%s: offloads %v, want %v", c.name, got.Names(), want.Names())
			}
		}
	}
}

// TestMTUFrames: at mtu 1450 a frame of 1450 bytes and an Ethernet
// header goes out and one byte more is refused (§5.1.4.2, the device
// would drop it), as is a segment size over the mtu; received frames of
// the full mtu fit the buffers, mergeable or not. The simulated device
// fails the test if a frame it was given exceeds its mtu.
func TestMTUFrames(t *testing.T) {
	for _, off := range []Offloads{0, AllOffloads} {
		n, dev := newNetWith(t, func(d *virtiotest.Device) { d.SetMTU(1450) },
			func(n *Net) { n.Decline = off })

		if err := n.TransmitParts([][]byte{frame(1, 1464)}); err != nil {
			t.Errorf("offloads %v: a frame of mtu+14 bytes: %v", off.Names(), err)
		}
		if err := n.TransmitParts([][]byte{frame(2, 1465)}); !errors.Is(err, ErrFrameSize) {
			t.Errorf("offloads %v: a frame of mtu+15 bytes: %v, want ErrFrameSize", off.Names(), err)
		}
		if got := dev.Transmitted(); len(got) != 1 || len(got[0]) != 1464 {
			t.Errorf("offloads %v: transmitted %d frames", off.Names(), len(got))
		}

		dev.Inject(frame(3, 1464))
		if f := receive(t, n); !bytes.Equal(f, frame(3, 1464)) {
			t.Errorf("offloads %v: received %d bytes, want the 1464 sent", off.Names(), len(f))
		}
		if s := n.Stats(); s.TxErrors != 1 || s.RxErrors != 0 {
			t.Errorf("offloads %v: stats %+v", off.Names(), s)
		}
	}
}

// TestMTUSegments: a TSO frame is cut by the device into segments of
// the MSS it is given, which must fit the mtu: the driver refuses an MSS
// whose segments would not, and the device checks those it cuts.
func TestMTUSegments(t *testing.T) {
	n, dev := newNet(t, func(d *virtiotest.Device) { d.SetMTU(1450) })
	f := tcpFrame(8000)
	hdr := 14 + 20 + 20
	if err := n.TransmitOffload([][]byte{f}, 34, 16, hdr, 1410); err != nil {
		t.Fatal(err)
	}
	if err := n.TransmitOffload([][]byte{f}, 34, 16, hdr, 1411); !errors.Is(err, ErrOffload) {
		t.Errorf("segments of mss 1411 at mtu 1450: %v, want ErrOffload", err)
	}
	segs := dev.Transmitted()
	if len(segs) != 6 { // ceil(7946 / 1410)
		t.Fatalf("%d segments, want 6", len(segs))
	}
	for i, s := range segs {
		if len(s) > 1464 {
			t.Errorf("segment %d: %d bytes", i, len(s))
		}
	}
}

// halfwise is a register window with 16-bit accesses, which reads the
// configuration space no other way but bytes.
type halfwise struct {
	*virtiotest.Device
	halfReads int
}

func (h *halfwise) Read8(off uint32) uint8 {
	w := h.Device.Read32(off &^ 3)
	return uint8(w >> (8 * (off & 3)))
}

func (h *halfwise) Read16(off uint32) uint16 {
	h.halfReads++
	return h.Device.Read16(off)
}

func (h *halfwise) Read32(off uint32) uint32 {
	if off >= RegConfig {
		panic("32-bit read of configuration space")
	}
	return h.Device.Read32(off)
}

// TestMTUHalfRead: the mtu, a 16-bit field, is read with a 16-bit access
// where the window has one (§4.2.2.2).
func TestMTUHalfRead(t *testing.T) {
	mem := virtiotest.NewMemory(8 << 20)
	dev := virtiotest.NewDevice(mem, testMAC)
	dev.SetMTU(1450)
	h := &halfwise{Device: dev}
	n := &Net{Regs: h, Mem: mem}
	if err := n.Init(); err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if n.MTU() != 1450 || h.halfReads != 1 || n.MAC() != testMAC {
		t.Errorf("MTU %d after %d 16-bit reads, MAC %x", n.MTU(), h.halfReads, n.MAC())
	}
	if errs := dev.Errors(); len(errs) > 0 {
		t.Errorf("device saw protocol errors: %q", errs)
	}
}

// TestMTURestart: a reset after a broken queue keeps the mtu; a device
// that comes back with another is refused, as one with other features
// is (the stack above was sized for the first).
func TestMTURestart(t *testing.T) {
	n, dev := newNet(t, func(d *virtiotest.Device) { d.SetMTU(1450) })

	restart := func() error {
		n.rx.Lock()
		defer n.rx.Unlock()
		n.tx.Lock()
		defer n.tx.Unlock()
		return n.restart()
	}
	if err := restart(); err != nil {
		t.Fatalf("restart with the same mtu: %v", err)
	}
	if n.MTU() != 1450 {
		t.Errorf("MTU %d after a restart", n.MTU())
	}
	dev.MTU = 1400
	if err := restart(); err == nil {
		t.Error("restart accepted a device whose mtu changed")
	}
	if n.MTU() != 1450 {
		t.Errorf("MTU %d after a refused restart", n.MTU())
	}
}
