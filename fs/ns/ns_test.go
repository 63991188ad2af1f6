package ns

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"sync"
	"testing"

	"fornax/fs/file"
)

// value is a read-write file holding bytes, replaced whole on each write.
type value struct {
	mu sync.Mutex
	b  []byte
}

func (v *value) file() File {
	return File{
		Read: func() ([]byte, error) {
			v.mu.Lock()
			defer v.mu.Unlock()
			return v.b, nil
		},
		Write: func(b []byte) error {
			v.mu.Lock()
			defer v.mu.Unlock()
			v.b = b
			return nil
		},
	}
}

func static(s string) File {
	return File{Read: func() ([]byte, error) { return []byte(s), nil }}
}

func testNamespace(t *testing.T) (*Namespace, *value) {
	t.Helper()
	name := &value{b: []byte("fornax\n")}
	dev := NewDir().
		File("time", static("12345\n")).
		File("sysname", name.file()).
		File("ctl", File{Write: func(b []byte) error {
			if s := string(TrimNewline(b)); s != "reboot" {
				return fmt.Errorf("bad ctl message: %q", s)
			}
			return nil
		}}).
		File("broken", File{Read: func() ([]byte, error) { return nil, errors.New("device on fire") }})
	dev.Dir("net").File("addr", static("10.0.0.2\n"))

	proc := NewDir().File("uptime", static("1s\n"))
	cluster := NewDir().File("members", static("a\nb\n"))

	ns := New()
	for _, m := range []struct {
		path string
		s    file.Server
	}{
		{"/dev", dev},
		{"/proc", proc},
		{"/net/cluster", cluster},
	} {
		if err := ns.Mount(m.path, m.s); err != nil {
			t.Fatal(err)
		}
	}
	return ns, name
}

func TestStat(t *testing.T) {
	ns, _ := testNamespace(t)
	tests := []struct {
		path  string
		isDir bool
		err   error
	}{
		{"/", true, nil},
		{"/dev", true, nil},
		{"/dev/", true, nil},
		{"/dev/time", false, nil},
		{"/dev//time", false, nil},
		{"/dev/./time", false, nil},
		{"/dev/net/../time", false, nil},
		{"/dev/net", true, nil},
		{"/dev/net/addr", false, nil},
		{"/net", true, nil},
		{"/net/cluster", true, nil},
		{"/net/cluster/members", false, nil},
		{"/nope", false, fs.ErrNotExist},
		{"/dev/nope", false, fs.ErrNotExist},
		{"/dev/time/x", false, file.ErrNotDir},
		{"/net/nope", false, fs.ErrNotExist},
		{"dev/time", false, fs.ErrInvalid},
		{"", false, fs.ErrInvalid},
		{"/..", false, fs.ErrInvalid},
		{"/dev/../../dev", false, fs.ErrInvalid},
	}
	for _, tt := range tests {
		isDir, err := ns.Stat(tt.path)
		if !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
			t.Errorf("Stat(%q) error = %v, want %v", tt.path, err, tt.err)
			continue
		}
		if isDir != tt.isDir {
			t.Errorf("Stat(%q) = %v, want %v", tt.path, isDir, tt.isDir)
		}
	}
}

func TestReadDir(t *testing.T) {
	ns, _ := testNamespace(t)
	tests := []struct {
		path string
		want []string
		err  error
	}{
		{"/", []string{"dev/", "net/", "proc/"}, nil},
		{"//", []string{"dev/", "net/", "proc/"}, nil},
		{"/dev", []string{"broken", "ctl", "net/", "sysname", "time"}, nil},
		{"/dev/net", []string{"addr"}, nil},
		{"/net", []string{"cluster/"}, nil},
		{"/net/cluster", []string{"members"}, nil},
		{"/dev/time", nil, file.ErrNotDir},
		{"/nope", nil, fs.ErrNotExist},
		{"/net/nope", nil, fs.ErrNotExist},
		{"net", nil, fs.ErrInvalid},
	}
	for _, tt := range tests {
		got, err := ns.ReadDir(tt.path)
		if !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
			t.Errorf("ReadDir(%q) error = %v, want %v", tt.path, err, tt.err)
			continue
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("ReadDir(%q) = %q, want %q", tt.path, got, tt.want)
		}
	}
}

func TestReadFile(t *testing.T) {
	ns, _ := testNamespace(t)
	tests := []struct {
		path string
		want string
		err  string // "" for none
	}{
		{"/dev/time", "12345\n", ""},
		{"/dev//sysname", "fornax\n", ""},
		{"/dev/net/addr", "10.0.0.2\n", ""},
		{"/net/cluster/members", "a\nb\n", ""},
		{"/dev", "", "read /dev: is a directory"},
		{"/", "", "read /: is a directory"},
		{"/net", "", "read /net: is a directory"},
		{"/dev/net", "", "read /dev/net: is a directory"},
		{"/nope", "", "read /nope: file does not exist"},
		{"/dev/nope", "", "read /dev/nope: file does not exist"},
		{"/dev/ctl", "", "read /dev/ctl: permission denied"},
		{"/dev/broken", "", "read /dev/broken: device on fire"},
		{"dev/time", "", "read dev/time: not an absolute path"},
		{"/../dev/time", "", "read /../dev/time: path escapes the root"},
	}
	for _, tt := range tests {
		got, err := ns.ReadFile(tt.path)
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("ReadFile(%q) error = %v, want %q", tt.path, err, tt.err)
			}
			continue
		}
		if err != nil || string(got) != tt.want {
			t.Errorf("ReadFile(%q) = %q, %v, want %q", tt.path, got, err, tt.want)
		}
	}
}

func TestWriteFile(t *testing.T) {
	ns, name := testNamespace(t)
	tests := []struct {
		path string
		data string
		err  error
	}{
		{"/dev/sysname", "n1", nil},
		{"/dev/ctl", "reboot\n", nil},
		{"/dev/time", "1", fs.ErrPermission},
		{"/dev", "x", file.ErrIsDir},
		{"/net", "x", file.ErrIsDir},
		{"/nope", "x", fs.ErrNotExist},
		{"/dev/nope", "x", fs.ErrNotExist},
		{"dev/ctl", "x", fs.ErrInvalid},
	}
	for _, tt := range tests {
		err := ns.WriteFile(tt.path, []byte(tt.data))
		if !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
			t.Errorf("WriteFile(%q) error = %v, want %v", tt.path, err, tt.err)
		}
	}
	if got := string(name.b); got != "n1" {
		t.Errorf("sysname = %q after write, want %q", got, "n1")
	}
	err := ns.WriteFile("/dev/ctl", []byte("jion\n"))
	if want := `write /dev/ctl: bad ctl message: "jion"`; err == nil || err.Error() != want {
		t.Errorf("bad ctl write: error = %v, want %q", err, want)
	}
}

func TestWriteCopiesData(t *testing.T) {
	v := &value{}
	ns := New()
	if err := ns.Mount("/v", NewDir().File("x", v.file())); err != nil {
		t.Fatal(err)
	}
	buf := []byte("abc")
	if err := ns.WriteFile("/v/x", buf); err != nil {
		t.Fatal(err)
	}
	buf[0] = 'z'
	got, _ := ns.ReadFile("/v/x")
	got[1] = 'z'
	if got, _ := ns.ReadFile("/v/x"); string(got) != "abc" {
		t.Errorf("content = %q, want %q: caller's buffers leaked into the server", got, "abc")
	}
}

func TestMount(t *testing.T) {
	ns := New()
	d := NewDir()
	tests := []struct {
		op   string
		path string
		err  error
	}{
		{"mount", "/dev", nil},
		{"mount", "/dev", fs.ErrExist},
		{"mount", "/dev/", fs.ErrExist},
		{"mount", "/dev/sub", nil},
		{"mount", "dev", fs.ErrInvalid},
		{"mount", "/..", fs.ErrInvalid},
		{"unmount", "/dev", nil},
		{"unmount", "/dev", fs.ErrNotExist},
		{"unmount", "/x", fs.ErrNotExist},
		{"mount", "/dev", nil},
		{"mount", "/", nil},
		{"unmount", "/", nil},
	}
	for _, tt := range tests {
		var err error
		if tt.op == "mount" {
			err = ns.Mount(tt.path, d)
		} else {
			err = ns.Unmount(tt.path)
		}
		if !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
			t.Errorf("%s(%q) error = %v, want %v", tt.op, tt.path, err, tt.err)
		}
	}
	if err := ns.Mount("/y", nil); err == nil {
		t.Error("Mount of nil server succeeded")
	}
}

func TestUnmountRemovesSynthesizedDirs(t *testing.T) {
	ns := New()
	if err := ns.Mount("/a/b/c", NewDir()); err != nil {
		t.Fatal(err)
	}
	if got, _ := ns.ReadDir("/a"); !slices.Equal(got, []string{"b/"}) {
		t.Errorf("ReadDir(/a) = %q, want [b/]", got)
	}
	if err := ns.Unmount("/a/b/c"); err != nil {
		t.Fatal(err)
	}
	if _, err := ns.Stat("/a"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat(/a) after unmount: error = %v, want not exist", err)
	}
	if got, err := ns.ReadDir("/"); err != nil || len(got) != 0 {
		t.Errorf("ReadDir(/) of empty name space = %q, %v, want empty", got, err)
	}
}

// TestLongestPrefix checks that a deeper mount takes over its subtree and
// shows up in, and shadows, the listing of the server above it.
func TestLongestPrefix(t *testing.T) {
	ns := New()
	root := NewDir().File("README", static("root\n")).File("dev", static("shadowed"))
	dev := NewDir().File("time", static("1\n"))
	if err := ns.Mount("/", root); err != nil {
		t.Fatal(err)
	}
	if err := ns.Mount("/dev", dev); err != nil {
		t.Fatal(err)
	}
	if got, _ := ns.ReadDir("/"); !slices.Equal(got, []string{"README", "dev/"}) {
		t.Errorf("ReadDir(/) = %q", got)
	}
	if got, _ := ns.ReadFile("/README"); string(got) != "root\n" {
		t.Errorf("ReadFile(/README) = %q", got)
	}
	if got, _ := ns.ReadFile("/dev/time"); string(got) != "1\n" {
		t.Errorf("ReadFile(/dev/time) = %q", got)
	}
	if isDir, err := ns.Stat("/dev"); !isDir || err != nil {
		t.Errorf("Stat(/dev) = %v, %v, want directory", isDir, err)
	}
}

func TestDirBuild(t *testing.T) {
	d := NewDir()
	sub := d.Dir("a")
	if d.Dir("a") != sub {
		t.Error("Dir returned a new directory for an existing name")
	}
	d.File("f", static("1"))
	d.File("f", static("2")) // replaces
	if got, _ := d.ReadFile("f"); string(got) != "2" {
		t.Errorf("replaced file reads %q, want %q", got, "2")
	}
	for _, name := range []string{"", ".", "..", "a/b"} {
		mustPanic(t, "File("+name+")", func() { d.File(name, File{}) })
		mustPanic(t, "Dir("+name+")", func() { d.Dir(name) })
	}
	mustPanic(t, "File over a directory", func() { d.File("a", File{}) })
	mustPanic(t, "Dir over a file", func() { d.Dir("f") })
	if _, err := d.Stat("/a"); !errors.Is(err, fs.ErrInvalid) {
		t.Errorf("Stat with a rooted name: error = %v, want invalid", err)
	}
}

func mustPanic(t *testing.T, what string, f func()) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Errorf("%s did not panic", what)
		}
	}()
	f()
}

func TestTrimNewline(t *testing.T) {
	for in, want := range map[string]string{
		"":         "",
		"\n":       "",
		"a\n":      "a",
		"a\n\n":    "a\n",
		"a":        "a",
		"reboot\n": "reboot",
	} {
		if got := string(TrimNewline([]byte(in))); got != want {
			t.Errorf("TrimNewline(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestSnapshot writes whole contents of one repeated byte while readers
// check that they never see a mix of two writes.
func TestSnapshot(t *testing.T) {
	v := &value{b: bytes.Repeat([]byte("a"), 4096)}
	ns := New()
	if err := ns.Mount("/v", NewDir().File("x", v.file())); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Go(func() {
		defer close(done)
		for i := range 2000 {
			c := []byte{'a' + byte(i%26)}
			if err := ns.WriteFile("/v/x", bytes.Repeat(c, 4096)); err != nil {
				t.Error(err)
				return
			}
		}
	})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				b, err := ns.ReadFile("/v/x")
				if err != nil {
					t.Error(err)
					return
				}
				if len(b) != 4096 || strings.Count(string(b), string(b[:1])) != len(b) {
					t.Errorf("torn read: %d bytes, starting %q", len(b), b[:min(len(b), 8)])
					return
				}
				b[0] = '!' // must not reach the server
			}
		})
	}
	wg.Wait()
}

// TestConcurrentBuild reads and mounts while entries are added.
func TestConcurrentBuild(t *testing.T) {
	ns := New()
	d := NewDir()
	if err := ns.Mount("/d", d); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range 200 {
			d.Dir(fmt.Sprint("s", i%10)).File(fmt.Sprint("f", i), static("x"))
			if err := ns.Mount(fmt.Sprint("/m", i), d); err != nil {
				t.Error(err)
			}
		}
	})
	wg.Go(func() {
		for range 200 {
			if _, err := ns.ReadDir("/d"); err != nil {
				t.Error(err)
			}
			if _, err := ns.ReadDir("/"); err != nil {
				t.Error(err)
			}
			ns.Stat("/d/s1/f1")
			ns.ReadFile("/m1/s1/f11")
		}
	})
	wg.Wait()
}

// listing is a server whose ReadDir returns the same slice every time, as
// a server with a fixed listing may.
type listing struct {
	file.Server
	names []string
}

func (l listing) ReadDir(string) ([]string, error) { return l.names, nil }

// TestReadDirKeepsServerSlice checks that merging mount points into a
// listing leaves the slice the server returned as it was.
func TestReadDirKeepsServerSlice(t *testing.T) {
	names := make([]string, 3, 8)
	copy(names, []string{"a", "dev/", "z"})
	ns := New()
	if err := ns.Mount("/", listing{NewDir(), names}); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"/dev", "/net"} {
		if err := ns.Mount(m, NewDir()); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		got, err := ns.ReadDir("/")
		if want := []string{"a", "z", "dev/", "net/"}; err != nil || !slices.Equal(got, want) {
			t.Errorf("ReadDir(/) = %q, %v, want %q", got, err, want)
		}
	}
	if want := []string{"a", "dev/", "z"}; !slices.Equal(names, want) || !slices.Equal(names[:4], []string{"a", "dev/", "z", ""}) {
		t.Errorf("server's slice is now %q (cap %q), want %q", names, names[:4], want)
	}
}

// versioned is a server whose file f has version 7.
type versioned struct{ *Dir }

func (versioned) Version(name string) (uint32, error) {
	if name != "f" {
		return 0, fs.ErrNotExist
	}
	return 7, nil
}

// TestVersion: a Versioner's files have its versions under their
// absolute names; directories, mount points and other servers' files 0;
// a missing name is an error.
func TestVersion(t *testing.T) {
	s := New()
	plain := NewDir().File("g", File{Read: func() ([]byte, error) { return nil, nil }})
	vd := NewDir().File("f", File{Read: func() ([]byte, error) { return nil, nil }})
	if err := s.Mount("/a/v", versioned{vd}); err != nil {
		t.Fatal(err)
	}
	if err := s.Mount("/p", plain); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]uint32{"/a/v/f": 7, "/a/v": 0, "/a": 0, "/": 0, "/p/g": 0, "/p": 0} {
		if v, err := s.Version(name); err != nil || v != want {
			t.Errorf("Version(%s) = %d, %v; want %d", name, v, err, want)
		}
	}
	for _, name := range []string{"/a/v/nope", "/p/nope", "/nope", "rel"} {
		if _, err := s.Version(name); err == nil {
			t.Errorf("Version(%s): no error", name)
		}
	}
}
