package shell

import (
	"fmt"
	"strings"
	"testing"

	"fornax/fs/file"
	"fornax/fs/ns"
)

func globShell(t *testing.T) *Shell {
	t.Helper()
	text := func(s string) ns.File { return ns.File{Read: func() ([]byte, error) { return []byte(s), nil }} }
	d := ns.NewDir()
	d.Dir("0a").File("name", text("alpha\n")).File("status", text("online\n"))
	d.Dir("0b").File("name", text("beta\n")).File("status", text("dead\n"))
	d.Dir("1c").File("name", text("gamma\n"))
	d.File("x", text("x\n"))
	space := ns.New()
	if err := space.Mount("/n", d); err != nil {
		t.Fatal(err)
	}
	return New(space, nil)
}

func TestGlob(t *testing.T) {
	sh := globShell(t)
	for _, tc := range []struct{ line, out string }{
		{"cat /n/*/name", "alpha\nbeta\ngamma\n"},
		{"cat /n/0?/name", "alpha\nbeta\n"},
		{"cat /n/[01]b/name", "beta\n"},
		{"cat /n/[^0]*/name", "gamma\n"},
		{"cat n/*/status", "online\ndead\n"},
		{"ls /n/*/status", "/n/0a/status\n/n/0b/status\n"},
		{"ls n/*/status", "n/0a/status\nn/0b/status\n"},
		{"ls /n/1*", "name\n"},
		{"ls /n/0*", "/n/0a/name\n/n/0a/status\n/n/0b/name\n/n/0b/status\n"},
		{"ls /n/*/", "/n/0a/name\n/n/0a/status\n/n/0b/name\n/n/0b/status\n/n/1c/name\n"},
		{"ls /*", "0a/\n0b/\n1c/\nx\n"},
		{"cat /n/*/nope", "cat: no match: /n/*/nope\n"},
		{"cat /n/x/*", "cat: no match: /n/x/*\n"},
		{"cat /n/*/name /nope /z*", "alpha\nbeta\ngamma\ncat: no match: /z*\ncat: /nope: file does not exist\n"},
		{"cat /n/[/name", "cat: /n/[/name: syntax error in pattern\n"},
		{"ls /q/*", "ls: no match: /q/*\n"},
		{"echo /n/*", "/n/*\n"},
	} {
		var out strings.Builder
		sh.Exec(tc.line, &out)
		if out.String() != tc.out {
			t.Errorf("%s:\n%s\nwant:\n%s", tc.line, out.String(), tc.out)
		}
	}
}

// countingFS counts ReadDir calls.
type countingFS struct {
	file.Server
	readDirs int
}

func (c *countingFS) ReadDir(p string) ([]string, error) {
	c.readDirs++
	return c.Server.ReadDir(p)
}

func TestGlobBounded(t *testing.T) {
	// 64 directories of 64 directories of one file: 4096 paths at the
	// second level, 4096 files at the third.
	text := ns.File{Read: func() ([]byte, error) { return []byte("f\n"), nil }}
	d := ns.NewDir()
	for i := range 64 {
		sub := d.Dir(fmt.Sprintf("d%02d", i))
		for j := range 64 {
			sub.Dir(fmt.Sprintf("e%02d", j)).File("f", text)
		}
	}
	space := ns.New()
	if err := space.Mount("/n", d); err != nil {
		t.Fatal(err)
	}
	fsys := &countingFS{Server: space}
	sh := New(fsys, nil)

	for _, line := range []string{"cat /n/*/*/*", "ls /n/*/*/f", "cat /n/*/*/*/*/*/*"} {
		fsys.readDirs = 0
		var out strings.Builder
		sh.Exec(line, &out)
		want := strings.Fields(line)[0] + ": too many matches: " + strings.Fields(line)[1] + "\n"
		if out.String() != want {
			t.Errorf("%s: %q, want %q", line, out.String(), want)
		}
		if fsys.readDirs > 2*maxMatches {
			t.Errorf("%s: %d directory listings, want at most %d", line, fsys.readDirs, 2*maxMatches)
		}
	}

	// The bound is for the whole line.
	var out strings.Builder
	sh.Exec("ls /n/d0*/*/f /n/d1*/*/f /n/d2*/*/f", &out)
	if got := out.String(); !strings.HasSuffix(got, "ls: too many matches: /n/d1*/*/f\nls: too many matches: /n/d2*/*/f\n") ||
		strings.Count(got, "\n") != 640+2 {
		t.Errorf("three patterns: %d lines, ending %q", strings.Count(got, "\n"), got[max(0, len(got)-100):])
	}

	// Under the bound, all matches.
	out.Reset()
	sh.Exec("ls /n/d00/*/f", &out)
	if n := strings.Count(out.String(), "\n"); n != 64 {
		t.Errorf("ls /n/d00/*/f: %d lines, want 64", n)
	}
}
