// Package shell is Fornax's serial console shell: a line editor for raw
// terminals, a small command parser, and a command table with built-ins
// that browse the name space.
package shell

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// FS is the file tree the built-ins use, addressed by absolute paths. The
// name space (kernel/ns.Namespace) implements it.
type FS interface {
	// Stat reports whether path exists and whether it is a directory.
	Stat(path string) (isDir bool, err error)
	// ReadDir lists a directory; subdirectory names end in "/".
	ReadDir(path string) ([]string, error)
	ReadFile(path string) ([]byte, error)
	WriteFile(path string, data []byte) error
}

// ErrExit, returned by a command, makes Run return.
var ErrExit = errors.New("exit")

// ErrUsage, returned (possibly wrapped) by a command, makes the shell print
// the command's usage line.
var ErrUsage = errors.New("usage")

type command struct {
	usage, help string
	fn          func(w io.Writer, args []string) error
}

// Shell runs command lines against a table of commands. It is safe for
// concurrent use, so commands may be registered while it runs.
type Shell struct {
	fsys   FS
	prompt func() string

	mu   sync.RWMutex
	cmds map[string]command
}

// New returns a shell over fsys with the built-in commands help, ls, cat
// and echo. prompt is called before each line is read; nil means "> ".
func New(fsys FS, prompt func() string) *Shell {
	if prompt == nil {
		prompt = func() string { return "> " }
	}
	s := &Shell{fsys: fsys, prompt: prompt, cmds: make(map[string]command)}
	s.Register("help", "", "list commands", s.help)
	s.Register("ls", "[path...]", "list directories (default /)", s.ls)
	s.Register("cat", "path...", "print files", s.cat)
	s.Register("echo", "[word...]", "print words and a newline", echo)
	return s
}

// Register adds a command. fn gets the words after the command name and
// writes its output to w. usage describes the arguments only, as in
// "[path...]"; help is a one-line description. Registering a name twice
// panics: the command table is built in code.
func (s *Shell) Register(name, usage, help string, fn func(w io.Writer, args []string) error) {
	if name == "" || fn == nil {
		panic(fmt.Sprintf("shell: bad registration of %q", name))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.cmds[name]; ok {
		panic(fmt.Sprintf("shell: command %q registered twice", name))
	}
	s.cmds[name] = command{usage: usage, help: help, fn: fn}
}

// Exec runs one command line, writing its output and any error to w. With
// a redirection, the output is written to the file in one WriteFile call
// once the command has succeeded; a failing command writes nothing.
func (s *Shell) Exec(line string, w io.Writer) {
	s.exec(line, w)
}

// exec is Exec reporting whether the command asked to exit.
func (s *Shell) exec(line string, w io.Writer) (exit bool) {
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

	out := w
	var buf bytes.Buffer
	if cmd.Redirect != "" {
		out = &buf
	}
	err = c.fn(out, cmd.Args[1:])
	switch {
	case errors.Is(err, ErrExit):
		return true
	case errors.Is(err, ErrUsage):
		fmt.Fprintf(w, "usage: %s\n", strings.TrimSpace(name+" "+c.usage))
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
func (s *Shell) Run(r io.Reader, w io.Writer) error {
	lr := NewLineReader(r, w)
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
		if s.exec(line, w) {
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
	names := make([]string, 0, len(s.cmds))
	width := 0
	for name, c := range s.cmds {
		names = append(names, name)
		width = max(width, len(strings.TrimSpace(name+" "+c.usage)))
	}
	slices.Sort(names)
	var b strings.Builder
	for _, name := range names {
		c := s.cmds[name]
		fmt.Fprintf(&b, "%-*s  %s\n", width, strings.TrimSpace(name+" "+c.usage), c.help)
	}
	s.mu.RUnlock()
	_, err := io.WriteString(w, b.String())
	return err
}

// ls lists directories, one entry per line. With several arguments the
// entries are given as full paths, so the output stays one name a line.
func (s *Shell) ls(w io.Writer, args []string) error {
	if len(args) == 0 {
		args = []string{"/"}
	}
	var errs []error
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
// the next output starts on its own line.
func (s *Shell) cat(w io.Writer, args []string) error {
	if len(args) == 0 {
		return ErrUsage
	}
	var errs []error
	for _, p := range args {
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

// echo prints its arguments and a newline, redirected or not, as Plan 9's
// does; file write functions that want bare text trim the newline
// (ns.TrimNewline).
func echo(w io.Writer, args []string) error {
	_, err := io.WriteString(w, strings.Join(args, " ")+"\n")
	return err
}
