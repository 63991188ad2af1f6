package vmtest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// Raw Ethernet frames, for tests that forge what a hostile node on the
// LAN would send: any source MAC, IP address and port, correct checksums.
// They are sent and watched with AF_PACKET sockets on an interface inside
// a network namespace (the test's own; see Namespace).

// Ethernet is an Ethernet II header.
type Ethernet struct {
	Dst, Src net.HardwareAddr
}

// BroadcastMAC is ff:ff:ff:ff:ff:ff.
var BroadcastMAC = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// VMMAC returns the MAC address of VM i (scripts/run-two-qemu.sh).
func VMMAC(i int) net.HardwareAddr {
	return net.HardwareAddr{0x52, 0x54, 0x00, 0xf0, 0x00, byte(i)}
}

// TapName returns the name of VM i's tap in the namespace.
func TapName(i int) string { return fmt.Sprintf("fxtap%02d", i) }

// Bridge is the name of the LAN's bridge in the namespace.
const Bridge = "fxbr0"

const (
	etherHdr  = 14
	ipHdr     = 20
	udpHdr    = 8
	icmpHdr   = 8
	etherIPv4 = 0x0800
	protoICMP = 1
	protoUDP  = 17
	icmpEcho  = 8
)

// UDPFrame returns an Ethernet frame carrying an IPv4 UDP datagram from
// src to dst (RFC 768, RFC 791).
func UDPFrame(eth Ethernet, src, dst netip.AddrPort, payload []byte) []byte {
	u := make([]byte, udpHdr+len(payload))
	binary.BigEndian.PutUint16(u[0:], src.Port())
	binary.BigEndian.PutUint16(u[2:], dst.Port())
	binary.BigEndian.PutUint16(u[4:], uint16(len(u)))
	copy(u[udpHdr:], payload)

	// checksum over the pseudo-header and the datagram; 0 is sent as
	// 0xffff, 0 meaning none (RFC 768)
	s, d := src.Addr().As4(), dst.Addr().As4()
	pseudo := append(append(append([]byte{}, s[:]...), d[:]...), 0, protoUDP, byte(len(u)>>8), byte(len(u)))
	sum := inetChecksum(append(pseudo, u...))
	if sum == 0 {
		sum = 0xffff
	}
	binary.BigEndian.PutUint16(u[6:], sum)

	return ipv4Frame(eth, src.Addr(), dst.Addr(), protoUDP, u)
}

// ICMPEchoFrame returns an Ethernet frame carrying an ICMP echo request
// (RFC 792) from src to dst.
func ICMPEchoFrame(eth Ethernet, src, dst netip.Addr, id, seq uint16, payload []byte) []byte {
	m := make([]byte, icmpHdr+len(payload))
	m[0] = icmpEcho
	binary.BigEndian.PutUint16(m[4:], id)
	binary.BigEndian.PutUint16(m[6:], seq)
	copy(m[icmpHdr:], payload)
	binary.BigEndian.PutUint16(m[2:], inetChecksum(m))

	return ipv4Frame(eth, src, dst, protoICMP, m)
}

func ipv4Frame(eth Ethernet, src, dst netip.Addr, proto byte, payload []byte) []byte {
	f := make([]byte, etherHdr+ipHdr+len(payload))
	copy(f[0:], eth.Dst)
	copy(f[6:], eth.Src)
	binary.BigEndian.PutUint16(f[12:], etherIPv4)

	ip := f[etherHdr:]
	ip[0] = 0x45 // version 4, 5 words of header
	binary.BigEndian.PutUint16(ip[2:], uint16(ipHdr+len(payload)))
	binary.BigEndian.PutUint16(ip[6:], 0x4000) // don't fragment
	ip[8] = 64                                 // TTL
	ip[9] = proto
	s, d := src.As4(), dst.As4()
	copy(ip[12:], s[:])
	copy(ip[16:], d[:])
	binary.BigEndian.PutUint16(ip[10:], inetChecksum(ip[:ipHdr]))
	copy(ip[ipHdr:], payload)

	return f
}

// inetChecksum is the Internet checksum (RFC 1071).
func inetChecksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// Packet is a parsed IPv4 frame: what tests count.
type Packet struct {
	Src, Dst   netip.Addr
	Proto      byte   // IP protocol
	SrcPort    uint16 // UDP
	DstPort    uint16 // UDP
	ICMPType   byte
	Payload    []byte // of UDP or ICMP
	EtherSrc   net.HardwareAddr
	EtherDst   net.HardwareAddr
	IPChecksum bool // the IP header checksum verifies
}

// ParseFrame parses an Ethernet frame carrying IPv4 UDP or ICMP; ok is
// false for anything else.
func ParseFrame(f []byte) (p Packet, ok bool) {
	if len(f) < etherHdr+ipHdr || binary.BigEndian.Uint16(f[12:]) != etherIPv4 {
		return p, false
	}
	ip := f[etherHdr:]
	hlen := int(ip[0]&0xf) * 4
	total := int(binary.BigEndian.Uint16(ip[2:]))
	if ip[0]>>4 != 4 || hlen < ipHdr || total < hlen || total > len(ip) {
		return p, false
	}
	p.EtherDst, p.EtherSrc = net.HardwareAddr(f[0:6]), net.HardwareAddr(f[6:12])
	p.Src, p.Dst = netip.AddrFrom4([4]byte(ip[12:16])), netip.AddrFrom4([4]byte(ip[16:20]))
	p.Proto = ip[9]
	p.IPChecksum = inetChecksum(ip[:hlen]) == 0
	l4 := ip[hlen:total]
	switch {
	case p.Proto == protoUDP && len(l4) >= udpHdr:
		p.SrcPort, p.DstPort = binary.BigEndian.Uint16(l4), binary.BigEndian.Uint16(l4[2:])
		p.Payload = l4[udpHdr:]
	case p.Proto == protoICMP && len(l4) >= icmpHdr:
		p.ICMPType = l4[0]
		p.Payload = l4[icmpHdr:]
	default:
		return p, false
	}
	return p, true
}

// RawSocket is an AF_PACKET socket bound to one interface of a network
// namespace: it sends whole Ethernet frames and receives those the
// interface carries.
type RawSocket struct {
	fd      int
	ifindex int
}

// OpenRaw opens a raw socket on interface ifname of namespace ns (as
// made with `ip netns add`).
func OpenRaw(ns, ifname string) (*RawSocket, error) {
	var r RawSocket
	err := InNetns(ns, func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		r.ifindex = ifi.Index
		r.fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return fmt.Errorf("AF_PACKET socket (needs root): %w", err)
		}
		if err := unix.Bind(r.fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: r.ifindex}); err != nil {
			unix.Close(r.fd)
			return fmt.Errorf("bind to %s: %w", ifname, err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("raw socket on %s in namespace %s: %w", ifname, ns, err)
	}
	return &r, nil
}

// Send transmits frame, a complete Ethernet frame, on the interface.
func (r *RawSocket) Send(frame []byte) error {
	if len(frame) < etherHdr {
		return errors.New("frame shorter than an Ethernet header")
	}
	sa := &unix.SockaddrLinklayer{Ifindex: r.ifindex, Halen: 6}
	copy(sa.Addr[:], frame[:6])
	return unix.Sendto(r.fd, frame, 0, sa)
}

// Watch calls use with each frame that arrives on the interface from its
// far side (not those this host sends out of it) until d has passed. On a
// VM's tap, these are the frames the VM sends.
func (r *RawSocket) Watch(d time.Duration, use func(frame []byte)) error {
	buf := make([]byte, 65536)
	for deadline := time.Now().Add(d); time.Now().Before(deadline); {
		tv := unix.NsecToTimeval(int64(min(100*time.Millisecond, time.Until(deadline))))
		if err := unix.SetsockoptTimeval(r.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return err
		}
		n, from, err := unix.Recvfrom(r.fd, buf, 0)
		if err == unix.EAGAIN || err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		use(buf[:n])
	}
	return nil
}

// Close closes the socket.
func (r *RawSocket) Close() error { return unix.Close(r.fd) }

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// InNetns runs fn on a thread inside network namespace ns; sockets fn
// opens stay in that namespace. If the thread cannot come back to its
// own namespace, it is not returned to the scheduler.
func InNetns(ns string, fn func() error) error {
	target, err := os.Open("/var/run/netns/" + ns)
	if err != nil {
		return err
	}
	defer target.Close()

	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		self, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			done <- err
			return
		}
		defer self.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		err = fn()
		if unix.Setns(int(self.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		done <- err
	}()
	return <-done
}
