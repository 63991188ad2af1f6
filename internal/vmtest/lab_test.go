package vmtest

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// scripts/run-lab.sh runs QEMU with the line of scripts/qemu-args, plus
// the NIC on the VM's tap, offering the overlay's MTU (host_mtu=1450)
// with VXLAN and nothing more on an l2 link, the gateway the VM's host's
// bridge; routed, each host's VMs on its own subnet, 10.H.0.0/24, with
// seeds= the first VM of every other host (a host test: no QEMU, no
// root).
func TestQEMUArgsLab(t *testing.T) {
	dir := t.TempDir()
	kernel := filepath.Join(dir, "fornax-cluster.elf")
	for _, link := range []string{"l2", "vxlan", "routed"} {
		args := []string{"--print-qemu-args", "--link", link, "--hosts", "3", "-n", "2", "-k", kernel, "--dir", dir, "--append", "profile=fast"}
		out, err := exec.Command(LabScript(), args...).Output()
		if err != nil {
			t.Fatalf("run-lab.sh %q: %v", args, err)
		}
		vms := strings.Split(strings.TrimSuffix(string(out), "\n\n"), "\n\n")
		if len(vms) != 6 {
			t.Fatalf("run-lab.sh %q printed %d VMs, want 6:\n%s", args, len(vms), out)
		}
		for i, vm := range vms {
			n, host := Name(i+1), i/2+1
			dev := "virtio-net-device,netdev=net0,mac=" + VMMAC(i+1).String()
			if link == "vxlan" {
				dev += ",host_mtu=1450"
			}
			lab := Lab{LabOptions: LabOptions{Link: link, PerHost: 2}}
			cmdline := "name=" + n + " ip=" + lab.Addr(i+1) + "/24 gw=" + lab.HostAddr(host)
			if link == "routed" {
				// VMs 1, 3 and 5 are the first of hosts 1, 2 and 3.
				seeds := map[int]string{1: "10.2.0.4,10.3.0.6", 2: "10.1.0.2,10.3.0.6", 3: "10.1.0.2,10.2.0.4"}[host]
				cmdline += " seeds=" + seeds
				if want := fmt.Sprintf("10.%d.0.%d", host, i+2); lab.Addr(i+1) != want {
					t.Errorf("routed: Lab.Addr(%d) = %s, want %s", i+1, lab.Addr(i+1), want)
				}
			}
			src := []string{"--accel", "tcg", "--mem", "128M", "--console", filepath.Join(dir, n+".sock"), filepath.Join(dir, n+".log"),
				"--", kernel, cmdline + " profile=fast",
				"-netdev", "tap,id=net0,ifname=" + TapName(i+1) + ",script=no,downscript=no", "-device", dev,
				"-daemonize", "-pidfile", filepath.Join(dir, n+".pid")}
			wantOut, err := exec.Command(qemuArgsScript(), src...).Output()
			if err != nil {
				t.Fatalf("qemu-args %q: %v", src, err)
			}
			if got, want := lines([]byte(vm)), lines(wantOut); !slices.Equal(got, want) {
				t.Errorf("run-lab.sh %q runs %s with\n%q\nwant (scripts/qemu-args)\n%q", args, n, got, want)
			}
			if lab.HostOf(i+1) != host {
				t.Errorf("HostOf(%d) = %d, want %d", i+1, lab.HostOf(i+1), host)
			}
		}
	}
	// Bad settings are refused before anything is built.
	for _, bad := range [][]string{
		{"--link", "gre"}, {"--hosts", "4"}, {"-n", "0"}, {"-n", "50"}, {"--prefix", "fornax"}, {"--prefix", "Bad"},
		{"--fornaxd-hosts", "3"}, {"--fornaxd-hosts", "1,"}, {"--fornaxd-hosts", "0"},
	} {
		args := append([]string{"--print-qemu-args", "-k", kernel, "--dir", dir}, bad...)
		if out, err := exec.Command(LabScript(), args...).CombinedOutput(); err == nil {
			t.Errorf("run-lab.sh %q succeeded:\n%s", args, out)
		}
	}
}
