// Package vmtest starts Fornax VMs under QEMU and drives their serial
// consoles, for the integration tests: type a command, wait for the
// prompt, read the answer.
package vmtest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Config describes one VM.
type Config struct {
	Kernel string   // ELF image
	Name   string   // node name, also the prompt
	Append []string // extra kernel command-line words
	Accel  string   // tcg (default) or kvm
	Memory string   // default 128M
	Args   []string // extra QEMU arguments (network devices)
	Netns  string   // run QEMU inside this network namespace
}

// QEMUArgs returns QEMU's arguments for cfg: the command line of
// scripts/qemu-args (the one the README shows), console on stdio, then
// cfg.Args. Only a broken checkout makes the script fail: QEMUArgs then
// panics.
func QEMUArgs(cfg Config) []string {
	accel, mem := cfg.Accel, cfg.Memory
	if accel == "" {
		accel = "tcg"
	}
	if mem == "" {
		mem = "128M"
	}
	appendLine := strings.Join(append([]string{"name=" + cfg.Name}, cfg.Append...), " ")
	args := append([]string{"--accel", accel, "--mem", mem, "--", cfg.Kernel, appendLine}, cfg.Args...)
	out, err := exec.Command(qemuArgsScript(), args...).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		panic(fmt.Sprintf("vmtest: scripts/qemu-args: %v: %s", err, stderr))
	}
	return strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
}

// qemuArgsScript returns the path of scripts/qemu-args.
func qemuArgsScript() string {
	return filepath.Join(filepath.Dir(Script()), "qemu-args")
}

// VM is a running (or attached) Fornax VM.
type VM struct {
	Name    string
	Started time.Time // when QEMU was started

	cmd *exec.Cmd
	pid int // QEMU's pid, for VMs attached by socket
	in  io.Writer
	c   io.Closer

	mu   sync.Mutex
	cond *sync.Cond
	out  bytes.Buffer // everything the console printed, \r removed
	mark int          // start of the unread part of out
	done bool         // the console closed
}

// Start boots a VM with its console on QEMU's stdio.
func Start(cfg Config) (*VM, error) {
	if _, err := os.Stat(cfg.Kernel); err != nil {
		return nil, fmt.Errorf("vmtest: kernel image: %w", err)
	}
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		return nil, errors.New("vmtest: qemu-system-x86_64 is missing (Debian: apt-get install qemu-system-x86)")
	}
	argv := append([]string{qemu}, QEMUArgs(cfg)...)
	if cfg.Netns != "" {
		argv = append([]string{"ip", "netns", "exec", cfg.Netns}, argv...)
	}
	return launch(cfg.Name, argv, nil)
}

// launch runs argv, a QEMU command line, as VM name with its serial
// console on stdin and stdout; exited, if not nil, runs once QEMU has
// exited and its output is all in.
func launch(name string, argv []string, exited func()) (*VM, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	vm := &VM{Name: name, cmd: cmd, in: in, c: in}
	vm.cond = sync.NewCond(&vm.mu)
	// A Writer, not a pipe we read: Wait then returns only once all the
	// output, a dying guest's last words included, is in.
	cmd.Stdout = consoleWriter{vm}
	cmd.Stderr = cmd.Stdout
	vm.Started = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("vmtest: start qemu: %w", err)
	}
	go func() {
		cmd.Wait()
		vm.mu.Lock()
		vm.done = true
		vm.cond.Broadcast()
		vm.mu.Unlock()
		if exited != nil {
			exited()
		}
	}()
	return vm, nil
}

type consoleWriter struct{ vm *VM }

func (w consoleWriter) Write(p []byte) (int, error) {
	w.vm.mu.Lock()
	w.vm.out.Write(bytes.ReplaceAll(p, []byte("\r"), nil))
	w.vm.cond.Broadcast()
	w.vm.mu.Unlock()
	return len(p), nil
}

// Attach connects to a VM's console on a unix socket (as made by
// scripts/run-two-qemu.sh).
func Attach(name, socket string) (*VM, error) {
	conn, err := net.Dial("unix", socket)
	if err != nil {
		return nil, fmt.Errorf("vmtest: attach %s: %w", name, err)
	}
	vm := &VM{Name: name, in: conn, c: conn, Started: time.Now()}
	vm.cond = sync.NewCond(&vm.mu)
	go vm.read(conn)
	return vm, nil
}

func (vm *VM) read(r io.Reader) {
	io.Copy(consoleWriter{vm}, r)
	vm.mu.Lock()
	vm.done = true
	vm.cond.Broadcast()
	vm.mu.Unlock()
}

// Expect waits until the unread output contains s, consumes it and
// returns the output up to and including it.
func (vm *VM) Expect(s string, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	t := time.AfterFunc(timeout, func() {
		vm.mu.Lock()
		vm.cond.Broadcast()
		vm.mu.Unlock()
	})
	defer t.Stop()
	vm.mu.Lock()
	defer vm.mu.Unlock()
	for {
		rest := vm.out.Bytes()[vm.mark:]
		if i := bytes.Index(rest, []byte(s)); i >= 0 {
			got := string(rest[:i+len(s)])
			vm.mark += i + len(s)
			return got, nil
		}
		if vm.done {
			return string(rest), fmt.Errorf("%s: console closed while waiting for %q", vm.Name, s)
		}
		if time.Now().After(deadline) {
			return string(rest), fmt.Errorf("%s: timed out after %v waiting for %q", vm.Name, timeout, s)
		}
		vm.cond.Wait()
	}
}

// Prompt is the shell prompt of the VM.
func (vm *VM) Prompt() string { return vm.Name + "% " }

// WaitReady waits for the boot banner and the first prompt and returns
// the banner line.
func (vm *VM) WaitReady(timeout time.Duration) (string, error) {
	out, err := vm.Expect(" ms\n", timeout)
	if err != nil {
		return out, err
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	banner := lines[len(lines)-1]
	_, err = vm.Expect(vm.Prompt(), timeout)
	return banner, err
}

// Type sends s as typed on the console, one write.
func (vm *VM) Type(s string) error {
	_, err := io.WriteString(vm.in, s)
	return err
}

// Command types line and Enter, waits for the next prompt and returns
// what the command printed (the echoed line removed).
func (vm *VM) Command(line string, timeout time.Duration) (string, error) {
	if err := vm.Type(line + "\r"); err != nil {
		return "", err
	}
	out, err := vm.Expect("\n"+vm.Prompt(), timeout)
	if err != nil {
		return out, err
	}
	// The first line is the echo of what was typed; the rest, up to the
	// prompt, is the answer.
	out = strings.TrimSuffix(out, vm.Prompt())
	_, rest, _ := strings.Cut(out, "\n")
	return rest, nil
}

// Log returns everything the console printed.
func (vm *VM) Log() string {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	return vm.out.String()
}

// Pid returns QEMU's process id (0 if unknown).
func (vm *VM) Pid() int {
	if vm.cmd == nil || vm.cmd.Process == nil {
		return vm.pid
	}
	return vm.cmd.Process.Pid
}

// Kill stops QEMU with SIGKILL (or closes an attached console).
func (vm *VM) Kill() {
	if vm.cmd != nil && vm.cmd.Process != nil {
		vm.cmd.Process.Kill()
	}
	vm.c.Close()
}
