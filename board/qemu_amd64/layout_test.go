package qemu_amd64

import (
	"errors"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func TestLayoutFor(t *testing.T) {
	const end = 0x02996a60 // a kernel image ending at 41.6 MB
	tests := []struct {
		ram     uint64
		size    uint64 // RamSize
		dma     uint64 // DMAStart
		tooLow  bool
		needMiB uint64
	}{
		{ram: 128 << 20, size: 120 << 20, dma: 124 << 20},
		{ram: 64 << 20, size: 56 << 20, dma: 60 << 20},
		{ram: 59 << 20, size: 51 << 20, dma: 55 << 20},
		{ram: 59<<20 - 1, tooLow: true, needMiB: 59},
		{ram: 48 << 20, tooLow: true, needMiB: 59},
		{ram: 0, tooLow: true, needMiB: 59},
		{ram: 1 << 30, size: 1<<30 - 8<<20, dma: 1<<30 - 4<<20},
		{ram: 2 << 30, size: 2<<30 - 8<<20, dma: 2<<30 - 4<<20},
		// Beyond MaxRAM the rest is left unused.
		{ram: 3 << 30, size: 2<<30 - 8<<20, dma: 2<<30 - 4<<20},
		{ram: 1 << 40, size: 2<<30 - 8<<20, dma: 2<<30 - 4<<20},
	}
	for _, tt := range tests {
		l, err := LayoutFor(tt.ram, end)
		if tt.tooLow {
			var e ErrTooLittleRAM
			if !errors.As(err, &e) || e.Need != tt.needMiB<<20 || e.RAM != tt.ram {
				t.Errorf("LayoutFor(%#x) = %+v, %v; want ErrTooLittleRAM needing %d MB", tt.ram, l, err, tt.needMiB)
			}
			continue
		}
		if err != nil {
			t.Errorf("LayoutFor(%#x): %v", tt.ram, err)
			continue
		}
		want := Layout{RAM: tt.ram, RamStart: RamStart, RamSize: tt.size, DMAStart: tt.dma, DMASize: DMASize, ImageEnd: end}
		if l != want {
			t.Errorf("LayoutFor(%#x) = %+v, want %+v", tt.ram, l, want)
		}
		// The runtime's memory ends where the DMA buffers start, and the
		// heap has its room between the image and the stack.
		if l.RamStart+l.RamSize != l.DMAStart || l.Used() > MaxRAM || l.Used() > tt.ram {
			t.Errorf("LayoutFor(%#x) = %+v overlaps or exceeds the RAM", tt.ram, l)
		}
		if heap := l.RamStart + l.RamSize - StackOffset - end; heap < MinHeap || l.HeapRoom() != heap {
			t.Errorf("LayoutFor(%#x) leaves %d bytes of heap (HeapRoom %d), want at least %d", tt.ram, heap, l.HeapRoom(), MinHeap)
		}
	}
}

func TestMinRAM(t *testing.T) {
	for _, tt := range []struct{ end, want uint64 }{
		{0x02996a60, 59 << 20},
		{0x02900000, 58 << 20}, // ends on a MB: no rounding up
		{0x02900001, 59 << 20},
		{RamStart, (4 + 12 + 1 + 4) << 20},
	} {
		if got := MinRAM(tt.end); got != tt.want {
			t.Errorf("MinRAM(%#x) = %d MB, want %d MB", tt.end, got>>20, tt.want>>20)
		}
	}
}

// TestEntryMessage checks that the console message of entry_amd64.s,
// spelt out byte by byte, says what ErrTooLittleRAM says.
func TestEntryMessage(t *testing.T) {
	src, err := os.ReadFile("entry_amd64.s")
	if err != nil {
		t.Fatal(err)
	}
	// The message's bytes, with each call to ·putmb (a number) as "%d".
	re := regexp.MustCompile(`PUTC\((0x[0-9a-f]{2})\)|CALL\s+·putmb<>`)
	var msg strings.Builder
	for _, m := range re.FindAllStringSubmatch(string(src), -1) {
		if m[1] == "" {
			msg.WriteString("%d")
			continue
		}
		b, _ := strconv.ParseUint(m[1], 0, 8)
		msg.WriteByte(byte(b))
	}
	e := ErrTooLittleRAM{RAM: 48 << 20, Need: 57 << 20}
	want := "\r\nfornax: " + strings.ReplaceAll(e.Error(), "48", "%d")
	want = strings.ReplaceAll(want, "57", "%d") + "\r\n"
	if msg.String() != want {
		t.Errorf("entry_amd64.s prints %q, want %q (ErrTooLittleRAM)", msg.String(), want)
	}
}
