package shell

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"fornax/fs/file"
	"fornax/fs/ns"
)

// The name space must serve as the shell's file tree, streams included.
var (
	_ file.Server   = (*ns.Namespace)(nil)
	_ file.Streamer = (*ns.Namespace)(nil)
)

type testEnv struct {
	sh *Shell
	mu sync.Mutex
	// last write to /dev/sysname and how many writes it got
	sysname string
	writes  int
}

func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	env := &testEnv{sysname: "fornax"}
	dev := ns.NewDir().
		File("time", ns.File{Read: func() ([]byte, error) { return []byte("12345\n"), nil }}).
		File("raw", ns.File{Read: func() ([]byte, error) { return []byte("no newline"), nil }}).
		File("empty", ns.File{Read: func() ([]byte, error) { return nil, nil }}).
		File("sysname", ns.File{
			Read: func() ([]byte, error) {
				env.mu.Lock()
				defer env.mu.Unlock()
				return []byte(env.sysname), nil
			},
			Write: func(b []byte) error {
				env.mu.Lock()
				defer env.mu.Unlock()
				env.sysname = string(ns.TrimNewline(b))
				env.writes++
				return nil
			},
		}).
		File("ctl", ns.File{Write: func(b []byte) error {
			return fmt.Errorf("bad ctl message: %q", ns.TrimNewline(b))
		}})
	dev.Dir("net")
	space := ns.New()
	for p, s := range map[string]file.Server{
		"/dev":  dev,
		"/proc": ns.NewDir(),
	} {
		if err := space.Mount(p, s); err != nil {
			t.Fatal(err)
		}
	}
	env.sh = New(space, func() string { return "fornax% " })
	env.sh.Register("fail", "", "fail twice", func(w io.Writer, args []string) error {
		fmt.Fprintln(w, "partial")
		return errors.Join(errors.New("one"), errors.New("two"))
	})
	env.sh.Register("args", "[x...]", "print arguments", func(w io.Writer, args []string) error {
		_, err := fmt.Fprintf(w, "%q\n", args)
		return err
	})
	env.sh.Register("need", "thing", "needs a thing", func(w io.Writer, args []string) error {
		return fmt.Errorf("no thing: %w", ErrUsage)
	})
	env.sh.Register("exit", "", "leave the shell", func(io.Writer, []string) error { return ErrExit })
	return env
}

func TestExec(t *testing.T) {
	tests := []struct {
		line, out string
	}{
		{"", ""},
		{"  # nothing", ""},
		{"foo", "unknown command: foo\n"},
		{"foo > /dev/sysname", "unknown command: foo\n"},
		{`""`, "unknown command: \"\"\n"},
		{`"a b"`, "unknown command: \"a b\"\n"},
		{`echo "x`, "unterminated quote\n"},
		{"echo >", "missing file after >\n"},
		{"echo", "\n"},
		{"echo hello   world", "hello world\n"},
		{`echo "a  b" c`, "a  b c\n"},
		{"ls", "dev/\nproc/\n"},
		{"ls /", "dev/\nproc/\n"},
		{"ls /dev", "ctl\nempty\nnet/\nraw\nsysname\ntime\n"},
		{"ls dev/net", ""},
		{"ls /proc", ""},
		{"ls /dev/time", "/dev/time\n"},
		{"ls /nope", "ls: /nope: file does not exist\n"},
		{"ls /proc /dev/time /nope /dev/net /", "/dev/time\n/dev/\n/proc/\nls: /nope: file does not exist\n"},
		{"ls /dev/time/x", "ls: /dev/time/x: not a directory\n"},
		{"ls ..", "ls: ..: path escapes the root\n"},
		{"cat /dev/time", "12345\n"},
		{"cat dev/time", "12345\n"},
		{"cat /dev//time", "12345\n"},
		{"cat /dev/raw", "no newline\n"},
		{"cat /dev/empty", ""},
		{"cat /dev/time /dev/raw", "12345\nno newline\n"},
		{"cat /nope", "cat: /nope: file does not exist\n"},
		{"cat /dev", "cat: /dev: is a directory\n"},
		{"cat /", "cat: /: is a directory\n"},
		{"cat /dev/ctl", "cat: /dev/ctl: permission denied\n"},
		{"cat /nope /dev/time /dev", "12345\ncat: /nope: file does not exist\ncat: /dev: is a directory\n"},
		{"cat", "usage: cat path...\n"},
		{"need", "usage: need thing\n"},
		{"args a 'b c' \"\"", "[\"a\" \"b c\" \"\"]\n"},
		{"fail", "partial\nfail: one\nfail: two\n"},
		{"fail > /dev/sysname", "fail: one\nfail: two\n"},
		{"echo x > /dev/time", "echo: /dev/time: permission denied\n"},
		{"echo x > /nope", "echo: /nope: file does not exist\n"},
		{"echo x > /dev", "echo: /dev: is a directory\n"},
		{"echo jion > /dev/ctl", "echo: /dev/ctl: bad ctl message: \"jion\"\n"},
		{"exit", ""},
	}
	for _, tt := range tests {
		env := newTestEnv(t)
		var out strings.Builder
		env.sh.Exec(tt.line, &out)
		if out.String() != tt.out {
			t.Errorf("Exec(%q) wrote %q, want %q", tt.line, out.String(), tt.out)
		}
		if env.writes != 0 {
			t.Errorf("Exec(%q) wrote to /dev/sysname", tt.line)
		}
	}
}

func TestExecRedirect(t *testing.T) {
	env := newTestEnv(t)
	var out strings.Builder
	env.sh.Exec("echo node1 > /dev/sysname", &out)
	if out.Len() != 0 {
		t.Errorf("redirected echo printed %q", out.String())
	}
	if env.sysname != "node1" || env.writes != 1 {
		t.Errorf("sysname = %q after %d writes, want %q after 1", env.sysname, env.writes, "node1")
	}
	// Output is collected and written in one call.
	env.sh.Exec("cat /dev/time /dev/raw >dev/sysname", &out)
	if want := "12345\nno newline"; env.sysname != want || env.writes != 2 {
		t.Errorf("sysname = %q after %d writes, want %q after 2", env.sysname, env.writes, want)
	}
}

func TestHelp(t *testing.T) {
	env := newTestEnv(t)
	var out strings.Builder
	env.sh.Exec("help", &out)
	want := `args [x...]     print arguments
cat path...     print files (a stream until Ctrl-C)
echo [word...]  print words and a newline
exit            leave the shell
fail            fail twice
help            list commands
ls [path...]    list directories (default /)
need thing      needs a thing
`
	if out.String() != want {
		t.Errorf("help printed\n%s\nwant\n%s", out.String(), want)
	}
}

func TestRegisterPanics(t *testing.T) {
	env := newTestEnv(t)
	for _, name := range []string{"ls", "fail", ""} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Register(%q) did not panic", name)
				}
			}()
			env.sh.Register(name, "", "", func(io.Writer, []string) error { return nil })
		}()
	}
}

func TestRun(t *testing.T) {
	tests := []struct {
		name, in, out string
	}{
		{"eof", "", "fornax% "},
		{"commands", "echo hi\rcat /dev/time\r\n", "fornax% echo hi\r\nhi\nfornax% cat /dev/time\r\n12345\nfornax% "},
		{"partial last line", "echo hi", "fornax% echo hi\r\nhi\nfornax% "},
		{"ctrl-c", "ech\x03echo ok\r", "fornax% ech^C\r\nfornax% echo ok\r\nok\nfornax% "},
		{"exit", "exit\recho never\r", "fornax% exit\r\n"},
		{"error", "cat /nope\r", "fornax% cat /nope\r\ncat: /nope: file does not exist\nfornax% "},
	}
	for _, tt := range tests {
		env := newTestEnv(t)
		var out strings.Builder
		if err := env.sh.Run(strings.NewReader(tt.in), &out); err != nil {
			t.Errorf("%s: Run error %v", tt.name, err)
		}
		if out.String() != tt.out {
			t.Errorf("%s: Run wrote %q, want %q", tt.name, out.String(), tt.out)
		}
	}
}

func TestRunReadError(t *testing.T) {
	env := newTestEnv(t)
	boom := errors.New("boom")
	r := io.MultiReader(strings.NewReader("echo a\r"), errReader{boom})
	if err := env.sh.Run(r, io.Discard); !errors.Is(err, boom) {
		t.Errorf("Run error = %v, want %v", err, boom)
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func TestDefaultPrompt(t *testing.T) {
	var out strings.Builder
	New(ns.New(), nil).Run(strings.NewReader(""), &out)
	if out.String() != "> " {
		t.Errorf("default prompt %q", out.String())
	}
}
