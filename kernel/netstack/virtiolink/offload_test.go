package virtiolink

import (
	"encoding/binary"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"

	"fornax/drivers/virtio"
	"fornax/drivers/virtio/virtiotest"
)

// udpFrame is an Ethernet frame from A to B's port 9710 carrying
// payload, its IP header checksum right, its UDP checksum right unless
// badSum.
func udpFrame(payload []byte, badSum bool) []byte {
	f := make([]byte, header.EthernetMinimumSize+header.IPv4MinimumSize+header.UDPMinimumSize+len(payload))
	header.Ethernet(f).Encode(&header.EthernetFields{SrcAddr: tcpip.LinkAddress(macA[:]), DstAddr: tcpip.LinkAddress(macB[:]), Type: header.IPv4ProtocolNumber})
	ip := header.IPv4(f[header.EthernetMinimumSize:])
	ip.Encode(&header.IPv4Fields{TotalLength: uint16(len(ip)), TTL: 64, Protocol: uint8(header.UDPProtocolNumber), SrcAddr: addrA, DstAddr: addrB})
	ip.SetChecksum(^ip.CalculateChecksum())
	u := header.UDP(ip[header.IPv4MinimumSize:])
	u.Encode(&header.UDPFields{SrcPort: 4000, DstPort: 9710, Length: uint16(len(u))})
	copy(u.Payload(), payload)
	sum := header.PseudoHeaderChecksum(header.UDPProtocolNumber, addrA, addrB, uint16(len(u)))
	u.SetChecksum(^u.CalculateChecksum(checksum.Checksum(payload, sum)))
	if badSum {
		binary.BigEndian.PutUint16(u[6:], u.Checksum()^0x5a5a)
	}
	return f
}

// TestLinkVouched: the stack checks the checksums of every frame but
// those the device vouched for, which carry a partial checksum when
// they come from the host's stack (NEEDS_CSUM) and may be larger than
// the MTU (GUEST_TSO4).
func TestLinkVouched(t *testing.T) {
	_, nicB := virtiotest.Pipe(macA, macB)
	ep := New(nicB)
	s := newStack(t, ep, nicB, addrB)
	s.AddStaticNeighbor(1, ipv4.ProtocolNumber, addrA, tcpip.LinkAddress(macA[:]))
	c, err := gonet.DialUDP(s, &tcpip.FullAddress{Addr: addrB, Port: 9710}, nil, ipv4.ProtocolNumber)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	read := func() string {
		c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		buf := make([]byte, 70000)
		n, _, err := c.ReadFrom(buf)
		if err != nil {
			return ""
		}
		return string(buf[:n])
	}

	nicB.InjectVouched(udpFrame([]byte("bad sum, not vouched"), true), false)
	if got := read(); got != "" {
		t.Errorf("a bad checksum the device did not vouch for was delivered: %q", got)
	}
	if n := s.Stats().UDP.ChecksumErrors.Value(); n != 1 {
		t.Errorf("UDP checksum errors %d, want 1", n)
	}
	nicB.InjectVouched(udpFrame([]byte("good sum"), false), false)
	if got := read(); got != "good sum" {
		t.Errorf("good frame: %q", got)
	}
	nicB.InjectVouched(udpFrame([]byte("partial sum, vouched"), true), true)
	if got := read(); got != "partial sum, vouched" {
		t.Errorf("vouched frame: %q", got)
	}
	// The vouching is for that frame only.
	nicB.InjectVouched(udpFrame([]byte("bad sum again"), true), false)
	if got := read(); got != "" {
		t.Errorf("a bad checksum after a vouched frame was delivered: %q", got)
	}
	big := make([]byte, 60000)
	for i := range big {
		big[i] = byte(i * 7)
	}
	nicB.InjectVouched(udpFrame(big, true), true)
	if got := read(); got != string(big) {
		t.Errorf("a 60000-byte vouched datagram in one frame: got %d bytes", len(got))
	}
	if st := ep.Stats(); st.RxVouched != 2 {
		t.Errorf("RxVouched %d, want 2", st.RxVouched)
	}
	if ep.Capabilities()&stack.CapabilityRXChecksumOffload != 0 {
		t.Error("RX checksum offload left on after delivery")
	}
}

// TestLinkTSO: a 4 MiB TCP echo between two stacks over simulated
// devices goes out in 64 KiB frames that the devices cut into segments
// and checksum, which the other stack checks (the device does not vouch
// for them); and the same without offloads.
func TestLinkTSO(t *testing.T) {
	for _, decline := range []virtio.Offloads{0, virtio.AllOffloads} {
		noOffload := decline != 0
		a, b, na, nb, da, db := virtioStacksDev(t, 0, decline)
		tcpEcho(t, a, b, 4<<20)
		tso, _ := da.Offloaded()
		tsoB, _ := db.Offloaded()
		if noOffload != (tso == 0 && tsoB == 0) {
			t.Errorf("noOffload %v: the devices cut %d and %d frames into segments", noOffload, tso, tsoB)
		}
		for _, n := range []interface{ Stats() virtio.Stats }{na, nb} {
			if s := n.Stats(); s.TxErrors != 0 || s.RxErrors != 0 {
				t.Errorf("noOffload %v: %+v", noOffload, s)
			}
		}
		if !noOffload && tso+tsoB < 32 {
			t.Errorf("only %d+%d TSO frames for 8 MiB", tso, tsoB)
		}
		t.Logf("noOffload %v: %d+%d frames segmented by the devices; sent %d and %d frames", noOffload, tso, tsoB, na.Stats().TxPackets, nb.Stats().TxPackets)
	}
}
