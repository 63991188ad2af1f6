package shell

import (
	"strings"
	"testing"

	"fornax/kernel/ns"
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
