package sys

// The /dev and /proc trees.

import (
	"fmt"
	"runtime"
	"time"

	"fornax/fs/ns"
)

// Plan 9 formats /dev/time as four numbers, right-aligned in 11 and 21
// columns, each followed by a space: seconds and nanoseconds since the
// epoch, clock ticks since boot and ticks per second (cons(3)). Our
// ticks are nanoseconds.
func (k *Kernel) timeFile() []byte {
	now := k.m.Now()
	return fmt.Appendf(nil, "%11d %21d %21d %21d ", now.Unix(), now.UnixNano(), k.m.Uptime().Nanoseconds(), int64(time.Second))
}

// Dev returns the /dev tree.
func (k *Kernel) Dev() *ns.Dir {
	d := ns.NewDir()
	d.File("kmesg", ns.File{Read: func() ([]byte, error) { return k.kmesg(), nil }})
	d.File("sysname", ns.File{Read: func() ([]byte, error) { return []byte(k.Name() + "\n"), nil }})
	d.File("time", ns.File{Read: func() ([]byte, error) { return k.timeFile(), nil }})
	return d
}

// Proc returns the /proc tree of runtime figures.
func (k *Kernel) Proc() *ns.Dir {
	d := ns.NewDir()
	d.File("version", ns.File{Read: static(k.m.Version + "\n")})
	d.File("cmdline", ns.File{Read: static(k.m.CmdLine + "\n")})
	d.File("clock", ns.File{Read: func() ([]byte, error) {
		if k.m.Clock == nil {
			return nil, nil
		}
		return []byte(k.m.Clock() + "\n"), nil
	}})
	d.File("uptime", ns.File{Read: func() ([]byte, error) {
		return fmt.Appendf(nil, "%.3f\n", k.Uptime().Seconds()), nil
	}})
	d.File("meminfo", ns.File{Read: func() ([]byte, error) {
		total, used, free := k.Mem()
		return fmt.Appendf(nil, "total %d\nused %d\nfree %d\n", total, used, free), nil
	}})
	d.File("cpus", ns.File{Read: func() ([]byte, error) {
		return fmt.Appendf(nil, "%d\n", k.m.NumCPU), nil
	}})
	d.File("goroutines", ns.File{Read: func() ([]byte, error) {
		return fmt.Appendf(nil, "%d\n", runtime.NumGoroutine()), nil
	}})
	if k.m.Idle != nil {
		// What an idle machine costs its host: the time halted and the
		// wake-ups, each of which costs the host more than the work it
		// brings (docs/guide.md, "Memory").
		d.File("idle", ns.File{Read: func() ([]byte, error) {
			halted, wakes := k.m.Idle()
			return fmt.Appendf(nil, "uptime %.3f\nhalted %.3f\nwakes %d\n", k.Uptime().Seconds(), halted.Seconds(), wakes), nil
		}})
	}
	return d
}

func static(s string) func() ([]byte, error) {
	return func() ([]byte, error) { return []byte(s), nil }
}
