// Package shell is Fornax's serial console shell: a line editor for raw
// terminals, a small command parser, and a command table with built-ins
// that browse the name space.
package shell

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"sync"

	"fornax/fs/file"
)

// ErrExit, returned by a command, makes Run return.
var ErrExit = errors.New("exit")

// ErrUsage, returned (possibly wrapped) by a command, makes the shell print
// the command's usage line.
var ErrUsage = errors.New("usage")

// Command is a shell command: its name, what help says of it, how many
// arguments it takes and the function that runs it. The shell checks
// the number of arguments before Run is called and, when it is wrong,
// prints the usage line, "usage: NAME USAGE", as it does when Run
// returns ErrUsage: one shape for every command's usage errors.
type Command struct {
	// Name is the word that runs the command.
	Name string
	// Usage describes the arguments only, as "[path...]"; "" for none.
	Usage string
	// Help is a one-line description, for help.
	Help string
	// MinArgs and MaxArgs bound the number of arguments, the words after
	// the name; a MaxArgs of Many sets no upper bound. The zero values
	// make a command that takes none.
	MinArgs, MaxArgs int
	// Run carries the command out: it gets the arguments and writes its
	// output to w. Returning ErrUsage (possibly wrapped) prints the usage
	// line; returning ErrExit ends Run's loop; other errors are printed
	// after the command's name, one line each.
	Run func(w io.Writer, args []string) error
	// RunContext, set instead of Run, is for a command that may run
	// until it is interrupted: at the console, Ctrl-C cancels ctx, and
	// the command should then return (nil, if being interrupted is its
	// normal end).
	RunContext func(ctx context.Context, w io.Writer, args []string) error
}

// Many, as a Command's MaxArgs, lets it take any number of arguments.
const Many = -1

// usage is the command's usage line: "usage: ls [path...]".
func (c *Command) usage() string {
	return "usage: " + strings.TrimSpace(c.Name+" "+c.Usage)
}

// argsOK reports whether n arguments are within c's bounds.
func (c *Command) argsOK(n int) bool {
	return n >= c.MinArgs && (c.MaxArgs == Many || n <= c.MaxArgs)
}

// Shell runs command lines against a table of commands. It is safe for
// concurrent use, so commands may be registered while it runs.
type Shell struct {
	fsys   file.Server // of absolute paths: the name space (fs/ns)
	prompt func() string

	mu   sync.RWMutex
	cmds map[string]*Command
}

// New returns a shell over fsys, a file tree of absolute paths such as
// the name space (fs/ns.Namespace), with the built-in commands help,
// ls, cat and echo; cat reads streams where fsys is a file.Streamer.
// prompt is called before each line is read; nil means "> ".
func New(fsys file.Server, prompt func() string) *Shell {
	if prompt == nil {
		prompt = func() string { return "> " }
	}
	s := &Shell{fsys: fsys, prompt: prompt, cmds: make(map[string]*Command)}
	// help takes and ignores any arguments, as it always has.
	s.Add(Command{Name: "help", Help: "list commands", MaxArgs: Many, Run: s.help})
	s.Add(Command{Name: "ls", Usage: "[path...]", Help: "list directories (default /)", MaxArgs: Many, Run: s.ls})
	s.Add(Command{Name: "cat", Usage: "path...", Help: "print files (a stream until Ctrl-C)", MinArgs: 1, MaxArgs: Many, RunContext: s.cat})
	s.Add(Command{Name: "echo", Usage: "[word...]", Help: "print words and a newline", MaxArgs: Many, Run: echo})
	return s
}

// Add adds a command. A bad Command (no name, a name with a blank, not
// exactly one of Run and RunContext, bounds that admit no count) or a name added twice panics: the
// command table is built in code.
func (s *Shell) Add(c Command) {
	switch {
	case c.Name == "" || strings.ContainsAny(c.Name, " \t") || (c.Run == nil) == (c.RunContext == nil):
		panic(fmt.Sprintf("shell: bad command %q", c.Name))
	case c.MinArgs < 0 || c.MaxArgs < Many || c.MaxArgs != Many && c.MaxArgs < c.MinArgs:
		panic(fmt.Sprintf("shell: command %q: bad argument bounds %d, %d", c.Name, c.MinArgs, c.MaxArgs))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.cmds[c.Name]; ok {
		panic(fmt.Sprintf("shell: command %q registered twice", c.Name))
	}
	s.cmds[c.Name] = &c
}

// Register adds a command that checks its own arguments: Add of a
// Command with no bounds on their number. New code should call Add.
func (s *Shell) Register(name, usage, help string, fn func(w io.Writer, args []string) error) {
	s.Add(Command{Name: name, Usage: usage, Help: help, MaxArgs: Many, Run: fn})
}

// Exec runs one command line, writing its output and any error to w. With
// a redirection, the output is written to the file in one WriteFile call
// once the command has succeeded; a failing command writes nothing.
func (s *Shell) Exec(line string, w io.Writer) {
	s.exec(context.Background(), nil, line, w)
}

// ExecContext is Exec with a context: a command that runs until it is
// interrupted (cat of a stream) ends when ctx is done.
func (s *Shell) ExecContext(ctx context.Context, line string, w io.Writer) {
	s.exec(ctx, nil, line, w)
}

// exec is Exec reporting whether the command asked to exit. With in, the
// console's input, Ctrl-C typed there interrupts a RunContext command.
func (s *Shell) exec(ctx context.Context, in *input, line string, w io.Writer) (exit bool) {
	cmd, err := Parse(line)
	if err != nil {
		fmt.Fprintln(w, err)
		return false
	}
	if len(cmd.Args) == 0 {
		return false
	}
	name := cmd.Args[0]
	s.mu.RLock()
	c, ok := s.cmds[name]
	s.mu.RUnlock()
	if !ok {
		if name == "" || strings.ContainsAny(name, " \t") {
			name = strconv.Quote(name) // "" or "a b": show what it was
		}
		fmt.Fprintf(w, "unknown command: %s\n", name)
		return false
	}

	args := cmd.Args[1:]
	if !c.argsOK(len(args)) {
		fmt.Fprintln(w, c.usage())
		return false
	}
	out := w
	var buf bytes.Buffer
	if cmd.Redirect != "" {
		out = &buf
	}
	switch {
	case c.Run != nil:
		err = c.Run(out, args)
	case in != nil:
		var intr bool
		err, intr = in.interruptible(ctx, func(ctx context.Context) error { return c.RunContext(ctx, out, args) })
		if intr {
			io.WriteString(w, "^C\n")
		}
	default:
		err = c.RunContext(ctx, out, args)
	}
	switch {
	case errors.Is(err, ErrExit):
		return true
	case errors.Is(err, ErrUsage):
		fmt.Fprintln(w, c.usage())
		return false
	case err != nil:
		// One line per error, so each carries the command name.
		errs := []error{err}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			errs = j.Unwrap()
		}
		for _, e := range errs {
			fmt.Fprintf(w, "%s: %v\n", name, e)
		}
		return false
	}
	if cmd.Redirect != "" {
		if err := s.fsys.WriteFile(abs(cmd.Redirect), buf.Bytes()); err != nil {
			fmt.Fprintf(w, "%s: %v\n", name, pathError(cmd.Redirect, err))
		}
	}
	return false
}

// Run is the interactive loop: it prompts, reads a line from r with a
// LineReader and executes it, until r ends or a command returns ErrExit.
// Output lines end in "\n"; turning them into "\r\n" for a raw terminal
// is the console device's job, as a tty's ONLCR is.
//
// While a RunContext command runs (cat, say), Run watches r for Ctrl-C
// (0x03), which cancels the command's context; what is typed before the
// Ctrl-C is dropped, as a terminal's interrupt flushes its input.
func (s *Shell) Run(r io.Reader, w io.Writer) error {
	in := &input{r: r, ch: make(chan chunk), done: make(chan struct{})}
	defer close(in.done)
	lr := NewLineReader(in, w)
	for {
		if _, err := io.WriteString(w, s.prompt()); err != nil {
			return fmt.Errorf("shell: %w", err)
		}
		line, err := lr.ReadLine()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("shell: reading line: %w", err)
		}
		if s.exec(context.Background(), in, line, w) {
			return nil
		}
	}
}

// abs makes p absolute: there is no current directory, so relative paths
// start at the root.
func abs(p string) string {
	if strings.HasPrefix(p, "/") {
		return p
	}
	return "/" + p
}

// pathError puts p, as the user typed it, in front of err, in place of any
// path the file system put there itself.
func pathError(p string, err error) error {
	if pe, ok := errors.AsType[*fs.PathError](err); ok {
		err = pe.Err
	}
	return fmt.Errorf("%s: %w", p, err)
}

func (s *Shell) help(w io.Writer, args []string) error {
	s.mu.RLock()
	cmds := make([]*Command, 0, len(s.cmds))
	width := 0
	for _, c := range s.cmds {
		cmds = append(cmds, c)
		width = max(width, len(strings.TrimSpace(c.Name+" "+c.Usage)))
	}
	s.mu.RUnlock()
	slices.SortFunc(cmds, func(a, b *Command) int { return strings.Compare(a.Name, b.Name) })
	var b strings.Builder
	for _, c := range cmds {
		fmt.Fprintf(&b, "%-*s  %s\n", width, strings.TrimSpace(c.Name+" "+c.Usage), c.Help)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// ls lists directories, one entry per line. With several arguments the
// entries are given as full paths, so the output stays one name a line.
func (s *Shell) ls(w io.Writer, args []string) error {
	if len(args) == 0 {
		args = []string{"/"}
	}
	args, errs := s.expand(args)
	for _, p := range args {
		isDir, err := s.fsys.Stat(abs(p))
		if err != nil {
			errs = append(errs, pathError(p, err))
			continue
		}
		if !isDir {
			fmt.Fprintln(w, p)
			continue
		}
		names, err := s.fsys.ReadDir(abs(p))
		if err != nil {
			errs = append(errs, pathError(p, err))
			continue
		}
		for _, n := range names {
			if len(args) > 1 {
				n = strings.TrimSuffix(p, "/") + "/" + n
			}
			fmt.Fprintln(w, n)
		}
	}
	return errors.Join(errs...)
}

// cat prints files as they are, adding a newline to one that lacks it so
// the next output starts on its own line. A stream (/cluster/events) is
// printed as it comes, until ctx is done.
func (s *Shell) cat(ctx context.Context, w io.Writer, args []string) error {
	args, errs := s.expand(args)
	for _, p := range args {
		if st, ok := s.fsys.(file.Streamer); ok {
			read, closeStream, err := st.OpenStream(abs(p))
			if !errors.Is(err, file.ErrNotStream) { // a stream, or a failed open of one
				if err == nil {
					err = copyStream(ctx, w, read)
					closeStream()
				}
				if err != nil {
					errs = append(errs, pathError(p, err))
				}
				continue
			}
		}
		b, err := s.fsys.ReadFile(abs(p))
		if err != nil {
			errs = append(errs, pathError(p, err))
			continue
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
		if len(b) > 0 && b[len(b)-1] != '\n' {
			if _, err := io.WriteString(w, "\n"); err != nil {
				return err
			}
		}
	}
	return errors.Join(errs...)
}

// copyStream writes what read gives to w until ctx is done.
func copyStream(ctx context.Context, w io.Writer, read func(context.Context, []byte) (int, error)) error {
	buf := make([]byte, 4096)
	for {
		n, err := read(ctx, buf)
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				return err
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil // interrupted: the way a stream ends
			}
			return err
		}
	}
}

// echo prints its arguments and a newline, redirected or not, as Plan 9's
// does; file write functions that want bare text trim the newline
// (ns.TrimNewline).
func echo(w io.Writer, args []string) error {
	_, err := io.WriteString(w, strings.Join(args, " ")+"\n")
	return err
}
