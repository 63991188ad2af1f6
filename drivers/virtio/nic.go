package virtio

// NIC is the plain frame interface of an Ethernet device, all a link
// endpoint (kernel/netstack/virtiolink) needs of it; *Net is one, and so
// is virtiotest.NIC. Nothing here knows IP.
//
// ReceiveFunc blocks for the next frame and hands it to its argument,
// valid only during that call; an error ends the endpoint's RX goroutine.
// TransmitParts errors drop the frame, as a full or broken wire would.
type NIC interface {
	MAC() [6]byte
	MTU() int
	TransmitParts(parts [][]byte) error // one frame, in pieces
	ReceiveFunc(use func(frame []byte)) error
}

var _ NIC = (*Net)(nil)
