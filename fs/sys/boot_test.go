package sys

import (
	"testing"
	"time"
)

func TestBootLine(t *testing.T) {
	ms := func(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }
	for _, tc := range []struct {
		stages []Stage
		want   string
	}{
		{nil, "boot:; ready at 0.0 ms"},
		{[]Stage{{"firmware", ms(3.14)}, {"clock", ms(55.2)}, {"prompt", ms(129.46)}},
			"boot: firmware 3.1 ms, clock 52.1 ms, prompt 74.3 ms; ready at 129.5 ms"},
		// A stage dated before the one before it counts 0, and the
		// total stays the latest end.
		{[]Stage{{"a", ms(10)}, {"b", ms(4)}, {"c", ms(12)}},
			"boot: a 10.0 ms, b 0.0 ms, c 2.0 ms; ready at 12.0 ms"},
	} {
		if got := BootLine(tc.stages); got != tc.want {
			t.Errorf("BootLine(%v)\n got %q\nwant %q", tc.stages, got, tc.want)
		}
	}
}
