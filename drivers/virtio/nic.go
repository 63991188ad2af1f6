package virtio

// NIC is the plain frame interface of an Ethernet device, all a link
// endpoint (kernel/netstack/virtiolink) needs of it; *Net is one, and so
// is virtiotest.NIC. Nothing here knows IP.
//
// ReceiveFunc blocks for the next frame and hands it to its argument, in
// one or more pieces (a large segment spans several receive buffers),
// valid only during that call; an error ends the endpoint's RX goroutine.
// checksumOK says that the device vouches for the frame's IP and TCP/UDP
// checksums: it checked them (VIRTIO_NET_HDR_F_DATA_VALID), or the frame
// comes from the host's own stack with the checksum left to fill in
// (NEEDS_CSUM), as a large TCP segment does, which no wire can have
// corrupted. It is never true without VIRTIO_NET_F_GUEST_CSUM. (A bool,
// not a struct, so that virtiotest, which virtio's tests import, needs
// no type from here.)
// TransmitParts errors drop the frame, as a full or broken wire would.
type NIC interface {
	MAC() [6]byte
	MTU() int
	TransmitParts(parts [][]byte) error // one frame, in pieces
	ReceiveFunc(use func(frame [][]byte, checksumOK bool)) error
}

var _ NIC = (*Net)(nil)

// TxOffloader is a NIC that can finish frames for the sender (virtio-v1.2
// §5.1.6.2): fill in a TCP or UDP checksum, cut a large TCP/IPv4 frame
// into segments. *Net is one when the device offers VIRTIO_NET_F_CSUM
// and VIRTIO_NET_F_HOST_TSO4.
type TxOffloader interface {
	// TxOffloads reports what the device does: checksums, and TCP/IPv4
	// segmentation.
	TxOffloads() (csum, tso4 bool)
	// TransmitOffload sends a frame in pieces, like TransmitParts, whose
	// checksum field at csumStart+csumOffset holds the pseudo-header's
	// sum, for the device to complete over the bytes from csumStart on.
	// With mss > 0 the frame is a TCP/IPv4 one of up to MaxTxFrameSize
	// bytes, hdrLen of them headers, which the device sends as segments
	// of at most mss payload bytes.
	TransmitOffload(parts [][]byte, csumStart, csumOffset, hdrLen, mss int) error
}

var _ TxOffloader = (*Net)(nil)
