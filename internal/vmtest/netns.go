package vmtest

import (
	"fmt"
	"net"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

func setns(f *os.File) error {
	return unix.Setns(int(f.Fd()), unix.CLONE_NEWNET)
}

// ListenUDPIn opens a UDP socket inside network namespace ns (as made
// with `ip netns add`): the socket stays in that namespace while the
// test reads it from this process.
func ListenUDPIn(ns, addr string) (*net.UDPConn, error) {
	target, err := os.Open("/var/run/netns/" + ns)
	if err != nil {
		return nil, err
	}
	defer target.Close()

	type result struct {
		c   *net.UDPConn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		// The thread enters the namespace only for the socket call; if it
		// cannot come back, it is not returned to the scheduler.
		runtime.LockOSThread()
		self, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, err}
			return
		}
		defer self.Close()
		if err := setns(target); err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, fmt.Errorf("setns %s: %w", ns, err)}
			return
		}
		ua, err := net.ResolveUDPAddr("udp4", addr)
		var c *net.UDPConn
		if err == nil {
			c, err = net.ListenUDP("udp4", ua)
		}
		if setns(self) == nil {
			runtime.UnlockOSThread()
		}
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}
