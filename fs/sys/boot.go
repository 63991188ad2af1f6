package sys

import (
	"fmt"
	"strings"
	"time"
)

// A Stage is a step of the boot and the uptime when it ended.
type Stage struct {
	Name string
	At   time.Duration
}

// BootLine is the kernel log's account of a boot: each stage's share,
// its end less the previous one's, in ms to a tenth, then the total:
// "boot: firmware 3.1 ms, clock 52.0 ms, ..., ready at 129.4 ms".
// A stage that ends before the one before it (a clock set late) counts
// 0.
func BootLine(stages []Stage) string {
	var b strings.Builder
	b.WriteString("boot:")
	var prev, last time.Duration
	for i, s := range stages {
		d := max(s.At-prev, 0)
		prev = max(prev, s.At)
		last = prev
		sep := ","
		if i == 0 {
			sep = ""
		}
		fmt.Fprintf(&b, "%s %s %s", sep, s.Name, ms(d))
	}
	fmt.Fprintf(&b, "; ready at %s", ms(last))
	return b.String()
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}
