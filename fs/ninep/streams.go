package ninep

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"

	"fornax/fs/file"
)

// stream is an open stream file.
type stream struct {
	read   func(ctx context.Context, p []byte) (int, error)
	close  func()
	sem    chan struct{} // one read at a time
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // reads running
	// loop: the client is v9fs (conn.loopReads), which sends Tread after
	// Tread until its caller's buffer is full or one returns 0 bytes.
	// Only then does the burst rule hold: after a read that returned
	// data (burst), the next does not wait, and with nothing more there
	// returns 0 bytes, which ends v9fs's loop and not the stream (doc.go,
	// "Streams"). For every other client a read waits, as Plan 9's event
	// files do: 0 bytes would be the end of the file.
	loop  bool
	burst bool
}

// request is a pending stream read.
type request struct {
	cancel   context.CancelFunc
	flushed  bool
	flushers []uint16 // tags of the Tflushes waiting for it
}

// testHookReplying, when set, runs in a stream read's goroutine once
// the read has left the pending requests and before its reply is sent.
// It is atomic: a stream read of an earlier test may still be running.
var testHookReplying atomic.Pointer[func()]

// flush cancels the pending read oldtag; its Rflush goes after that
// read's end. Otherwise it answers at once.
func (c *conn) flush(f *Fcall) *Fcall {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.pending[f.Oldtag]
	if r == nil || len(r.flushers) >= c.s.cfg.MaxPending {
		return &Fcall{Type: Rflush}
	}
	r.flushed = true
	r.flushers = append(r.flushers, f.Tag)
	r.cancel()
	return nil
}

// abortAll drops the pending reads: they will not be answered.
func (c *conn) abortAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for tag, r := range c.pending {
		r.flushed = true
		r.flushers = nil
		r.cancel()
		delete(c.pending, tag)
	}
}

// openStream makes fd, a file opened for reading, a stream if the tree
// serves its file as one: a file.Streamer whose OpenStream does not
// refuse it with file.ErrNotStream. Otherwise fd is left as it was, for
// a snapshot.
func (c *conn) openStream(fd *fid) error {
	sfs, ok := c.s.fs.(file.Streamer)
	if !ok {
		return nil
	}
	read, closeFn, err := sfs.OpenStream(fd.path)
	switch {
	case errors.Is(err, file.ErrNotStream):
		return nil
	case err != nil:
		return err
	}
	ctx, cancel := context.WithCancel(c.ctx)
	fd.st = &stream{read: read, close: closeFn, sem: make(chan struct{}, 1), ctx: ctx, cancel: cancel, loop: c.loopReads}
	return nil
}

// closeStream ends the reads of st, whose fid is gone, and closes it
// once none runs.
func (c *conn) closeStream(st *stream) {
	st.cancel()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		st.wg.Wait()
		if st.close != nil {
			st.close()
		}
	}()
}

// burstRead is one read of st, with st.sem held. It waits for data,
// except for v9fs after a read that returned data: then it returns what
// is there now, or 0 bytes.
func burstRead(ctx context.Context, st *stream, buf []byte) (int, error) {
	if !st.loop || !st.burst {
		n, err := st.read(ctx, buf)
		st.burst = n > 0
		return n, err
	}
	now, cancel := context.WithCancel(ctx)
	cancel()
	n, err := st.read(now, buf)
	if n == 0 && ctx.Err() == nil && errors.Is(err, context.Canceled) {
		err = nil // the end of a burst
	}
	st.burst = n > 0
	return n, err
}

// streamRead starts a read of st, answered when it returns.
func (c *conn) streamRead(tag uint16, st *stream, count int) error {
	c.mu.Lock()
	if len(c.pending) >= c.s.cfg.MaxPending {
		c.mu.Unlock()
		return errBusy
	}
	ctx, cancel := context.WithCancel(st.ctx)
	req := &request{cancel: cancel}
	c.pending[tag] = req
	c.mu.Unlock()
	c.wg.Add(1)
	st.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer st.wg.Done()
		defer cancel()
		var n int
		var err error
		buf := make([]byte, count)
		select {
		case st.sem <- struct{}{}:
			n, err = burstRead(ctx, st, buf)
			<-st.sem
		case <-ctx.Done():
			err = ctx.Err()
		}
		n = max(0, min(n, count))
		// Hold the replies from the moment the tag leaves pending until
		// its reply is out: a Tflush or Tversion that finds it gone
		// answers after it, so the client never sees the tag's reply
		// after the Rflush (or Rversion) that freed the tag.
		c.wmu.Lock()
		defer c.wmu.Unlock()
		c.mu.Lock()
		if c.pending[tag] == req {
			delete(c.pending, tag)
		}
		flushed, flushers := req.flushed, req.flushers
		c.mu.Unlock()
		if hook := testHookReplying.Load(); hook != nil {
			(*hook)()
		}
		var out []*Fcall
		switch {
		case n > 0 || err == nil || errors.Is(err, io.EOF):
			out = append(out, &Fcall{Type: Rread, Tag: tag, Data: buf[:n]})
		case !flushed:
			out = append(out, c.rerror(tag, err))
		}
		if flushed && len(flushers) == 0 {
			return // the session was reset: no answers
		}
		for _, t := range flushers {
			out = append(out, &Fcall{Type: Rflush, Tag: t})
		}
		c.sendLocked(out...)
	}()
	return nil
}
