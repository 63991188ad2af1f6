package sys

// The console commands: uptime, date, mem.

import (
	"fmt"
	"io"
	"time"

	"fornax/internal/units"
	"fornax/kernel/shell"
)

// Registrar is the part of the shell that takes commands.
type Registrar interface {
	Add(c shell.Command)
}

// Commands registers uptime, date and mem.
func (k *Kernel) Commands(r Registrar) {
	r.Add(shell.Command{Name: "uptime", Help: "time since reset", Run: func(w io.Writer, args []string) error {
		_, err := fmt.Fprintf(w, "up %s (%.3f s)\n", FormatUptime(k.Uptime()), k.Uptime().Seconds())
		return err
	}})
	r.Add(shell.Command{Name: "date", Help: "wall-clock time (UTC)", Run: func(w io.Writer, args []string) error {
		_, err := fmt.Fprintln(w, k.m.Now().UTC().Format(time.UnixDate))
		return err
	}})
	r.Add(shell.Command{Name: "mem", Help: "memory: total, used by the runtime, free", Run: func(w io.Writer, args []string) error {
		total, used, free := k.Mem()
		_, err := fmt.Fprintf(w, "total %s\nused  %s\nfree  %s\n", units.Bytes(total), units.Bytes(used), units.Bytes(free))
		return err
	}})
}
