package units

import "testing"

func TestBytes(t *testing.T) {
	for v, want := range map[uint64]string{
		0: "0", 512: "512", 1023: "1023", 1024: "1K", 1536: "1K", 1<<20 - 1: "1023K",
		1 << 20: "1M", 256 << 20: "256M", 1<<30 - 1: "1023M", 1 << 30: "1G",
		5<<30 + 1<<29: "5G", 2 << 40: "2048G", 1<<64 - 1: "17179869183G",
	} {
		if got := Bytes(v); got != want {
			t.Errorf("Bytes(%d) = %s, want %s", v, got, want)
		}
	}
}
