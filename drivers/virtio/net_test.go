package virtio

import (
	"bytes"
	"encoding/binary"
	"fmt"
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

// newNetOpts is newNet with the Net's options set before Init.
func newNetOpts(t *testing.T, opts func(*Net)) (*Net, *virtiotest.Device) {
	t.Helper()
	return newNetWith(t, nil, opts)
}

func frame(i int, size int) []byte {
	f := make([]byte, size)
	copy(f, fmt.Sprintf("frame %d", i))
	for j := 14; j < size; j++ {
		f[j] = byte(i + j)
	}
	return f
}

// receiveInto copies the next frame into buf, as a caller of ReceiveFunc
// that copies does; a longer frame is cut short.
func receiveInto(n *Net, buf []byte) (k int, err error) {
	err = n.ReceiveFunc(func(f [][]byte, _ bool) {
		for _, p := range f {
			k += copy(buf[k:], p)
		}
	})
	return k, err
}

// receive waits for the next frame, of at most MaxFrameSize bytes.
func receive(t *testing.T, n *Net) []byte {
	t.Helper()

	type result struct {
		n   int
		err error
	}
	buf := make([]byte, MaxFrameSize)
	c := make(chan result, 1)
	go func() {
		k, err := receiveInto(n, buf)
		c <- result{k, err}
	}()

	select {
	case r := <-c:
		if r.err != nil {
			t.Fatalf("ReceiveFunc: %v", r.err)
		}
		return buf[:r.n]
	case <-time.After(5 * time.Second):
		t.Fatal("ReceiveFunc timed out")
	}
	return nil
}

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

// send transmits frame, given in one piece.
func send(n *Net, frame []byte) error { return n.TransmitParts([][]byte{frame}) }

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

// waitResets waits until the driver has reset the device n times.
func waitResets(t *testing.T, n *Net, want uint64) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); n.Stats().Resets < want; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d device resets, want %d", n.Stats().Resets, want)
		}
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
	// the frame's interrupt may be serviced after ReceiveFunc saw the frame
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

		if err := send(n, f[:]); err != nil {
			t.Fatalf("Transmit %d: %v", i, err)
		}
		if got := dev.Transmitted(); len(got) != 1 || !bytes.Equal(got[0], f[:]) {
			t.Fatalf("frame %d: transmitted %d", i, len(got))
		}

		if !dev.Inject(f[:]) {
			t.Fatalf("Inject %d: no buffer", i)
		}
		k, err := receiveInto(n, buf)
		if err != nil || !bytes.Equal(buf[:k], f[:]) {
			t.Fatalf("ReceiveFunc %d: %v", i, err)
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

// TestStatsString: the counters as /net/virtio and ifconfig show them.
func TestStatsString(t *testing.T) {
	mem := virtiotest.NewMemory(8 << 20)
	dev := virtiotest.NewDevice(mem, testMAC)
	n := &Net{Regs: dev, Mem: mem}
	if err := n.Init(); err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if err := send(n, frame(1, 60)); err != nil {
		t.Fatal(err)
	}
	dev.Inject(frame(2, 70))
	n.HandleInterrupt()
	if _, err := receiveInto(n, make([]byte, MaxFrameSize)); err != nil {
		t.Fatal(err)
	}
	want := "virtio rx packets 1 bytes 70 errors 0\n" +
		"virtio tx packets 1 bytes 60 drops 0 errors 0\n" +
		"virtio interrupts 1 spurious 0 resets 0\n" +
		"virtio rxq size 256 free 0 inflight 256 bad-id 0 overrun 0\n" +
		"virtio txq size 256 free 256 inflight 0 bad-id 0 overrun 0\n"
	if got := n.Stats().String(); got != want {
		t.Errorf("got\n%swant\n%s", got, want)
	}
}
