package sys

// The console commands: uptime, date, mem.

import (
	"errors"
	"fmt"
	"io"
	"time"
)

// Registrar is the part of the shell that takes commands.
type Registrar interface {
	Register(name, usage, help string, fn func(w io.Writer, args []string) error)
}

// Commands registers uptime, date and mem.
func (k *Kernel) Commands(r Registrar) {
	r.Register("uptime", "", "time since reset", func(w io.Writer, args []string) error {
		if len(args) > 0 {
			return errNoArgs
		}
		_, err := fmt.Fprintf(w, "up %s (%.3f s)\n", FormatUptime(k.Uptime()), k.Uptime().Seconds())
		return err
	})
	r.Register("date", "", "wall-clock time (UTC)", func(w io.Writer, args []string) error {
		if len(args) > 0 {
			return errNoArgs
		}
		_, err := fmt.Fprintln(w, k.m.Now().UTC().Format(time.UnixDate))
		return err
	})
	r.Register("mem", "", "memory: total, used by the runtime, free", func(w io.Writer, args []string) error {
		if len(args) > 0 {
			return errNoArgs
		}
		total, used, free := k.Mem()
		_, err := fmt.Fprintf(w, "total %s\nused  %s\nfree  %s\n", Bytes(total), Bytes(used), Bytes(free))
		return err
	})
}

var errNoArgs = errors.New("takes no arguments")
