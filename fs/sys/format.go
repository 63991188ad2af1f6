package sys

// Formatting of figures for people.

import (
	"fmt"
	"strings"
	"time"
)

// FormatUptime prints a duration as [Nd ]hh:mm:ss.
func FormatUptime(d time.Duration) string {
	s := int64(d / time.Second)
	days, s := s/86400, s%86400
	var b strings.Builder
	if days > 0 {
		fmt.Fprintf(&b, "%dd ", days)
	}
	fmt.Fprintf(&b, "%02d:%02d:%02d", s/3600, s/60%60, s%60)
	return b.String()
}
