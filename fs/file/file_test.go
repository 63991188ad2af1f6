package file_test

import (
	"errors"
	"fmt"
	"io/fs"
	"testing"

	"fornax/fs/file"
)

// TestErrors: the texts clients see, and what each error wraps.
func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		err     error
		text    string
		invalid bool
	}{
		{file.ErrIsDir, "is a directory", false},
		{file.ErrNotDir, "not a directory", false},
		{file.ErrNotStream, "not a stream", true},
	} {
		if tc.err.Error() != tc.text {
			t.Errorf("%v: text %q, want %q", tc.err, tc.err.Error(), tc.text)
		}
		wrapped := &fs.PathError{Op: "open", Path: "x", Err: fmt.Errorf("y: %w", tc.err)}
		if !errors.Is(wrapped, tc.err) {
			t.Errorf("%v: not found wrapped", tc.err)
		}
		if errors.Is(tc.err, fs.ErrInvalid) != tc.invalid {
			t.Errorf("%v: errors.Is(err, fs.ErrInvalid) = %v, want %v", tc.err, !tc.invalid, tc.invalid)
		}
	}
	if errors.Is(fs.ErrInvalid, file.ErrNotStream) {
		t.Error("fs.ErrInvalid matches ErrNotStream: streams would be told by a general error, not by their own")
	}
}
