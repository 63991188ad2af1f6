package qemu_amd64

// median returns the median of v (the upper one for an even count),
// sorting v in place. It does not allocate: calibrate runs before the
// heap exists.
func median(v []uint64) uint64 {
	for i := 1; i < len(v); i++ { // insertion sort: a handful of values
		for j := i; j > 0 && v[j] < v[j-1]; j-- {
			v[j], v[j-1] = v[j-1], v[j]
		}
	}
	return v[len(v)/2]
}

// window is what one calibration window measured: PIT ticks (at hz), and TSC and
// LAPIC timer counts over them.
type window struct{ pit, tsc, lapic uint64 }

// agree sums the windows whose TSC rate is within 1 % of m and returns
// the rates over them all: the median's robustness, the whole span's
// precision.
func agree(ws []window, m, hz uint64) (tscHz, lapicHz uint64) {
	var sum window
	for _, w := range ws {
		if r := w.tsc * hz / w.pit; r+m/100 >= m && r <= m+m/100 {
			sum.pit, sum.tsc, sum.lapic = sum.pit+w.pit, sum.tsc+w.tsc, sum.lapic+w.lapic
		}
	}
	return sum.tsc * hz / sum.pit, sum.lapic * hz / sum.pit
}
