package vmtest

// A small Linux guest for the LAN, to talk to Fornax from a stock
// kernel: running it (linuxbuild.go builds it).

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Linux guest defaults: its tap on the LAN's bridge, MAC and address.
const (
	LinuxTap  = "fxtaplx"
	LinuxMAC  = "52:54:00:f0:01:01"
	LinuxAddr = "10.0.0.50"
	LinuxName = "linux-50"
)

// HostTSCkHz returns the host's TSC frequency in kHz, from /proc/cpuinfo
// ("cpu MHz"), or 0 if unknown. The Debian kernel under -M microvm
// sometimes hangs calibrating its clock without tsc_early_khz=.
func HostTSCkHz() int {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return 0
	}
	var mhz []float64
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "cpu MHz" {
			if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
				mhz = append(mhz, f)
			}
		}
	}
	if len(mhz) == 0 {
		return 0
	}
	sort.Float64s(mhz)
	return int(mhz[len(mhz)-1] * 1000)
}

// LinuxConfig describes the Linux guest.
type LinuxConfig struct {
	Kernel, Initrd string
	Name           string // prompt and hostname; default LinuxName
	Addr           string // IPv4 address with prefix; default LinuxAddr/24
	MAC            string // default LinuxMAC
	Tap            string // tap made on the LAN's bridge; default LinuxTap
	Memory         string // default 256M
	Netns          string // default Namespace
	Bridge         string // default Bridge
}

// Linux is a running Linux guest: its console is a VM (Command, Expect
// and Prompt work as for Fornax, the prompt being "NAME% ").
type Linux struct {
	*VM
	cfg    LinuxConfig
	waited chan struct{}
}

// LinuxQEMUArgs returns QEMU's arguments for the guest.
func LinuxQEMUArgs(cfg LinuxConfig) []string {
	cmdline := "console=ttyS0 panic=-1 loglevel=4 fxip=" + cfg.Addr + " fxname=" + cfg.Name
	if khz := HostTSCkHz(); khz > 0 {
		cmdline += fmt.Sprintf(" tsc_early_khz=%d", khz)
	}
	return []string{"-M", "microvm", "-accel", "tcg", "-cpu", "max", "-m", cfg.Memory, "-smp", "1",
		"-nographic", "-no-reboot", "-monitor", "none", "-serial", "stdio",
		"-kernel", cfg.Kernel, "-initrd", cfg.Initrd, "-append", cmdline,
		"-netdev", "tap,id=net0,ifname=" + cfg.Tap + ",script=no,downscript=no",
		"-device", "virtio-net-device,netdev=net0,mac=" + cfg.MAC}
}

// StartLinux makes the guest's tap on the LAN's bridge (the LAN must be
// up) and boots the guest on it with its console on QEMU's stdio. Stop
// kills it and removes the tap.
func StartLinux(cfg LinuxConfig) (*Linux, error) {
	def := func(s *string, d string) {
		if *s == "" {
			*s = d
		}
	}
	def(&cfg.Name, LinuxName)
	def(&cfg.Addr, LinuxAddr+"/24")
	def(&cfg.MAC, LinuxMAC)
	def(&cfg.Tap, LinuxTap)
	def(&cfg.Memory, "256M")
	def(&cfg.Netns, Namespace)
	def(&cfg.Bridge, Bridge)
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		return nil, errors.New("vmtest: qemu-system-x86_64 is missing (Debian: apt-get install qemu-system-x86)")
	}
	ns := func(args ...string) error {
		argv := append([]string{"netns", "exec", cfg.Netns}, args...)
		if out, err := exec.Command("ip", argv...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %v\n%s", strings.Join(argv, " "), err, out)
		}
		return nil
	}
	ns("ip", "link", "del", cfg.Tap) // left over from a crash
	if err := ns("ip", "tuntap", "add", "dev", cfg.Tap, "mode", "tap"); err != nil {
		return nil, err
	}
	if err := ns("ip", "link", "set", cfg.Tap, "master", cfg.Bridge, "up"); err != nil {
		ns("ip", "link", "del", cfg.Tap)
		return nil, err
	}
	argv := append([]string{"ip", "netns", "exec", cfg.Netns, qemu}, LinuxQEMUArgs(cfg)...)
	waited := make(chan struct{})
	vm, err := launch(cfg.Name, argv, func() { close(waited) })
	if err != nil {
		ns("ip", "link", "del", cfg.Tap)
		return nil, err
	}
	return &Linux{VM: vm, cfg: cfg, waited: waited}, nil
}

// Stop kills the guest and removes its tap.
func (g *Linux) Stop() error {
	g.Kill()
	select {
	case <-g.waited:
	case <-time.After(5 * time.Second):
	}
	// The namespace may be gone already, taking the tap with it.
	if _, err := os.Stat("/var/run/netns/" + g.cfg.Netns); err != nil {
		return nil
	}
	if out, err := exec.Command("ip", "netns", "exec", g.cfg.Netns, "ip", "link", "del", g.cfg.Tap).CombinedOutput(); err != nil {
		return fmt.Errorf("ip link del %s: %v\n%s", g.cfg.Tap, err, out)
	}
	return nil
}

// bootLinux starts the Debian guest from kernel lk and initramfs li,
// stopped when the test ends (its console logged if the test failed),
// and waits for its prompt: it returns the guest, ready for Command, and
// how long it took from QEMU's start to the first prompt.
func bootLinux(tb testing.TB, lk, li string) (*Linux, time.Duration) {
	tb.Helper()
	g, err := StartLinux(LinuxConfig{Kernel: lk, Initrd: li})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("console of the Linux guest:\n%s", g.Log())
		}
		if err := g.Stop(); err != nil {
			tb.Error(err)
		}
	})
	if _, err := g.Expect(g.Prompt(), 90*time.Second); err != nil {
		tb.Fatal(err)
	}
	boot := time.Since(g.Started)
	// a fresh prompt, to pair answers with prompts
	if _, err := g.Command("", 10*time.Second); err != nil {
		tb.Fatal(err)
	}
	return g, boot
}
