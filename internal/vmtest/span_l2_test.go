package vmtest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// spanPrefix names the lab's namespaces: spanPrefix-h1, -h2, -r; never
// "fornax", the other VM tests' LAN.
const spanPrefix = "fxspan"

// TestSpanL2 stretches one segment over two hosts (network namespaces,
// two VMs on each; scripts/run-lab.sh), joined by a veth link (l2, MTU
// 1500) and by a VXLAN overlay across a router (vxlan, MTU 1450, the
// VMs' NICs offering it). The cluster spans the hosts with no change to
// Fornax: every VM lists the three others online. Then a client on host
// 2 echoes 2 MiB through a VM on host 1 (TCP echo, port 7): the bytes
// come back intact, the VM announced MSS MTU-40 (1410 on the overlay)
// and the segments both ways were full-size and within the MTU, and
// neither host fragmented or reassembled a packet (no overlay packet
// over the routed network's 1500). The client claims a 1500-byte path
// (a route with mtu lock 1500 advmss 1460), as a peer not told of the
// overlay does: only the VM's own MTU keeps the segments inside it. A VM
// that took 1500 for granted announces 1460: on this kernel the
// overlay then fragments every full segment in the routed network (or,
// with DF, drops it and answers with ICMP), which the test catches.
func TestSpanL2(t *testing.T) {
	k := kernel(t, "FORNAX_KERNEL_CLUSTER")
	if os.Geteuid() != 0 {
		t.Skip("VM TEST SKIPPED: the lab needs root (network namespaces)")
	}
	for _, tool := range []string{"ip", "bridge"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("VM TEST SKIPPED: %s is missing (Debian: apt-get install iproute2)", tool)
		}
	}
	for _, c := range []struct {
		link string
		mtu  int
	}{{"l2", 1500}, {"vxlan", 1450}} {
		t.Run(c.link, func(t *testing.T) {
			if c.link == "vxlan" {
				if err := probeVXLAN(); err != nil {
					t.Skipf("VM TEST SKIPPED: no VXLAN device (CONFIG_VXLAN; modprobe vxlan): %v", err)
				}
			}
			testSpan(t, k, c.link, c.mtu)
		})
	}
}

// probeVXLAN makes a VXLAN device in a namespace of its own, to tell a
// kernel without VXLAN from a failing test.
func probeVXLAN() error {
	ns := spanPrefix + "-probe"
	exec.Command("ip", "netns", "del", ns).Run()
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns add: %v %s", err, out)
	}
	defer exec.Command("ip", "netns", "del", ns).Run()
	out, err := exec.Command("ip", "-n", ns, "link", "add", "fxvx0", "type", "vxlan", "id", "4242", "dstport", "4789", "local", "172.31.1.2").CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

func startLab(t *testing.T, kernel string, o LabOptions) *Lab {
	t.Helper()
	lab, err := StartLab(kernel, t.TempDir(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for i := range lab.VMs() {
				t.Logf("console of %s:\n%s", Name(i+1), lab.Log(i+1))
			}
		}
		if err := lab.Stop(); err != nil {
			t.Error(err)
		}
		if l := LabNamespaces(o.Prefix); len(l) > 0 {
			t.Errorf("namespaces %v left behind", l)
		}
	})
	return lab
}

func testSpan(t *testing.T, kernel, link string, mtu int) {
	lab := startLab(t, kernel, LabOptions{Link: link, Hosts: 2, PerHost: 2, Prefix: spanPrefix,
		Options: Options{Append: []string{"profile=fast"}}})
	up := time.Now()
	vms := lab.VMs()

	// Every VM lists every other online, those on the other host too.
	for i, vm := range vms {
		at, _ := poll(t, vm, "cat /cluster/view", 20*time.Second, 100*time.Millisecond, func(v string) bool {
			peers, err := PeerStatus(v)
			if err != nil {
				return false
			}
			for j := range vms {
				if j != i && peers[Name(j+1)] != "online" {
					return false
				}
			}
			return true
		})
		t.Logf("%s (host %d) lists all %d others online %v after the prompts", vm.Name, lab.HostOf(i+1), len(vms)-1, at.Sub(up).Round(time.Millisecond))
		if out := command(t, vm, "ifconfig"); !strings.Contains(out, fmt.Sprintf(" mtu %d\n", mtu)) {
			t.Errorf("%s: ifconfig says %q, want mtu %d", vm.Name, strings.SplitN(out, "\n", 2)[0], mtu)
		}
	}

	echoAcross(t, lab, mtu)
}

// echoAcross echoes 2 MiB from a client on host 2 through VM 1 on host 1
// and checks the segments' sizes and that nothing was fragmented.
func echoAcross(t *testing.T, lab *Lab, mtu int) {
	client, server := lab.HostNS(2), lab.HostNS(1)
	vmAddr := Addr(1)
	mss := mtu - 40

	// The client claims a 1500-byte path: only the VM's MSS bounds it.
	if out, err := exec.Command("ip", "-n", client, "route", "replace", "10.0.0.0/24", "dev", "fxbr0", "proto", "kernel",
		"scope", "link", "src", lab.HostAddr(2), "mtu", "lock", "1500", "advmss", "1460").CombinedOutput(); err != nil {
		t.Fatalf("ip route replace: %v %s", err, out)
	}

	// The VM's SYN-ACK, as its tap on host 1 carries it.
	raw, err := OpenRaw(server, TapName(1))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var (
		mu     sync.Mutex
		synAck []int
	)
	stop, watched := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(watched)
		for {
			select {
			case <-stop:
				return
			default:
			}
			raw.Watch(100*time.Millisecond, func(f []byte) {
				if m, ok := synAckMSS(f, vmAddr, 7); ok {
					mu.Lock()
					synAck = append(synAck, m)
					mu.Unlock()
				}
			})
		}
	}()

	before := [2]map[string]int{ipCounters(t, server), ipCounters(t, client)}

	var c net.Conn
	if err := InNetns(client, func() (err error) {
		c, err = net.DialTimeout("tcp4", vmAddr+":7", 10*time.Second)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))

	data := make([]byte, 2<<20)
	for i := range data {
		data[i] = byte(i*7 + i>>11)
	}
	t0 := time.Now()
	wrote := make(chan error, 1)
	go func() { _, err := c.Write(data); wrote <- err }()
	got := make([]byte, len(data))
	n, err := io.ReadFull(c, got)
	took := time.Since(t0)
	if err != nil {
		t.Fatalf("echo through %s across the %s link: %v after %d of %d bytes in %v (a stall: segments over the path's MTU?)",
			vmAddr, lab.Link, err, n, len(data), took.Round(time.Millisecond))
	}
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("the echo differs from what was sent")
	}
	info, err := tcpInfo(c)
	if err != nil {
		t.Fatal(err)
	}
	close(stop)
	<-watched

	after := [2]map[string]int{ipCounters(t, server), ipCounters(t, client)}
	t.Logf("%s: 2 MiB echoed across in %v (%.1f MB/s each way): client snd_mss %d rcv_mss %d, data segments out %d in %d, retransmits %d",
		lab.Link, took.Round(time.Millisecond), float64(len(data))/took.Seconds()/1e6,
		info.Snd_mss, info.Rcv_mss, info.Data_segs_out, info.Data_segs_in, info.Total_retrans)

	mu.Lock()
	defer mu.Unlock()
	if len(synAck) != 1 || synAck[0] != mss {
		t.Errorf("the VM's SYN-ACK announced MSS %v, want [%d] (its MTU %d less 40)", synAck, mss, mtu)
	}
	// Full-size: the MSS less the options (Linux's timestamps, 12;
	// gVisor keeps 40 for options whether it sends them or not).
	for _, v := range []struct {
		name string
		got  uint32
	}{{"client snd_mss", info.Snd_mss}, {"client rcv_mss", info.Rcv_mss}} {
		if int(v.got) > mss || int(v.got) < mss-40 {
			t.Errorf("%s %d, want full-size segments within the MTU: %d to %d", v.name, v.got, mss-40, mss)
		}
	}
	for i, host := range []string{server, client} {
		for _, k := range []string{"FragCreates", "ReasmReqds"} {
			if d := after[i][k] - before[i][k]; d != 0 {
				t.Errorf("%s: Ip %s grew by %d during the transfer: packets over the MTU were fragmented", host, k, d)
			}
		}
	}
}

// synAckMSS returns the MSS option of f if it is a TCP SYN-ACK from
// addr:port (RFC 9293 §3.2).
func synAckMSS(f []byte, addr string, port uint16) (int, bool) {
	if len(f) < etherHdr+ipHdr || binary.BigEndian.Uint16(f[12:]) != etherIPv4 {
		return 0, false
	}
	ip := f[etherHdr:]
	hlen := int(ip[0]&0xf) * 4
	if ip[9] != 6 || len(ip) < hlen+20 || net.IP(ip[12:16]).String() != addr {
		return 0, false
	}
	tcp := ip[hlen:]
	off := int(tcp[12]>>4) * 4
	if binary.BigEndian.Uint16(tcp) != port || tcp[13]&0x12 != 0x12 || off < 20 || len(tcp) < off {
		return 0, false
	}
	for o := tcp[20:off]; len(o) > 0; {
		switch {
		case o[0] == 0: // end of options
			return 0, false
		case o[0] == 1: // no-op
			o = o[1:]
		case len(o) < 2 || int(o[1]) < 2 || int(o[1]) > len(o):
			return 0, false
		case o[0] == 2 && o[1] == 4:
			return int(binary.BigEndian.Uint16(o[2:])), true
		default:
			o = o[o[1]:]
		}
	}
	return 0, false
}

// ipCounters returns the Ip: counters of /proc/net/snmp in namespace ns.
func ipCounters(t *testing.T, ns string) map[string]int {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", ns, "cat", "/proc/net/snmp").Output()
	if err != nil {
		t.Fatalf("/proc/net/snmp in %s: %v", ns, err)
	}
	var keys []string
	m := map[string]int{}
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) == 0 || f[0] != "Ip:" {
			continue
		}
		if keys == nil {
			keys = f[1:]
			continue
		}
		for i, v := range f[1:] {
			if i < len(keys) {
				m[keys[i]], _ = strconv.Atoi(v)
			}
		}
	}
	if _, ok := m["FragCreates"]; !ok {
		t.Fatalf("/proc/net/snmp in %s has no Ip FragCreates:\n%s", ns, out)
	}
	return m
}

// tcpInfo returns the kernel's TCP_INFO for c.
func tcpInfo(c net.Conn) (*unix.TCPInfo, error) {
	sc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		return nil, err
	}
	var info *unix.TCPInfo
	var ierr error
	if err := sc.Control(func(fd uintptr) { info, ierr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO) }); err != nil {
		return nil, err
	}
	return info, ierr
}
