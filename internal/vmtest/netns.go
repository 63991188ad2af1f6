package vmtest

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"syscall"
)

const sysSetns = 308 // x86_64
const cloneNewnet = 0x40000000

func setns(f *os.File) error {
	if _, _, e := syscall.RawSyscall(sysSetns, f.Fd(), cloneNewnet, 0); e != 0 {
		return e
	}
	return nil
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
	self, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", syscall.Gettid()))
	if err != nil {
		return nil, err
	}
	defer self.Close()

	type result struct {
		c   *net.UDPConn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		// The thread enters the namespace only for the socket call; if it
		// cannot come back, it is not returned to the scheduler.
		runtime.LockOSThread()
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
