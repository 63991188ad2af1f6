package qemu_amd64

import "testing"

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		v    []uint64
		want uint64
	}{
		{[]uint64{2096, 2095, 4390, 2097, 2096}, 2096}, // one window missed a PIT wrap
		{[]uint64{4390, 4391, 2095, 2097, 2096}, 2097}, // two did
		{[]uint64{7}, 7},
		{[]uint64{3, 1}, 3},
	} {
		if got := median(tc.v); got != tc.want {
			t.Errorf("median = %d, want %d", got, tc.want)
		}
	}
}

func TestAgree(t *testing.T) {
	// Five 10 ms windows of a 2096 MHz TSC and a 1 GHz LAPIC timer; one
	// missed a PIT wrap (54.9 ms uncounted): it is left out.
	const hz = 1193182
	ok := window{pit: hz / 100, tsc: 20960000, lapic: 10000000}
	bad := window{pit: hz / 100, tsc: 20960000 + 115076000, lapic: 10000000 + 54900000}
	ws := []window{ok, ok, bad, ok, ok}
	rates := make([]uint64, len(ws))
	for i, w := range ws {
		rates[i] = w.tsc * hz / w.pit
	}
	tsc, lapic := agree(ws, median(rates), hz)
	if tsc < 2094e6 || tsc > 2098e6 || lapic < 999e6 || lapic > 1001e6 { // the bad window would give 4.4 GHz
		t.Errorf("tsc %d Hz, lapic %d Hz", tsc, lapic)
	}
}
