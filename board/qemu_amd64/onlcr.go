package qemu_amd64

import "sync"

// onlcr writes bytes to tx, turning a lone "\n" into "\r\n" as a tty's
// ONLCR does, since QEMU passes the console's bytes to a raw terminal.
// The shell and the cluster's log goroutine both write to the console,
// and whether a "\n" is lone depends on the byte written before it,
// whoever wrote it; that last byte is state, so it is kept under a lock.
// Holding the lock for a whole Write also keeps writes whole.
type onlcr struct {
	tx   func(byte)
	mu   sync.Mutex
	last byte // the last byte written
}

func (o *onlcr) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, b := range p {
		if b == '\n' && o.last != '\r' {
			o.tx('\r')
		}
		o.tx(b)
		o.last = b
	}
	return len(p), nil
}
