package shell

import (
	"bytes"
	"context"
	"io"
)

// input is the console's input as Run reads it. Until a command that can
// be interrupted first runs, reads go straight to r; from then on one
// goroutine (the pump) reads r and hands each chunk over, so that input
// can be watched for Ctrl-C while a command runs and read by the line
// editor in between, without two reads of r at once.
type input struct {
	r       io.Reader
	ch      chan chunk    // from the pump
	done    chan struct{} // closed when Run returns: the pump stops
	started bool          // the pump runs (or ran, until an error)
	pending []byte        // received, not yet read
	err     error         // r's error, once pending is read
}

// maxPending bounds the input kept while a command runs, as a tty's
// input queue is bounded (Linux's holds 4095 bytes): what comes past it,
// up to a Ctrl-C, is dropped, so that input fed during a long stream
// cannot grow the kernel's memory without end.
const maxPending = 4096

type chunk struct {
	b   []byte
	err error
}

func (in *input) Read(p []byte) (int, error) {
	for {
		switch {
		case len(in.pending) > 0:
			n := copy(p, in.pending)
			in.pending = in.pending[n:]
			return n, nil
		case in.err != nil:
			return 0, in.err
		case !in.started:
			n, err := in.r.Read(p)
			if err != nil {
				in.err = err
			}
			if n > 0 || err == nil {
				return n, nil
			}
			return 0, err
		}
		c := <-in.ch
		in.pending, in.err = c.b, c.err
	}
}

// start starts the pump, unless it runs or r has ended.
func (in *input) start() {
	if in.started || in.err != nil {
		return
	}
	in.started = true
	go func() {
		for {
			b := make([]byte, 64)
			n, err := in.r.Read(b)
			select {
			case in.ch <- chunk{b[:n], err}:
			case <-in.done:
				return
			}
			if err != nil {
				return
			}
		}
	}()
}

// interruptible runs run while watching the input: Ctrl-C, or the end
// of the input, cancels run's context. Input typed before the Ctrl-C is
// dropped; what follows it, and all input while no Ctrl-C comes, is kept
// for the line editor. It reports whether run was interrupted.
func (in *input) interruptible(ctx context.Context, run func(context.Context) error) (err error, interrupted bool) {
	in.start()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	res := make(chan error, 1)
	go func() { res <- run(ctx) }()
	var ch chan chunk
	if in.started && in.err == nil {
		ch = in.ch
	} else {
		cancel() // no more input: nothing could interrupt run
	}
	for {
		select {
		case err := <-res:
			return err, interrupted
		case c := <-ch:
			b := c.b
			if i := bytes.LastIndexByte(b, ctrlC); i >= 0 {
				interrupted = true
				cancel()
				in.pending, b = in.pending[:0], b[i+1:]
			}
			in.pending = append(in.pending, b[:min(len(b), maxPending-len(in.pending))]...)
			if c.err != nil {
				in.err = c.err
				ch = nil
				cancel()
			}
		}
	}
}
