package shell

import (
	"fmt"
	"io"
	"unicode/utf8"
)

// MaxLine is the longest line a LineReader accepts, in bytes.
const MaxLine = 1024

// Control bytes a LineReader acts on.
const (
	ctrlC     = 0x03
	backspace = 0x08
	tab       = 0x09
	ctrlU     = 0x15
	esc       = 0x1b
	del       = 0x7f
)

// escape-sequence parser states
const (
	stText = iota
	stEsc  // after ESC
	stCSI  // after ESC [: parameters until a final byte 0x40..0x7e
	stSS3  // after ESC O: one more byte
)

// LineReader reads lines typed on a raw serial terminal, doing the echo and
// editing a terminal in cooked mode would: backspace and DEL erase a
// character, Ctrl-U erases the line, Ctrl-C abandons it. Other control
// bytes and ANSI escape sequences (arrow keys, say) are dropped, and a tab
// becomes a space, so what is echoed is always what the line holds.
//
// A line ends at "\r", "\n" or "\r\n"; the end is echoed as "\r\n".
// Characters beyond MaxLine bytes ring the bell and are dropped.
type LineReader struct {
	r      io.Reader
	echo   io.Writer
	in     [64]byte
	pos, n int   // unread bytes are in[pos:n]
	err    error // from the read that filled in, reported once it is used up
	lastCR bool  // swallow the "\n" of a "\r\n"
	state  int
	line   []byte
	out    []byte // echo pending for one input chunk
}

// NewLineReader returns a LineReader reading from r and echoing to echo.
func NewLineReader(r io.Reader, echo io.Writer) *LineReader {
	return &LineReader{r: r, echo: echo}
}

// ReadLine returns the next line, without its end. After Ctrl-C it returns
// an empty line. At end of input a partial line is ended and returned
// first, then io.EOF.
func (lr *LineReader) ReadLine() (string, error) {
	lr.line = lr.line[:0]
	for {
		if lr.pos == lr.n {
			if err := lr.flush(); err != nil {
				return "", err
			}
			if err := lr.err; err != nil {
				if err == io.EOF && len(lr.line) > 0 {
					lr.out = append(lr.out, "\r\n"...)
					return string(lr.line), lr.flush()
				}
				return "", err
			}
			lr.pos = 0
			lr.n, lr.err = lr.r.Read(lr.in[:])
			continue
		}
		c := lr.in[lr.pos]
		lr.pos++
		if done := lr.edit(c); done {
			return string(lr.line), lr.flush()
		}
	}
}

func (lr *LineReader) flush() error {
	if len(lr.out) == 0 {
		return nil
	}
	_, err := lr.echo.Write(lr.out)
	lr.out = lr.out[:0]
	if err != nil {
		return fmt.Errorf("shell: echo: %w", err)
	}
	return nil
}

// edit applies one input byte and reports whether it ended the line.
func (lr *LineReader) edit(c byte) bool {
	lastCR := lr.lastCR
	lr.lastCR = false
	switch lr.state {
	case stEsc:
		switch {
		case c == '[':
			lr.state = stCSI
			return false
		case c == 'O':
			lr.state = stSS3
			return false
		case c >= 0x20:
			lr.state = stText // two-byte sequence: drop it
			return false
		}
		lr.state = stText // a control byte cuts the sequence short
	case stCSI:
		switch {
		case c >= 0x20 && c <= 0x3f: // parameter and intermediate bytes
			return false
		case c >= 0x40 && c <= 0x7e:
			lr.state = stText
			return false
		}
		lr.state = stText
	case stSS3:
		lr.state = stText
		if c >= 0x20 {
			return false
		}
	}

	switch c {
	case '\n':
		if lastCR {
			return false
		}
		fallthrough
	case '\r':
		lr.lastCR = c == '\r'
		lr.out = append(lr.out, "\r\n"...)
		return true
	case backspace, del:
		if len(lr.line) > 0 {
			_, size := utf8.DecodeLastRune(lr.line)
			lr.line = lr.line[:len(lr.line)-size]
			lr.out = append(lr.out, "\b \b"...)
		}
	case ctrlU:
		for len(lr.line) > 0 {
			_, size := utf8.DecodeLastRune(lr.line)
			lr.line = lr.line[:len(lr.line)-size]
			lr.out = append(lr.out, "\b \b"...)
		}
	case ctrlC:
		lr.line = lr.line[:0]
		lr.out = append(lr.out, "^C\r\n"...)
		return true
	case esc:
		lr.state = stEsc
	case tab:
		lr.add(' ')
	default:
		if c >= 0x20 {
			lr.add(c)
		}
	}
	return false
}

func (lr *LineReader) add(c byte) {
	if len(lr.line) >= MaxLine {
		lr.out = append(lr.out, '\a')
		return
	}
	lr.line = append(lr.line, c)
	lr.out = append(lr.out, c)
}
