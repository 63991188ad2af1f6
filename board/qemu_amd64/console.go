//go:build tamago

package qemu_amd64

import (
	"time"
)

// 16550 registers not named by tamago's uart package.
const (
	uartIER     = 0x01 // interrupt enable
	uartIER_RDA = 1 << 0
	uartIIR     = 0x02
	COM1_IRQ    = 4    // ISA IRQ of COM1, IOAPIC0 pin 4
	ConsoleIRQ  = 0x3f // its vector, the last device vector (irq.go)
	consolePoll = time.Second
)

// Console is the serial console: Write sends to COM1, Read blocks until at
// least one byte has arrived. Reads are woken by the COM1 receive interrupt;
// a slow poll covers a lost edge.
type Console struct {
	wake chan struct{}
	poll *time.Timer // read side only
	out  onlcr       // the write side, shared by every writer
}

func newConsole() *Console {
	return &Console{wake: make(chan struct{}, 1), out: onlcr{tx: UART0.Tx}}
}

func (c *Console) enableInterrupt() {
	route(COM1_IRQ, ConsoleIRQ)
	outb(COM1+uartIER, uartIER_RDA)
}

// interrupt runs on the interrupt service goroutine.
func (c *Console) interrupt() {
	// IIR bit 0 clear: an interrupt is pending (16550 datasheet, IIR).
	if inb(COM1+uartIIR)&1 != 0 {
		return
	}
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Write sends p, turning a lone "\n" into "\r\n" (onlcr.go). Writers
// may call it at once.
func (c *Console) Write(p []byte) (int, error) { return c.out.Write(p) }

func (c *Console) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		n := 0
		for n < len(p) {
			b, ok := UART0.Rx()
			if !ok {
				break
			}
			p[n] = b
			n++
		}
		if n > 0 {
			return n, nil
		}
		if c.poll == nil {
			c.poll = time.NewTimer(consolePoll)
		} else {
			c.poll.Reset(consolePoll)
		}
		select {
		case <-c.wake:
		case <-c.poll.C:
		}
	}
}
