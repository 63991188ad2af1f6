package shell

import (
	"errors"
	"strings"
)

// Line is a parsed command line.
type Line struct {
	Args     []string // the command name and its arguments
	Redirect string   // file to receive the output, or ""
}

var (
	errQuote        = errors.New("unterminated quote")
	errNoFile       = errors.New("missing file after >")
	errAfterFile    = errors.New("only one file may follow >")
	errNoCommandOut = errors.New("missing command before >")
)

// Parse splits a line into words at unquoted spaces and tabs. Text in
// double or single quotes is taken literally, spaces and all; quoted and
// unquoted text next to each other form one word, and "" is an empty word.
// There are no escapes. An unquoted '#' at the start of a word begins a
// comment. An unquoted '>' sends the output to the one word after it, which
// must end the line. A blank line gives the zero Line.
func Parse(line string) (Line, error) {
	var (
		cmd      Line
		words    []string
		word     strings.Builder
		inWord   bool // word holds a word, possibly empty and quoted
		redirect bool // a '>' has been seen
	)
	end := func() {
		if inWord {
			words = append(words, word.String())
			word.Reset()
			inWord = false
		}
	}
	i := 0
loop:
	for i < len(line) {
		c := line[i]
		switch {
		case c == ' ' || c == '\t':
			end()
		case c == '#' && !inWord:
			break loop
		case c == '"' || c == '\'':
			j := strings.IndexByte(line[i+1:], c)
			if j < 0 {
				return Line{}, errQuote
			}
			word.WriteString(line[i+1 : i+1+j])
			inWord = true
			i += j + 2
			continue
		case c == '>':
			end()
			if redirect {
				if len(words) == 0 {
					return Line{}, errNoFile
				}
				return Line{}, errAfterFile
			}
			redirect = true
			cmd.Args, words = words, nil
		default:
			word.WriteByte(c)
			inWord = true
		}
		i++
	}
	end()
	if !redirect {
		cmd.Args = words
		return cmd, nil
	}
	switch {
	case len(words) == 0 || words[0] == "":
		return Line{}, errNoFile
	case len(words) > 1:
		return Line{}, errAfterFile
	case len(cmd.Args) == 0:
		return Line{}, errNoCommandOut
	}
	cmd.Redirect = words[0]
	return cmd, nil
}
