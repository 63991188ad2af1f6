//go:build tamago

// Command kernel is Fornax: it boots on QEMU's microvm, mounts the kernel's
// files, starts the services compiled in (network, cluster) and runs the
// serial-console shell.
package main

import (
	"fmt"
	"io"
	"runtime/debug"
	"slices"
	"time"

	board "fornax/board/qemu_amd64"
	"fornax/drivers/virtio"
	"fornax/fs/file"
	"fornax/fs/ninep"
	"fornax/fs/ns"
	"fornax/fs/shell"
	"fornax/fs/sys"
	"fornax/kernel/bootcfg"
	"fornax/kernel/commands"
	"fornax/kernel/netstack"
	"fornax/kernel/netsvc"
)

// version is set at link time (-X main.version=...).
var version = "dev"

// A service is started at boot, after the name space and before the shell.
// Files guarded by build tags add theirs in init (see cluster.go).
// They start in order of rank: the cluster needs the network. A start
// that fails says why without naming its service: main names it.
type service struct {
	rank  int
	name  string
	start func(*system) error
}

var services []service

// system is what services get to see and extend.
type system struct {
	cfg   bootcfg.Config
	kern  *sys.Kernel
	space *ns.Namespace
	shell *shell.Shell
	con   io.Writer
	net   *netstack.Stack  // nil when the network is off
	nic   *virtio.Net      // with net
	svc   *netsvc.Services // with net
	ninep *ninep.Server    // nil when 9P is off
	// irqs are the devices' interrupts, unmasked once the vectors are
	// installed (board.ServiceInterrupts keeps the rules).
	irqs []board.IRQ
	// halting run before the machine stops (atHalt, halt.go).
	halting []func()
}

// handle has the device on global system interrupt gsi served by h.
func (s *system) handle(gsi int, h func()) {
	s.irqs = append(s.irqs, board.IRQ{GSI: gsi, Handle: h})
}

func main() {
	// The boot's stages, for the kernel log (docs/guide.md, "Boot").
	var stages []sys.Stage
	for _, st := range board.BootStages() {
		stages = append(stages, sys.Stage{Name: st.Name, At: st.At})
	}
	stages = append(stages, sys.Stage{Name: "runtime", At: board.Uptime()})
	con := board.Serial
	cmdline := board.CmdLine()
	cfg, warnings := bootcfg.Parse(cmdline)
	for _, w := range warnings {
		fmt.Fprintf(con, "warning: %s\n", w)
	}

	kern := sys.New(sys.Machine{
		Version:  version,
		CmdLine:  cmdline,
		MemTotal: board.Memory().RamSize,
		NumCPU:   board.NumCPU(),
		Uptime:   board.Uptime,
		Now:      time.Now,
		Clock: func() string {
			kind, tsc, lapic, _ := board.ClockInfo()
			return fmt.Sprintf("%s tsc %d Hz lapic %d Hz", kind, tsc, lapic)
		},
		Idle: func() (time.Duration, uint64) { return board.IdleTime(), board.Wakes() },
	}, cfg.Name)

	// The layout follows QEMU's -m (board/qemu_amd64/layout.go). The
	// heap has HeapRoom and no more: GOGC alone would let it grow past
	// that (into an out-of-memory crash) before collecting, so the
	// runtime gets it as its limit, less one 4 MB arena for what it
	// holds besides the heap.
	mem := board.Memory()
	debug.SetMemoryLimit(int64(mem.HeapRoom()) - 4<<20)
	kern.Logf("mem: QEMU gave %dM of RAM: runtime %#x-%#x (%dM; heap room %dM), DMA %#x-%#x",
		mem.RAM>>20, mem.RamStart, mem.RamStart+mem.RamSize, mem.RamSize>>20, mem.HeapRoom()>>20, mem.DMAStart, mem.DMAStart+mem.DMASize)

	space := ns.New()
	mustMount(space, "/dev", kern.Dev())
	mustMount(space, "/proc", kern.Proc())

	s := &system{
		cfg:   cfg,
		kern:  kern,
		space: space,
		con:   con,
		shell: shell.New(space, func() string { return kern.Name() + "% " }),
	}
	addCommands(s.shell, commands.Sys(kern))
	s.shell.Add(shell.Command{Name: "halt", Help: "stop the machine", Run: func(w io.Writer, args []string) error {
		fmt.Fprintln(w, "halted")
		s.halt()
		return nil
	}})

	slices.SortFunc(services, func(a, b service) int { return a.rank - b.rank })
	stages = append(stages, sys.Stage{Name: "files", At: board.Uptime()})
	for _, svc := range services {
		if err := svc.start(s); err != nil {
			fmt.Fprintf(con, "%s: %v\n", svc.name, err)
		}
		stages = append(stages, sys.Stage{Name: svc.name, At: board.Uptime()})
	}

	// Handlers are all registered above; irqs is read-only from here.
	go board.ServiceInterrupts(s.irqs)

	ready := board.Uptime()
	kern.Logf("%s", sys.BootLine(append(stages, sys.Stage{Name: "interrupts", At: ready})))
	fmt.Fprintf(con, "fornax %s ready in %d ms\n", version, ready.Milliseconds())
	go board.RefineClock(kern.Logf)
	s.shell.Run(con, con)
	s.halt()
}

// addCommands adds cmds to the console's shell.
func addCommands(sh *shell.Shell, cmds []shell.Command) {
	for _, c := range cmds {
		sh.Add(c)
	}
}

func mustMount(space *ns.Namespace, path string, srv file.Server) {
	if err := space.Mount(path, srv); err != nil {
		panic(err)
	}
}
