package netstack

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"fornax/mdns"
)

// readAnswer reads datagrams from c until one is an mDNS response with
// an A record of name, and returns that record's TTL and address.
func readAnswer(t *testing.T, c net.PacketConn, name string) (uint32, netip.Addr) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 9000)
	for {
		n, _, err := c.ReadFrom(buf)
		if err != nil {
			t.Fatalf("no A record of %s: %v", name, err)
		}
		var m dnsmessage.Message
		if m.Unpack(buf[:n]) != nil || !m.Header.Response {
			continue
		}
		for _, a := range m.Answers {
			if r, ok := a.Body.(*dnsmessage.AResource); ok && a.Header.Name.String() == name {
				return a.Header.TTL, netip.AddrFrom4(r.A)
			}
		}
	}
}

// TestMDNSResponder: package mdns's server on a ListenMulticast socket,
// as the cluster image runs it (kernel/mdns.go), answers another stack
// on the wire: its announcements reach the group, a legacy unicast
// query (RFC 6762 §6.7) gets a unicast answer, and leaving sends the
// goodbye (TTL 0).
func TestMDNSResponder(t *testing.T) {
	a, b := pair(t)
	mb, err := b.ListenMulticast(mdns.Group, 255)
	if err != nil {
		t.Fatal(err)
	}
	defer mb.Close()
	ma, err := a.ListenMulticast(mdns.Group, 255)
	if err != nil {
		t.Fatal(err)
	}
	defer ma.Close()

	srv := mdns.NewServer(mdns.New(mdns.Config{Link: netip.MustParsePrefix("10.0.0.0/24"), Logf: t.Logf}), mb, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	info := mdns.Info{Name: "fornax-02", Addr: netip.MustParseAddr("10.0.0.2"),
		Services: []mdns.Service{{Type: "_fornax._udp", Port: 9710, TXT: []string{"id=0a1b2c3d"}}}}
	if err := srv.Set(info, true); err != nil {
		t.Fatal(err)
	}

	// The announcement, to the group.
	if ttl, addr := readAnswer(t, ma, "fornax-02.local."); ttl == 0 || addr != info.Addr {
		t.Errorf("announced TTL %d address %v", ttl, addr)
	}

	// A legacy query from an ephemeral port, answered to it alone.
	q, err := a.ListenPacket("udp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	msg := dnsmessage.Message{Header: dnsmessage.Header{ID: 7}, Questions: []dnsmessage.Question{
		{Name: dnsmessage.MustNewName("fornax-02.local."), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}}}
	pkt, err := msg.Pack()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.WriteTo(pkt, net.UDPAddrFromAddrPort(mdns.Group)); err != nil {
		t.Fatal(err)
	}
	if _, addr := readAnswer(t, q, "fornax-02.local."); addr != info.Addr {
		t.Errorf("legacy answer: address %v", addr)
	}

	// Leaving: the goodbye is on the wire when Set returns.
	if err := srv.Set(info, false); err != nil {
		t.Fatal(err)
	}
	for {
		if ttl, _ := readAnswer(t, ma, "fornax-02.local."); ttl == 0 {
			break
		}
	}
	if st := srv.Stats(); st.Legacy != 1 || st.Goodbyes != 1 || srv.WriteErrors() != 0 {
		t.Errorf("stats %+v, write errors %d", st, srv.WriteErrors())
	}
}
