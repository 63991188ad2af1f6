package vmtest

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

// LogBuffer collects a process's output (fornaxd's stderr) and lets a
// test wait for a line. Make one with NewLogBuffer.
type LogBuffer struct {
	mu   sync.Mutex
	cond *sync.Cond
	b    bytes.Buffer
}

func NewLogBuffer() *LogBuffer {
	l := new(LogBuffer)
	l.cond = sync.NewCond(&l.mu)
	return l
}

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.Write(p)
	l.cond.Broadcast()
	return len(p), nil
}

func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Wait waits until the log holds s and returns when it saw it; after
// timeout it fails the test, showing the log.
func (l *LogBuffer) Wait(t testing.TB, s string, timeout time.Duration) time.Time {
	t.Helper()
	wake := time.AfterFunc(timeout, func() { l.mu.Lock(); l.cond.Broadcast(); l.mu.Unlock() })
	defer wake.Stop()
	deadline := time.Now().Add(timeout)
	l.mu.Lock()
	defer l.mu.Unlock()
	for !strings.Contains(l.b.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the log after %v; the log:\n%s", s, timeout, l.b.String())
		}
		l.cond.Wait()
	}
	return time.Now()
}
