package virtiotest

import (
	"errors"
	"sync"
	"sync/atomic"
)

// ErrClosed is returned by a closed NIC.
var ErrClosed = errors.New("virtiotest: NIC closed")

// NIC is one end of an in-memory Ethernet cable (see Pipe). It has the
// method set of virtio.NIC, the link endpoint's frame interface.
type NIC struct {
	mac  [6]byte
	peer *NIC
	rx   chan rxFrame
	done chan struct{}
	once sync.Once

	// Dropped counts frames lost because the peer's queue was full.
	Dropped atomic.Uint64
	// Filter, if set, may drop (return false) or rewrite a frame before
	// transmission. Set it before use.
	Filter func(frame []byte) bool
}

type rxFrame struct {
	b          []byte
	checksumOK bool
}

// Pipe returns two NICs connected back to back, each with a receive
// queue of 256 frames.
func Pipe(macA, macB [6]byte) (*NIC, *NIC) {
	a := &NIC{mac: macA, rx: make(chan rxFrame, 256), done: make(chan struct{})}
	b := &NIC{mac: macB, rx: make(chan rxFrame, 256), done: make(chan struct{})}
	a.peer, b.peer = b, a
	return a, b
}

// MAC returns the NIC's address.
func (n *NIC) MAC() [6]byte { return n.mac }

// MTU returns 1500.
func (n *NIC) MTU() int { return 1500 }

// Transmit queues a copy of frame at the peer, dropping it if the peer's
// queue is full.
func (n *NIC) Transmit(frame []byte) error {
	select {
	case <-n.done:
		return ErrClosed
	default:
	}

	f := append([]byte(nil), frame...)

	if n.Filter != nil && !n.Filter(f) {
		return nil
	}

	select {
	case n.peer.rx <- rxFrame{b: f}:
	default:
		n.Dropped.Add(1)
	}

	return nil
}

// TransmitParts is Transmit for a frame in pieces.
func (n *NIC) TransmitParts(parts [][]byte) error {
	var f []byte
	for _, p := range parts {
		f = append(f, p...)
	}
	return n.Transmit(f)
}

// Inject queues frame as if the peer had sent it.
func (n *NIC) Inject(frame []byte) { n.InjectVouched(frame, false) }

// InjectVouched queues frame as if the peer had sent it, with the
// device's word on its checksums (see virtio.NIC).
func (n *NIC) InjectVouched(frame []byte, checksumOK bool) {
	n.rx <- rxFrame{append([]byte(nil), frame...), checksumOK}
}

// ReceiveFunc blocks for the next frame and hands it to use, or returns
// ErrClosed after Close. Frames from the peer come with checksumOK false.
func (n *NIC) ReceiveFunc(use func(frame [][]byte, checksumOK bool)) error {
	select {
	case f := <-n.rx:
		use([][]byte{f.b}, f.checksumOK)
		return nil
	case <-n.done:
		return ErrClosed
	}
}

// Close makes ReceiveFunc and Transmit fail.
func (n *NIC) Close() error {
	n.once.Do(func() { close(n.done) })
	return nil
}
