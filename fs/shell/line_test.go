package shell

import (
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

func readLines(r io.Reader, echo io.Writer) ([]string, error) {
	lr := NewLineReader(r, echo)
	var lines []string
	for {
		line, err := lr.ReadLine()
		if err == io.EOF {
			return lines, nil
		}
		if err != nil {
			return lines, err
		}
		lines = append(lines, line)
	}
}

func TestLineReader(t *testing.T) {
	long := strings.Repeat("x", MaxLine)
	tests := []struct {
		name  string
		in    string
		lines []string
		echo  string
	}{
		{"cr", "ls\r", []string{"ls"}, "ls\r\n"},
		{"lf", "ls\n", []string{"ls"}, "ls\r\n"},
		{"crlf is one end", "ls\r\ncat\r\n", []string{"ls", "cat"}, "ls\r\ncat\r\n"},
		{"cr cr", "a\r\r", []string{"a", ""}, "a\r\n\r\n"},
		{"lf lf", "a\n\n", []string{"a", ""}, "a\r\n\r\n"},
		{"lf cr", "a\n\rb\r", []string{"a", "", "b"}, "a\r\n\r\nb\r\n"},
		{"eof ends a partial line", "ls /dev", []string{"ls /dev"}, "ls /dev\r\n"},
		{"empty", "", nil, ""},
		{"backspace at start", "\b\x7fls\r", []string{"ls"}, "ls\r\n"},
		{"backspace mid-line", "lx\bs\r", []string{"ls"}, "lx\b \bs\r\n"},
		{"del", "lx\x7fs\r", []string{"ls"}, "lx\b \bs\r\n"},
		{"backspace a rune", "aé\bb\r", []string{"ab"}, "aé\b \bb\r\n"},
		{"ctrl-u", "junk\x15ls\r", []string{"ls"}, "junk\b \b\b \b\b \b\b \bls\r\n"},
		{"ctrl-c", "junk\x03ls\r", []string{"", "ls"}, "junk^C\r\nls\r\n"},
		{"arrow keys", "l\x1b[A\x1b[Ds\x1b[1;5C\r", []string{"ls"}, "ls\r\n"},
		{"ss3 arrow", "l\x1bOAs\r", []string{"ls"}, "ls\r\n"},
		{"alt-x", "l\x1bxs\r", []string{"ls"}, "ls\r\n"},
		{"esc then enter", "ls\x1b\r", []string{"ls"}, "ls\r\n"},
		{"csi cut by enter", "ls\x1b[1\r", []string{"ls"}, "ls\r\n"},
		{"other controls", "l\x00\x01\x04\x07s\r", []string{"ls"}, "ls\r\n"},
		{"tab is a space", "ls\t/\r", []string{"ls /"}, "ls /\r\n"},
		{"too long", long + "yz\r", []string{long}, long + "\a\a\r\n"},
		{"too long then erase", long + "y\bz\r", []string{long[1:] + "z"}, long + "\a\b \bz\r\n"},
	}
	for _, tt := range tests {
		for _, oneByte := range []bool{false, true} {
			var r io.Reader = strings.NewReader(tt.in)
			if oneByte {
				r = iotest.OneByteReader(r)
			}
			var echo strings.Builder
			lines, err := readLines(r, &echo)
			if err != nil {
				t.Errorf("%s: error %v", tt.name, err)
			}
			if !slices.Equal(lines, tt.lines) {
				t.Errorf("%s (one byte %v): lines %q, want %q", tt.name, oneByte, lines, tt.lines)
			}
			if echo.String() != tt.echo {
				t.Errorf("%s (one byte %v): echo %q, want %q", tt.name, oneByte, echo.String(), tt.echo)
			}
		}
	}
}

// The "\n" of a "\r\n" split across reads, and across ReadLine calls, is
// still swallowed.
func TestLineReaderSplitCRLF(t *testing.T) {
	lr := NewLineReader(iotest.OneByteReader(strings.NewReader("a\r\nb\n")), io.Discard)
	for _, want := range []string{"a", "b"} {
		if got, err := lr.ReadLine(); got != want || err != nil {
			t.Fatalf("ReadLine() = %q, %v, want %q", got, err, want)
		}
	}
	if _, err := lr.ReadLine(); err != io.EOF {
		t.Fatalf("ReadLine() at end: error %v, want EOF", err)
	}
}

func TestLineReaderErrors(t *testing.T) {
	boom := errors.New("boom")
	lr := NewLineReader(io.MultiReader(strings.NewReader("ab"), iotest.ErrReader(boom)), io.Discard)
	if _, err := lr.ReadLine(); err != boom {
		t.Errorf("read error: got %v, want %v", err, boom)
	}
	lr = NewLineReader(strings.NewReader("ab\r"), errWriter{boom})
	if _, err := lr.ReadLine(); !errors.Is(err, boom) {
		t.Errorf("echo error: got %v, want %v", err, boom)
	}
}

type errWriter struct{ err error }

func (w errWriter) Write([]byte) (int, error) { return 0, w.err }

func FuzzLineReader(f *testing.F) {
	for _, s := range []string{"ls\r\n", "a\bb\x7f\x15c\x03\r", "\x1b[1;5Cx\x1bOA\r", "\x1b", "é\b\r"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var echo strings.Builder
		lines, err := readLines(iotest.OneByteReader(strings.NewReader(string(in))), &echo)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range lines {
			if len(l) > MaxLine {
				t.Fatalf("line of %d bytes", len(l))
			}
			for _, c := range []byte(l) {
				if c < 0x20 || c == 0x7f {
					t.Fatalf("line %q holds control byte %#x", l, c)
				}
			}
		}
		// The reader must not depend on how input is split.
		again, _ := readLines(strings.NewReader(string(in)), io.Discard)
		if !slices.Equal(lines, again) {
			t.Fatalf("one byte at a time %q, all at once %q", lines, again)
		}
	})
}
