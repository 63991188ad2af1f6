// Package names holds the rules for the names Fornax gives nodes (the node
// name and the node id of docs/protocol.md §3 and §7), so that the boot
// command line, the cluster's wire format and its control file accept the
// same ones. It is plain Go with no dependencies beyond the standard
// library.
package names

import (
	"errors"
	"fmt"
)

// MaxName is the longest node name, in bytes.
const MaxName = 63

// IDLen is the length of a node id.
const IDLen = 8

// nameByte reports whether c may appear in a node name.
func nameByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-'
}

// idByte reports whether c may appear in a node id.
func idByte(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' }

// ValidName reports whether s is a node name: 1 to 63 of A-Z a-z 0-9 . _ -
func ValidName(s string) bool {
	if len(s) < 1 || len(s) > MaxName {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !nameByte(s[i]) {
			return false
		}
	}
	return true
}

// CheckName is ValidName saying what is wrong, for a person to act on.
func CheckName(s string) error {
	if len(s) < 1 || len(s) > MaxName {
		return fmt.Errorf("must be 1 to %d characters", MaxName)
	}
	for i := 0; i < len(s); i++ {
		if !nameByte(s[i]) {
			return fmt.Errorf("character %q not allowed (use A-Z a-z 0-9 . _ -)", s[i])
		}
	}
	return nil
}

// ValidID reports whether s is a node id: exactly 8 lowercase hex digits.
func ValidID(s string) bool {
	if len(s) != IDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !idByte(s[i]) {
			return false
		}
	}
	return true
}

var errID = errors.New("must be 8 lowercase hex digits")

// CheckID is ValidID saying what is wrong, for a person to act on.
func CheckID(s string) error {
	if !ValidID(s) {
		return errID
	}
	return nil
}
