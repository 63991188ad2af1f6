package names

import (
	"strings"
	"testing"
)

func TestName(t *testing.T) {
	for s, want := range map[string]string{
		"n1":                    "",
		"fornax-01":             "",
		"A.b_c-9":               "",
		strings.Repeat("x", 63): "",
		strings.Repeat("x", 64): "must be 1 to 63 characters",
		"":                      "must be 1 to 63 characters",
		"a/b":                   `character '/' not allowed (use A-Z a-z 0-9 . _ -)`,
		"a b":                   `character ' ' not allowed (use A-Z a-z 0-9 . _ -)`,
		"é":                     `character 'Ã' not allowed (use A-Z a-z 0-9 . _ -)`,
	} {
		err := CheckName(s)
		if got := errString(err); got != want {
			t.Errorf("CheckName(%q) = %q, want %q", s, got, want)
		}
		if ValidName(s) != (err == nil) {
			t.Errorf("ValidName(%q) = %v, CheckName says %v", s, ValidName(s), err)
		}
	}
}

func TestID(t *testing.T) {
	for s, want := range map[string]bool{
		"0a1b2c3d": true, "00000000": true, "ffffffff": true,
		"0A1B2C3D": false, "0a1b2c3": false, "0a1b2c3g": false, "0a1b2c3d0": false, "": false,
	} {
		if got := ValidID(s); got != want {
			t.Errorf("ValidID(%q) = %v, want %v", s, got, want)
		}
		if err := CheckID(s); (err == nil) != want || err != nil && err.Error() != "must be 8 lowercase hex digits" {
			t.Errorf("CheckID(%q) = %v", s, err)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
