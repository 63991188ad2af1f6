package vmtest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// Namespace is the network namespace scripts/run-two-qemu.sh creates.
const Namespace = "fornax"

// LAN is a set of VMs started by scripts/run-two-qemu.sh --detach.
type LAN struct {
	Dir string
	VMs []*VM
}

// Script returns the path of scripts/run-two-qemu.sh in this repository.
func Script() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "scripts", "run-two-qemu.sh")
}

// StartLAN boots count VMs from kernel on the virtual LAN and attaches to
// their consoles.
func StartLAN(kernel string, count int, dir string) (*LAN, error) {
	return StartLANOpts(kernel, count, dir, Options{})
}

// Options are the launcher's settings for every VM of a LAN; restarts
// keep them.
type Options struct {
	// KeyFile is given to every VM as its cluster key, fw_cfg file
	// opt/fornax/key (the launcher's --key).
	KeyFile string
	// Append are extra kernel command-line words (--append).
	Append []string
	// Memory is each VM's RAM, as QEMU's -m (--mem; default 128M).
	Memory string
}

func (o Options) args() []string {
	var a []string
	if o.KeyFile != "" {
		a = append(a, "--key", o.KeyFile)
	}
	if o.Memory != "" {
		a = append(a, "--mem", o.Memory)
	}
	if len(o.Append) > 0 {
		a = append(a, "--append", strings.Join(o.Append, " "))
	}
	return a
}

// StartLANOpts is StartLAN with options.
func StartLANOpts(kernel string, count int, dir string, opts Options) (*LAN, error) {
	args := append([]string{"-n", fmt.Sprint(count), "-k", kernel, "--dir", dir, "--detach"}, opts.args()...)
	out, err := exec.Command(Script(), args...).CombinedOutput()
	if err != nil {
		// The script tears down after itself; make sure of it.
		exec.Command(Script(), "--stop", "--dir", dir).Run()
		return nil, fmt.Errorf("run-two-qemu.sh: %v\n%s", err, out)
	}
	lan := &LAN{Dir: dir}
	for i := 1; i <= count; i++ {
		if err := lan.attach(i); err != nil {
			lan.Stop()
			return nil, err
		}
	}
	return lan, nil
}

// Name returns the name of VM i (1-based).
func Name(i int) string { return fmt.Sprintf("fornax-%02d", i) }

// Addr returns the IPv4 address of VM i.
func Addr(i int) string { return fmt.Sprintf("10.0.0.%d", i+1) }

func (l *LAN) attach(i int) error {
	vm, err := Attach(Name(i), filepath.Join(l.Dir, Name(i)+".sock"))
	if err != nil {
		return err
	}
	if pid, err := os.ReadFile(filepath.Join(l.Dir, Name(i)+".pid")); err == nil {
		fmt.Sscan(string(pid), &vm.pid)
	}
	// A fresh prompt, so that Command can pair answers with prompts.
	if _, err := vm.Command("", 10*time.Second); err != nil {
		vm.Kill()
		return err
	}
	if i <= len(l.VMs) {
		l.VMs[i-1] = vm
	} else {
		l.VMs = append(l.VMs, vm)
	}
	return nil
}

// Kill sends SIGKILL to VM i's QEMU.
func (l *LAN) Kill(i int) error {
	vm := l.VMs[i-1]
	if vm.pid == 0 {
		return fmt.Errorf("%s: no pid", vm.Name)
	}
	err := syscallKill(vm.pid)
	vm.Kill()
	return err
}

// Restart boots VM i again with the same name, address and MAC, and
// re-attaches its console.
func (l *LAN) Restart(i int) error {
	out, err := exec.Command(Script(), "--restart", Name(i), "--dir", l.Dir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("restart %s: %v\n%s", Name(i), err, out)
	}
	return l.attach(i)
}

// Log returns VM i's console log file.
func (l *LAN) Log(i int) string {
	b, _ := os.ReadFile(filepath.Join(l.Dir, Name(i)+".log"))
	return string(bytes.ReplaceAll(b, []byte("\r"), nil))
}

// Stop tears everything down: VMs, taps, bridge and namespace.
func (l *LAN) Stop() error {
	for _, vm := range l.VMs {
		vm.Kill()
	}
	out, err := exec.Command(Script(), "--stop", "--dir", l.Dir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("run-two-qemu.sh --stop: %v\n%s", err, out)
	}
	return nil
}

// InNamespace runs a command on the namespace's host side (the bridge,
// 10.0.0.1) and returns its combined output.
func InNamespace(timeout time.Duration, name string, args ...string) (string, error) {
	argv := append([]string{"timeout", fmt.Sprintf("%.0f", timeout.Seconds()), "ip", "netns", "exec", Namespace, name}, args...)
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	return strings.ReplaceAll(string(out), "\r", ""), err
}
