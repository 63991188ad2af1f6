package shell

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"fornax/fs/file"
	"fornax/fs/ns"
)

// lineStream is a server with one stream, "events", fed lines by the
// test; it counts opens and closes.
type lineStream struct {
	*ns.Dir
	lines chan string

	mu           sync.Mutex
	opens, close int
}

func (l *lineStream) OpenStream(name string) (func(context.Context, []byte) (int, error), func(), error) {
	if name != "events" {
		return nil, nil, &fs.PathError{Op: "open", Path: name, Err: file.ErrNotStream}
	}
	l.mu.Lock()
	l.opens++
	l.mu.Unlock()
	read := func(ctx context.Context, p []byte) (int, error) {
		select {
		case s := <-l.lines:
			return copy(p, s), nil
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	return read, func() { l.mu.Lock(); l.close++; l.mu.Unlock() }, nil
}

func (l *lineStream) counts() (int, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.opens, l.close
}

// syncBuf is an output written by the shell and read by the test.
type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// waitFor waits until out ends with suffix.
func waitFor(t *testing.T, out *syncBuf, suffix string) {
	t.Helper()
	for range 500 {
		if strings.HasSuffix(out.String(), suffix) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("output %q, want it to end with %q", out.String(), suffix)
}

func streamShell(t *testing.T) (*Shell, *lineStream) {
	t.Helper()
	ls := &lineStream{Dir: ns.NewDir(), lines: make(chan string)}
	ls.File("name", ns.File{Read: func() ([]byte, error) { return []byte("n1\n"), nil }})
	space := ns.New()
	if err := space.Mount("/c", ls); err != nil {
		t.Fatal(err)
	}
	return New(space, nil), ls
}

func TestCatStreamCtrlC(t *testing.T) {
	sh, ls := streamShell(t)
	pr, pw := io.Pipe()
	out := new(syncBuf)
	done := make(chan error)
	go func() { done <- sh.Run(pr, out) }()
	io.WriteString(pw, "cat /c/name /c/events\r")
	waitFor(t, out, "> cat /c/name /c/events\r\nn1\n")
	ls.lines <- "1.000 0a1b2c3d joined n2 10.0.0.2\n"
	ls.lines <- "2.000 0a1b2c3d suspect\n"
	waitFor(t, out, "n1\n1.000 0a1b2c3d joined n2 10.0.0.2\n2.000 0a1b2c3d suspect\n")
	// What is typed before Ctrl-C is dropped; what follows it is kept.
	io.WriteString(pw, "junk\x03cat /c/name\r")
	waitFor(t, out, "suspect\n^C\n> cat /c/name\r\nn1\n> ")
	if opens, closes := ls.counts(); opens != 1 || closes != 1 {
		t.Errorf("%d opens, %d closes", opens, closes)
	}
	// Typed in a chunk of its own, and still dropped by Ctrl-C.
	io.WriteString(pw, "cat /c/events\r")
	waitFor(t, out, "> cat /c/events\r\n")
	io.WriteString(pw, "cat /c/")
	ls.lines <- "3.000 0a1b2c3d dead\n"
	waitFor(t, out, "3.000 0a1b2c3d dead\n")
	io.WriteString(pw, "\x03")
	io.WriteString(pw, "name\r")
	waitFor(t, out, "dead\n^C\n> name\r\nunknown command: name\n> ")
	// The end of the input ends a stream, and what was typed during it
	// runs before the shell ends.
	io.WriteString(pw, "cat /c/events\r")
	waitFor(t, out, "> cat /c/events\r\n")
	io.WriteString(pw, "echo bye\r")
	pw.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return at the end of its input")
	}
	if want := "> cat /c/events\r\n> echo bye\r\nbye\n> "; !strings.HasSuffix(out.String(), want) {
		t.Errorf("output %q, want it to end with %q", out.String(), want)
	}
	if opens, closes := ls.counts(); opens != 3 || closes != 3 {
		t.Errorf("%d opens, %d closes", opens, closes)
	}
}

// TestRunKeepsTypeahead checks that lines typed while commands run are
// all read, one byte at a time as a serial line gives them.
func TestRunKeepsTypeahead(t *testing.T) {
	sh, _ := streamShell(t)
	var out strings.Builder
	in := iotest.OneByteReader(strings.NewReader("cat /c/name\recho hi\rcat /c/name /c/nope\recho bye\r"))
	if err := sh.Run(in, &out); err != nil {
		t.Fatal(err)
	}
	want := "> cat /c/name\r\nn1\n> echo hi\r\nhi\n> cat /c/name /c/nope\r\nn1\ncat: /c/nope: file does not exist\n> echo bye\r\nbye\n> "
	if out.String() != want {
		t.Errorf("output %q, want %q", out.String(), want)
	}
}

func TestExecContextStream(t *testing.T) {
	sh, ls := streamShell(t)
	ctx, cancel := context.WithCancel(context.Background())
	out := new(syncBuf)
	done := make(chan struct{})
	go func() { sh.ExecContext(ctx, "cat /c/events", out); close(done) }()
	ls.lines <- "a\n"
	waitFor(t, out, "a\n")
	cancel()
	<-done
	if got := out.String(); got != "a\n" {
		t.Errorf("output %q", got)
	}
	// A redirected stream is written once it ends.
	ctx, cancel = context.WithCancel(context.Background())
	out = new(syncBuf)
	done = make(chan struct{})
	go func() { sh.ExecContext(ctx, "cat /c/events > /c/name", out); close(done) }()
	ls.lines <- "b\n"
	cancel()
	<-done
	if got := out.String(); got != "cat: /c/name: permission denied\n" {
		t.Errorf("output %q", got)
	}
}

func TestCommandRunContextPanics(t *testing.T) {
	sh, _ := streamShell(t)
	run := func(io.Writer, []string) error { return nil }
	runCtx := func(context.Context, io.Writer, []string) error { return nil }
	for _, c := range []Command{{Name: "both", Run: run, RunContext: runCtx}, {Name: "neither"}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Add(%s) did not panic", c.Name)
				}
			}()
			sh.Add(c)
		}()
	}
	sh.Add(Command{Name: "ctx", RunContext: func(ctx context.Context, w io.Writer, _ []string) error {
		if ctx == nil {
			return errors.New("no context")
		}
		_, err := io.WriteString(w, "ran\n")
		return err
	}})
	var out strings.Builder
	sh.Exec("ctx", &out)
	if out.String() != "ran\n" {
		t.Errorf("output %q", out.String())
	}
}

// TestInputBounded checks that input fed while a command runs is kept
// up to maxPending bytes, and that a Ctrl-C drops it; what comes after
// the command returns is the line editor's to read, all of it.
func TestInputBounded(t *testing.T) {
	for _, tc := range []struct {
		feed string
		want string
		intr bool
	}{
		{strings.Repeat("x", 3*maxPending), strings.Repeat("x", maxPending), false},
		{strings.Repeat("x", 3*maxPending) + "\x03" + "ab\x03cd", "cd", true},
		{strings.Repeat("x", 3*maxPending) + "\x03" + strings.Repeat("y", 2*maxPending), strings.Repeat("y", 2*maxPending), true},
	} {
		pr, pw := io.Pipe()
		in := &input{r: pr, ch: make(chan chunk), done: make(chan struct{})}
		go func() {
			io.WriteString(pw, tc.feed)
			pw.Close()
		}()
		err, intr := in.interruptible(context.Background(), func(ctx context.Context) error {
			<-ctx.Done() // the end of the input
			return nil
		})
		if err != nil || intr != tc.intr {
			t.Errorf("interruptible: %v, %v", err, intr)
		}
		if got, err := io.ReadAll(in); err != nil || string(got) != tc.want {
			t.Errorf("kept %d bytes (%.10q...), %v; want %d", len(got), got, err, len(tc.want))
		}
		close(in.done)
	}
}
