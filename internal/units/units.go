// Package units formats quantities for people, one rule for every file
// and command of Fornax that shows them. It is plain Go with no
// dependencies beyond the standard library.
package units

import "strconv"

// Bytes formats a byte count in the largest binary unit of K, M and G
// (1K = 1024) that it reaches, rounded down: 1536 is "1K", 2 TiB is
// "2048G"; below 1K it is the plain number, "512" (docs/protocol.md §8).
func Bytes(n uint64) string {
	switch {
	case n >= 1<<30:
		return strconv.FormatUint(n>>30, 10) + "G"
	case n >= 1<<20:
		return strconv.FormatUint(n>>20, 10) + "M"
	case n >= 1<<10:
		return strconv.FormatUint(n>>10, 10) + "K"
	}
	return strconv.FormatUint(n, 10)
}
