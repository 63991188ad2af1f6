package vmtest

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"fornax/cluster"
)

// The cluster under attack: what a hostile machine on the LAN can forge
// (any source address and MAC, from the namespace with rawframe.go) must
// not move, remove, resurrect or crowd out members, nor make the VMs
// flood the LAN or their logs. With a key (docs/protocol.md §9), it can
// no longer forge or replay anything; keys can be rotated, and a keyless
// cluster moved to keys, without a member ever turning suspect.

// clusterBcast is where the cluster's datagrams go on the test LAN.
var clusterBcast = netip.MustParseAddrPort("10.0.0.255:9710")

// forgeFrame returns a broadcast frame carrying payload to port 9710, from
// src port 9710 and source MAC mac.
func forgeFrame(src string, mac net.HardwareAddr, payload []byte) []byte {
	return UDPFrame(Ethernet{Dst: BroadcastMAC, Src: mac},
		netip.AddrPortFrom(netip.MustParseAddr(src), 9710), clusterBcast, payload)
}

func announceMsg(id, addr, name string) cluster.Message {
	return cluster.Message{Kind: cluster.Announce, ID: id, Addr: netip.MustParseAddr(addr), Name: name,
		CPUs: 1, MemTotal: 128 << 20, MemFree: 64 << 20}
}

func heartbeatMsg(id string) cluster.Message {
	return cluster.Message{Kind: cluster.Heartbeat, ID: id, Load: 1, MemFree: 64 << 20}
}

func leaveMsg(id string) cluster.Message { return cluster.Message{Kind: cluster.Leave, ID: id} }

func sendFrames(t *testing.T, r *RawSocket, frames ...[]byte) {
	t.Helper()
	for _, f := range frames {
		if err := r.Send(f); err != nil {
			t.Errorf("send: %v", err)
			return
		}
	}
}

var clusterStatRE = regexp.MustCompile(`(?m)^(\w+) (\d+)$`)

// clusterStats reads a VM's /cluster/stats.
func clusterStats(t *testing.T, vm *VM) map[string]int {
	t.Helper()
	out := command(t, vm, "cat /cluster/stats")
	m := map[string]int{}
	for _, f := range clusterStatRE.FindAllStringSubmatch(out, -1) {
		m[f[1]], _ = strconv.Atoi(f[2])
	}
	if _, ok := m["received"]; !ok {
		t.Fatalf("%s: /cluster/stats: %q", vm.Name, out)
	}
	return m
}

func clusterStatsAll(t *testing.T, lan *LAN) []map[string]int {
	t.Helper()
	return clusterStatsOf(t, lan.VMs)
}

func clusterStatsOf(t *testing.T, vms []*VM) []map[string]int {
	t.Helper()
	s := make([]map[string]int, len(vms))
	for i, vm := range vms {
		s[i] = clusterStats(t, vm)
	}
	return s
}

// statDelta returns after[name]-before[name] for each VM.
func statDelta(before, after []map[string]int, name string) []int {
	d := make([]int, len(before))
	for i := range before {
		d[i] = after[i][name] - before[i][name]
	}
	return d
}

// vmNodeIDs reads each VM's node id.
func vmNodeIDs(t *testing.T, lan *LAN) []string {
	t.Helper()
	ids := make([]string, len(lan.VMs))
	for i, vm := range lan.VMs {
		ids[i] = strings.TrimSpace(command(t, vm, "cat /cluster/self/id"))
		if !cluster.ValidID(ids[i]) {
			t.Fatalf("%s: id %q", vm.Name, ids[i])
		}
	}
	return ids
}

// otherIDs returns the ids of every VM but i (0-based).
func otherIDs(ids []string, i int) []string {
	var o []string
	for j, id := range ids {
		if j != i {
			o = append(o, id)
		}
	}
	return o
}

// waitMeshOnline waits until every VM lists every other as online.
func waitMeshOnline(t *testing.T, lan *LAN, ids []string, timeout time.Duration) {
	t.Helper()
	t0 := time.Now()
	var took []string
	for i, vm := range lan.VMs {
		line, want := peerStatusLine(ids, i)
		at, _ := poll(t, vm, line, timeout, 100*time.Millisecond, equals(want))
		took = append(took, fmt.Sprintf("%s %v", vm.Name, at.Sub(t0).Round(time.Millisecond)))
		if at.Sub(t0) > 3*time.Second {
			t.Logf("%s was slow to list its peers; kmesg:\n%s", vm.Name, command(t, vm, "cat /dev/kmesg"))
		}
	}
	t.Logf("all %d VMs list each other online (%s after the last prompt)", len(lan.VMs), strings.Join(took, ", "))
}

// peerStatusLine is the command that prints VM i's view of the status of the
// others, and what it prints when all are online.
func peerStatusLine(ids []string, i int) (line, want string) {
	line = "cat"
	for _, id := range otherIDs(ids, i) {
		line += " /cluster/nodes/" + id + "/status"
		want += "online\n"
	}
	return line, want
}

// bridgeCapture keeps the cluster datagrams the VMs send, as seen on the
// bridge, with the time each arrived.
type bridgeCapture struct {
	mu     sync.Mutex
	frames []capturedFrame
	stop   chan struct{}
	done   chan struct{}
}

type capturedFrame struct {
	at time.Time
	p  Packet
}

func startBridgeCapture(t *testing.T) *bridgeCapture {
	r := openRaw(t, Bridge)
	c := &bridgeCapture{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		for {
			select {
			case <-c.stop:
				return
			default:
			}
			err := r.Watch(200*time.Millisecond, func(f []byte) {
				p, ok := ParseFrame(f)
				if !ok || p.Proto != 17 || p.DstPort != cluster.DefaultPort {
					return
				}
				p.Payload = bytes.Clone(p.Payload)
				p.EtherSrc, p.EtherDst = bytes.Clone(p.EtherSrc), bytes.Clone(p.EtherDst)
				c.mu.Lock()
				c.frames = append(c.frames, capturedFrame{time.Now(), p})
				c.mu.Unlock()
			})
			if err != nil {
				t.Errorf("capture: %v", err)
				return
			}
		}
	}()
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(c.stop); <-c.done }) })
	return c
}

// from returns the datagrams from addr received in [since, until) (a zero
// until: no end), oldest first.
func (c *bridgeCapture) from(addr string, since, until time.Time) []capturedFrame {
	a := netip.MustParseAddr(addr)
	c.mu.Lock()
	defer c.mu.Unlock()
	var l []capturedFrame
	for _, f := range c.frames {
		if f.p.Src == a && !f.at.Before(since) && (until.IsZero() || f.at.Before(until)) {
			l = append(l, f)
		}
	}
	return l
}

// msg decodes a captured datagram.
func (f capturedFrame) msg(t *testing.T) cluster.Message {
	t.Helper()
	m, err := cluster.Parse(f.p.Payload)
	if err != nil {
		t.Fatalf("captured datagram from %v %q: %v", f.p.Src, f.p.Payload, err)
	}
	return m
}

// replay rebuilds a captured datagram's frame: same source MAC, address
// and port, same bytes (checksums recomputed).
func (f capturedFrame) replay() []byte {
	return UDPFrame(Ethernet{Dst: BroadcastMAC, Src: f.p.EtherSrc},
		netip.AddrPortFrom(f.p.Src, f.p.SrcPort), netip.AddrPortFrom(f.p.Dst, f.p.DstPort), f.p.Payload)
}

// vmSentFrames counts the frames a VM sent, by kind.
type vmSentFrames struct {
	Bcast, Unicast int // UDP to port 9710: broadcast, or to one address
	ARP            int
	Other          int
}

func (s vmSentFrames) total() int { return s.Bcast + s.Unicast + s.ARP + s.Other }

// countSentFrames watches each VM's tap for d while during runs (it starts
// once the watchers read) and counts what each VM sent.
func countSentFrames(t *testing.T, taps []*RawSocket, d time.Duration, during func()) []vmSentFrames {
	t.Helper()
	counts := make([]vmSentFrames, len(taps))
	var wg sync.WaitGroup
	for i, tap := range taps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := tap.Watch(d, func(f []byte) {
				c := &counts[i]
				if len(f) >= 14 && f[12] == 0x08 && f[13] == 0x06 {
					c.ARP++
					return
				}
				p, ok := ParseFrame(f)
				switch {
				case ok && p.Proto == 17 && p.DstPort == cluster.DefaultPort && bytes.Equal(p.EtherDst, BroadcastMAC):
					c.Bcast++
				case ok && p.Proto == 17 && p.DstPort == cluster.DefaultPort:
					c.Unicast++
				default:
					c.Other++
				}
			})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	time.Sleep(50 * time.Millisecond)
	during()
	wg.Wait()
	return counts
}

// guestClocks records each VM's uptime (/dev/time, third field, ns) and the
// host's time around the read, so that a test can tell at its end
// whether the VMs' clocks kept time: the cluster's timing (periodic
// messages, suspect and dead ages) runs on them.
type guestClocks struct {
	guest      []int64
	sent, back []time.Time
}

func readGuestClock(t *testing.T, vm *VM) (guest int64, sent, back time.Time) {
	t.Helper()
	sent = time.Now()
	out := command(t, vm, "cat /dev/time")
	back = time.Now()
	f := strings.Fields(out)
	if len(f) != 4 {
		t.Fatalf("%s: /dev/time %q", vm.Name, out)
	}
	guest, _ = strconv.ParseInt(f[2], 10, 64)
	return guest, sent, back
}

func markGuestClocks(t *testing.T, lan *LAN) *guestClocks {
	t.Helper()
	c := &guestClocks{}
	for _, vm := range lan.VMs {
		g, s, b := readGuestClock(t, vm)
		c.guest, c.sent, c.back = append(c.guest, g), append(c.sent, s), append(c.back, b)
	}
	return c
}

// check compares the first n VMs' clocks with the host's since mark: a
// rate off by more than 2 % (TestClock's bound) fails the test, whatever
// else passed.
func (c *guestClocks) check(t *testing.T, lan *LAN, n int) {
	t.Helper()
	var rates []string
	for i, vm := range lan.VMs[:n] {
		g, s, b := readGuestClock(t, vm)
		dg := float64(g-c.guest[i]) / 1e9
		lo, hi := s.Sub(c.back[i]).Seconds(), b.Sub(c.sent[i]).Seconds()
		rates = append(rates, fmt.Sprintf("%s %.3f s in %.3f..%.3f s", vm.Name, dg, lo, hi))
		if dg < lo*0.98 || dg > hi*1.02 {
			t.Errorf("%s's clock advanced %.3f s while the host's advanced %.3f..%.3f s (rate %.2f): the VM keeps wrong time "+
				"(its TSC calibration against the PIT at boot, board/qemu_amd64/pit.go?); cluster timing on it is off by as much",
				vm.Name, dg, lo, hi, dg/((lo+hi)/2))
		}
	}
	t.Logf("guest clocks: %s", strings.Join(rates, "; "))
}

// freshNodeID returns a made-up id that no VM has.
func freshNodeID(ids []string, base uint32, i int) string {
	for {
		id := fmt.Sprintf("%08x", base+uint32(i))
		clash := false
		for _, v := range ids {
			clash = clash || v == id
		}
		if !clash {
			return id
		}
		i += 1 << 20
	}
}
