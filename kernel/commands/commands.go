// Package commands builds the serial console's commands from the
// kernel's parts: sys's figures (uptime, date, mem) and netsvc's
// datagrams (udpsend, udprecv). It is the kernel's: sys and netsvc do
// the work and know nothing of the shell, so fornaxd, which has no
// console, links neither this package nor the line editor.
//
// The commands the kernel builds around its own devices (halt, ifconfig)
// and the cluster (container, nodes) stay beside them in the kernel, so
// that the image built without the cluster links none of it.
package commands

import (
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"fornax/fs/shell"
	"fornax/fs/sys"
	"fornax/internal/units"
	"fornax/kernel/netsvc"
)

// Sys returns uptime, date and mem, reading k.
func Sys(k *sys.Kernel) []shell.Command {
	return []shell.Command{
		{Name: "uptime", Help: "time since reset", Run: func(w io.Writer, args []string) error {
			_, err := fmt.Fprintf(w, "up %s (%.3f s)\n", sys.FormatUptime(k.Uptime()), k.Uptime().Seconds())
			return err
		}},
		{Name: "date", Help: "wall-clock time (UTC)", Run: func(w io.Writer, args []string) error {
			_, err := fmt.Fprintln(w, k.Now().UTC().Format(time.UnixDate))
			return err
		}},
		{Name: "mem", Help: "memory: total, used by the runtime, free", Run: func(w io.Writer, args []string) error {
			total, used, free := k.Mem()
			_, err := fmt.Fprintf(w, "total %s\nused  %s\nfree  %s\n", units.Bytes(total), units.Bytes(used), units.Bytes(free))
			return err
		}},
	}
}

// ListenPacketFunc opens a UDP socket (net.ListenPacket in the kernel).
type ListenPacketFunc func(network, address string) (net.PacketConn, error)

// MaxWatch bounds udprecv, so a typo cannot take the console for hours.
const MaxWatch = 10 * time.Minute

// UDP returns udpsend and udprecv, which open their sockets with listen.
func UDP(listen ListenPacketFunc) []shell.Command {
	return []shell.Command{
		{Name: "udpsend", Usage: "addr:port text...", Help: "send one UDP datagram (broadcast allowed)", MinArgs: 2, MaxArgs: shell.Many, Run: func(w io.Writer, args []string) error {
			to, err := net.ResolveUDPAddr("udp4", args[0])
			if err != nil || to.IP == nil || to.Port == 0 {
				return fmt.Errorf("bad address %q: want a.b.c.d:port", args[0])
			}
			pc, err := listen("udp4", ":0")
			if err != nil {
				return err
			}
			defer pc.Close()
			msg := strings.Join(args[1:], " ")
			n, err := pc.WriteTo([]byte(msg), to)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(w, "sent %d bytes to %s\n", n, to)
			return err
		}},
		{Name: "udprecv", Usage: "port [seconds]", Help: "print the UDP datagrams that arrive on port (default 5 s)", MinArgs: 1, MaxArgs: 2, Run: func(w io.Writer, args []string) error {
			port, err := strconv.ParseUint(args[0], 10, 16)
			if err != nil || port == 0 {
				return fmt.Errorf("bad port %q", args[0])
			}
			wait := 5 * time.Second
			if len(args) == 2 {
				secs, err := strconv.ParseFloat(args[1], 64)
				if err != nil || secs <= 0 || time.Duration(secs*float64(time.Second)) > MaxWatch {
					return fmt.Errorf("bad seconds %q: want 0 < seconds <= %v", args[1], MaxWatch.Seconds())
				}
				wait = time.Duration(secs * float64(time.Second))
			}
			pc, err := listen("udp4", fmt.Sprintf(":%d", port))
			if err != nil {
				return err
			}
			defer pc.Close()
			fmt.Fprintf(w, "listening on udp port %d for %v\n", port, wait)
			return netsvc.Watch(w, pc, time.Now().Add(wait))
		}},
	}
}
