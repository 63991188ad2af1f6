package ns_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"

	"fornax/fs/file"
	"fornax/fs/ns"
)

// streamDir is a Dir with one stream, "s", whose reads give one line
// each, naming the server and counting.
type streamDir struct {
	*ns.Dir
	tag string
}

func (d streamDir) OpenStream(name string) (func(context.Context, []byte) (int, error), func(), error) {
	if name != "s" {
		return nil, nil, &fs.PathError{Op: "open", Path: name, Err: file.ErrNotStream}
	}
	k := 0
	return func(ctx context.Context, p []byte) (int, error) {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		k++
		return copy(p, fmt.Sprintf("%s %d\n", d.tag, k)), nil
	}, func() {}, nil
}

func TestOpenStream(t *testing.T) {
	space := ns.New()
	for mnt, s := range map[string]file.Server{
		"/x":     streamDir{ns.NewDir().File("a", ns.File{Read: func() ([]byte, error) { return nil, nil }}), "x"},
		"/x/sub": streamDir{ns.NewDir(), "sub"},
		"/plain": ns.NewDir(),
	} {
		if err := space.Mount(mnt, s); err != nil {
			t.Fatal(err)
		}
	}
	for path, want := range map[string]string{"/x/s": "x 1\nx 2\n", "/x/sub/s": "sub 1\nsub 2\n", "/x/../x/s": "x 1\nx 2\n"} {
		read, closeFn, err := space.OpenStream(path)
		if err != nil {
			t.Errorf("OpenStream(%q): %v", path, err)
			continue
		}
		var got []byte
		for range 2 {
			buf := make([]byte, 10)
			n, err := read(context.Background(), buf)
			if err != nil {
				t.Errorf("read %q: %v", path, err)
			}
			got = append(got, buf[:n]...)
		}
		closeFn()
		if string(got) != want {
			t.Errorf("%s gave %q, want %q", path, got, want)
		}
	}
	for path, want := range map[string]string{
		"/x/a":        "open /x/a: not a stream",
		"/x/nope":     "open /x/nope: not a stream",
		"/x":          "open /x: not a stream",
		"/x/sub":      "open /x/sub: not a stream",
		"/":           "open /: not a stream",
		"/plain/s":    "open /plain/s: not a stream",
		"/nowhere/s":  "open /nowhere/s: not a stream",
		"x/s":         "open x/s: not an absolute path",
		"/x/../../s":  "open /x/../../s: path escapes the root",
		"/x/sub/../a": "open /x/a: not a stream",
	} {
		_, _, err := space.OpenStream(path)
		if !errors.Is(err, fs.ErrInvalid) || err.Error() != want {
			t.Errorf("OpenStream(%q): %v, want %q wrapping fs.ErrInvalid", path, err, want)
		}
		if notStream := strings.HasSuffix(want, "not a stream"); errors.Is(err, file.ErrNotStream) != notStream {
			t.Errorf("OpenStream(%q): %v, errors.Is(err, file.ErrNotStream) = %v, want %v", path, err, !notStream, notStream)
		}
	}
}
