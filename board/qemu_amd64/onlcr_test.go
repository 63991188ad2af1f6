package qemu_amd64

import (
	"bytes"
	"strings"
	"sync"
	"testing"
)

func TestOnlcr(t *testing.T) {
	var out bytes.Buffer
	o := &onlcr{tx: func(b byte) { out.WriteByte(b) }}
	for _, w := range []string{"a\nb\r\n", "\r", "\n", "\n\n", "c"} {
		if n, err := o.Write([]byte(w)); n != len(w) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", w, n, err)
		}
	}
	// The "\n" after a "\r" that ended the write before is not lone.
	if got, want := out.String(), "a\r\nb\r\n\r\n\r\n\r\nc"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// The shell and the cluster's log goroutine write at once: under -race,
// the last byte and the UART (here a buffer) must be shared safely, and
// each write comes out whole.
func TestOnlcrConcurrent(t *testing.T) {
	var out bytes.Buffer
	o := &onlcr{tx: func(b byte) { out.WriteByte(b) }}
	const n = 200
	var wg sync.WaitGroup
	for _, line := range []string{"shell% ls\n", "cluster: 0a0b0c0d (fornax-02) joined\n"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range n {
				o.Write([]byte(line))
			}
		}()
	}
	wg.Wait()
	lines := strings.SplitAfter(out.String(), "\r\n")
	if len(lines) != 2*n+1 || lines[2*n] != "" {
		t.Fatalf("%d lines, want %d:\n%q", len(lines)-1, 2*n, out.String())
	}
	for _, l := range lines[:2*n] {
		if l != "shell% ls\r\n" && l != "cluster: 0a0b0c0d (fornax-02) joined\r\n" {
			t.Errorf("mixed or mistranslated line %q", l)
		}
	}
}
