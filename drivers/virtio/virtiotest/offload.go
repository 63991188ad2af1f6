package virtiotest

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// finish does what the device's transmit offloads ask of a frame
// (virtio-v1.2 §5.1.6.2): with NEEDS_CSUM it completes the checksum at
// csum_start+csum_offset over the bytes from csum_start on; with
// GSO_TCPV4 it cuts the TCP/IPv4 frame into segments of gso_size payload
// bytes, each with its own IP length, id and checksum and TCP sequence
// number, flags and checksum, as a NIC doing TSO does. It refuses what
// the driver did not negotiate or gave inconsistently.
func (d *Device) finish(hdr, frame []byte) ([][]byte, error) {
	flags, gso := hdr[0], hdr[1]
	hdrLen := int(binary.LittleEndian.Uint16(hdr[2:]))
	mss := int(binary.LittleEndian.Uint16(hdr[4:]))
	start := int(binary.LittleEndian.Uint16(hdr[6:]))
	off := int(binary.LittleEndian.Uint16(hdr[8:]))
	if flags&1 != 0 && d.drvFeatures&FeatureCsum == 0 {
		return nil, errors.New("NEEDS_CSUM without VIRTIO_NET_F_CSUM")
	}
	// With VIRTIO_NET_F_MTU what goes on the wire, each segment too,
	// fits the mtu (§5.1.4.2).
	maxWire := len(frame)
	if d.drvFeatures&FeatureMTU != 0 {
		maxWire = int(d.MTU) + etherHdrSize
	}
	switch gso &^ 0x80 {
	case 0:
		if len(frame) > maxWire {
			return nil, fmt.Errorf("a %d-byte frame, larger than mtu %d and an Ethernet header", len(frame), d.MTU)
		}
	case 1:
		if d.drvFeatures&FeatureHostTSO4 == 0 {
			return nil, errors.New("GSO_TCPV4 without VIRTIO_NET_F_HOST_TSO4")
		}
		if flags&1 == 0 {
			return nil, errors.New("GSO_TCPV4 without NEEDS_CSUM")
		}
		if hdrLen+mss > maxWire {
			return nil, fmt.Errorf("segments of %d+%d bytes, larger than mtu %d and an Ethernet header", hdrLen, mss, d.MTU)
		}
		d.tsoFrames++
		return segment(frame, hdrLen, mss)
	default:
		return nil, fmt.Errorf("gso_type %#x", gso)
	}
	if flags&1 != 0 {
		if start+off+2 > len(frame) {
			return nil, fmt.Errorf("csum_start %d + csum_offset %d outside a %d-byte frame", start, off, len(frame))
		}
		binary.BigEndian.PutUint16(frame[start+off:], ^sum(frame[start:], 0))
		d.csumFrames++
	}
	return [][]byte{frame}, nil
}

// sum is the Internet checksum's one's complement sum (RFC 1071).
func sum(b []byte, s uint32) uint16 {
	for len(b) >= 2 {
		s += uint32(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint32(b[0]) << 8
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

// segment cuts a TCP/IPv4 frame (Ethernet, IPv4, TCP, payload) into
// frames of at most mss payload bytes.
func segment(frame []byte, hdrLen, mss int) ([][]byte, error) {
	if len(frame) < 14+20 || binary.BigEndian.Uint16(frame[12:]) != 0x0800 {
		return nil, errors.New("GSO_TCPV4 frame is not IPv4")
	}
	ip := frame[14:]
	ihl := int(ip[0]&0xf) * 4
	if ip[0]>>4 != 4 || ihl < 20 || ip[9] != 6 || len(ip) < ihl+20 {
		return nil, errors.New("GSO_TCPV4 frame is not TCP/IPv4")
	}
	thl := int(ip[ihl+12]>>4) * 4
	if h := 14 + ihl + thl; h != hdrLen || h > len(frame) {
		return nil, fmt.Errorf("hdr_len %d, headers are %d bytes", hdrLen, h)
	}
	if mss <= 0 {
		return nil, fmt.Errorf("gso_size %d", mss)
	}
	headers, payload := frame[:hdrLen], frame[hdrLen:]
	id := binary.BigEndian.Uint16(ip[4:])
	seq := binary.BigEndian.Uint32(ip[ihl+4:])
	tcpFlags := ip[ihl+13]
	var out [][]byte
	for k, o := 0, 0; o < len(payload); k, o = k+1, o+mss {
		chunk := payload[o:min(o+mss, len(payload))]
		f := append(append([]byte(nil), headers...), chunk...)
		sip := f[14:]
		binary.BigEndian.PutUint16(sip[2:], uint16(ihl+thl+len(chunk)))
		binary.BigEndian.PutUint16(sip[4:], id+uint16(k))
		sip[10], sip[11] = 0, 0
		binary.BigEndian.PutUint16(sip[10:], ^sum(sip[:ihl], 0))
		tcp := sip[ihl:]
		binary.BigEndian.PutUint32(tcp[4:], seq+uint32(o))
		fl := tcpFlags
		if o+len(chunk) < len(payload) {
			fl &^= 0x09 // FIN and PSH on the last segment only
		}
		if k > 0 {
			fl &^= 0x80 // CWR on the first only
		}
		tcp[13] = fl
		tcp[16], tcp[17] = 0, 0
		// The pseudo-header: addresses, protocol, TCP length.
		ps := sum(sip[12:20], 6+uint32(thl+len(chunk)))
		binary.BigEndian.PutUint16(tcp[16:], ^sum(tcp, uint32(ps)))
		out = append(out, f)
	}
	return out, nil
}
