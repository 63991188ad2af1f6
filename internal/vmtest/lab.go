package vmtest

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
)

// LabOptions are scripts/run-lab.sh's settings: a segment stretched over
// network namespaces that stand for hosts (docs/guide.md, "Across hosts").
type LabOptions struct {
	// Link joins the hosts: "l2" (veth pairs between the bridges, MTU
	// 1500), "vxlan" (a VXLAN overlay across a router, MTU 1450) or
	// "routed" (a subnet 10.H.0.0/24 per host behind a router, the
	// VMs given seeds).
	Link string
	// Hosts (1 to 3) and VMs per host (PerHost); VM i is on host
	// (i-1)/PerHost+1.
	Hosts, PerHost int
	// Prefix names the namespaces: Prefix-h1, Prefix-h2, ... and, with
	// vxlan, the router Prefix-r.
	Prefix string
	// Options are the VMs' key, command-line words and memory, as
	// run-two-qemu.sh's.
	Options
	// Fornaxd, if set, is the fornaxd binary to run on the hosts'
	// bridges as host-H (--fornaxd), on FornaxdHosts only if set.
	Fornaxd      string
	FornaxdHosts []int
}

// Lab is a set of VMs on several hosts, started by scripts/run-lab.sh
// --detach.
type Lab struct {
	Dir string
	LabOptions
	lan LAN // the consoles, attached as a LAN's are
}

// LabScript returns the path of scripts/run-lab.sh.
func LabScript() string {
	return filepath.Join(filepath.Dir(Script()), "run-lab.sh")
}

// StartLab boots the lab and attaches to every VM's console.
func StartLab(kernel, dir string, o LabOptions) (*Lab, error) {
	args := append([]string{"--link", o.Link, "--hosts", fmt.Sprint(o.Hosts), "-n", fmt.Sprint(o.PerHost),
		"--prefix", o.Prefix, "-k", kernel, "--dir", dir, "--detach"}, o.args()...)
	if o.Fornaxd != "" {
		args = append(args, "--fornaxd", o.Fornaxd)
	}
	if len(o.FornaxdHosts) > 0 {
		h := make([]string, len(o.FornaxdHosts))
		for i, n := range o.FornaxdHosts {
			h[i] = fmt.Sprint(n)
		}
		args = append(args, "--fornaxd-hosts", strings.Join(h, ","))
	}
	out, err := exec.Command(LabScript(), args...).CombinedOutput()
	if err != nil {
		exec.Command(LabScript(), "--stop", "--prefix", o.Prefix, "--dir", dir).Run()
		return nil, fmt.Errorf("run-lab.sh: %v\n%s", err, out)
	}
	l := &Lab{Dir: dir, LabOptions: o, lan: LAN{Dir: dir}}
	for i := 1; i <= o.Hosts*o.PerHost; i++ {
		if err := l.lan.attach(i); err != nil {
			l.Stop()
			return nil, err
		}
	}
	return l, nil
}

// VMs returns the lab's VMs, VM i at index i-1.
func (l *Lab) VMs() []*VM { return l.lan.VMs }

// HostOf returns the host VM i runs on.
func (l *Lab) HostOf(i int) int { return (i-1)/l.PerHost + 1 }

// HostNS returns the network namespace of host h.
func (l *Lab) HostNS(h int) string { return fmt.Sprintf("%s-h%d", l.Prefix, h) }

// HostAddr returns the address of host h's bridge on the segment (on
// its subnet, routed).
func (l *Lab) HostAddr(h int) string {
	if l.Link == "routed" {
		return fmt.Sprintf("10.%d.0.1", h)
	}
	return fmt.Sprintf("10.0.0.%d", 250+h)
}

// Addr returns VM i's address: Addr(i), or on its host's subnet, routed.
func (l *Lab) Addr(i int) string {
	if l.Link == "routed" {
		return fmt.Sprintf("10.%d.0.%d", l.HostOf(i), i+1)
	}
	return Addr(i)
}

// Log returns VM i's console log file.
func (l *Lab) Log(i int) string { return l.lan.Log(i) }

// Stop tears the lab down: VMs, fornaxd, every namespace of the prefix.
func (l *Lab) Stop() error {
	for _, vm := range l.lan.VMs {
		vm.Kill()
	}
	out, err := exec.Command(LabScript(), "--stop", "--prefix", l.Prefix, "--dir", l.Dir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("run-lab.sh --stop: %v\n%s", err, out)
	}
	return nil
}

// LabNamespaces lists the namespaces of prefix that exist.
func LabNamespaces(prefix string) []string {
	out, _ := exec.Command("ip", "netns", "list").Output()
	var l []string
	for _, line := range strings.Split(string(out), "\n") {
		// "fxspan-h1 (id: 3)"
		f := strings.Fields(line)
		if len(f) > 0 && strings.HasPrefix(f[0], prefix+"-") {
			l = append(l, f[0])
		}
	}
	return l
}
