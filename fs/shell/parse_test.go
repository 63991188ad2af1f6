package shell

import (
	"slices"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		line     string
		args     []string
		redirect string
		err      string
	}{
		{line: ""},
		{line: "   \t "},
		{line: "# just a comment"},
		{line: "ls", args: []string{"ls"}},
		{line: "  ls  \t/dev  ", args: []string{"ls", "/dev"}},
		{line: "echo hello world > /dev/x", args: []string{"echo", "hello", "world"}, redirect: "/dev/x"},
		{line: "echo hello >/dev/x", args: []string{"echo", "hello"}, redirect: "/dev/x"},
		{line: "echo hello>/dev/x", args: []string{"echo", "hello"}, redirect: "/dev/x"},
		{line: "echo hi > /dev/x # note", args: []string{"echo", "hi"}, redirect: "/dev/x"},
		{line: `echo "a b" c`, args: []string{"echo", "a b", "c"}},
		{line: `echo 'a "b"'`, args: []string{"echo", `a "b"`}},
		{line: `echo "it's"`, args: []string{"echo", "it's"}},
		{line: `echo a"b c"d`, args: []string{"echo", "ab cd"}},
		{line: `echo "" x`, args: []string{"echo", "", "x"}},
		{line: `echo "a > b"`, args: []string{"echo", "a > b"}},
		{line: `echo "#x" y#z`, args: []string{"echo", "#x", "y#z"}},
		{line: `echo a #b c`, args: []string{"echo", "a"}},
		{line: `echo x > "/dev/a b"`, args: []string{"echo", "x"}, redirect: "/dev/a b"},
		{line: `echo "abc`, err: "unterminated quote"},
		{line: `echo 'abc" def`, err: "unterminated quote"},
		{line: "echo >", err: "missing file after >"},
		{line: "echo >  ", err: "missing file after >"},
		{line: "echo > # x", err: "missing file after >"},
		{line: `echo > ""`, err: "missing file after >"},
		{line: "echo >> x", err: "missing file after >"},
		{line: "echo > a b", err: "only one file may follow >"},
		{line: "echo > a > b", err: "only one file may follow >"},
		{line: "> x", err: "missing command before >"},
	}
	for _, tt := range tests {
		cmd, err := Parse(tt.line)
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("Parse(%q) error = %v, want %q", tt.line, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Parse(%q) error = %v", tt.line, err)
			continue
		}
		if !slices.Equal(cmd.Args, tt.args) || cmd.Redirect != tt.redirect {
			t.Errorf("Parse(%q) = %q > %q, want %q > %q", tt.line, cmd.Args, cmd.Redirect, tt.args, tt.redirect)
		}
	}
}

// quote renders a word so that Parse reads it back unchanged.
func quote(w string) string {
	if w == "" {
		return `""`
	}
	var b strings.Builder
	for _, part := range strings.SplitAfter(w, "'") {
		// Each part has at most one single quote, at its end.
		body, sq := strings.CutSuffix(part, "'")
		if body != "" {
			b.WriteString("'" + body + "'")
		}
		if sq {
			b.WriteString(`"'"`)
		}
	}
	return b.String()
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"", "ls /dev", `echo "a b" 'c d' > /dev/x`, "echo >", `"`, "a#b # c",
		"echo a>b", `x "" ''`, "\t>\t", "a'b'c\"d\"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		cmd, err := Parse(line)
		if err != nil {
			return
		}
		if len(cmd.Args) == 0 && cmd.Redirect != "" {
			t.Fatalf("Parse(%q): redirect %q without a command", line, cmd.Redirect)
		}
		quoted := strings.ContainsAny(line, `"'`)
		for _, w := range append(slices.Clone(cmd.Args), cmd.Redirect) {
			if quoted {
				continue
			}
			if strings.ContainsAny(w, " \t>") || strings.HasPrefix(w, "#") {
				t.Fatalf("Parse(%q): unquoted word %q holds a separator", line, w)
			}
		}
		if !quoted && slices.Contains(cmd.Args, "") {
			t.Fatalf("Parse(%q): empty word without quotes: %q", line, cmd.Args)
		}
		// Quoting the result must give it back.
		var b strings.Builder
		for _, w := range cmd.Args {
			b.WriteString(quote(w) + " ")
		}
		if cmd.Redirect != "" {
			b.WriteString("> " + quote(cmd.Redirect))
		}
		again, err := Parse(b.String())
		if err != nil || !slices.Equal(again.Args, cmd.Args) || again.Redirect != cmd.Redirect {
			t.Fatalf("Parse(%q) = %q > %q; requoted %q parses as %q > %q, %v",
				line, cmd.Args, cmd.Redirect, b.String(), again.Args, again.Redirect, err)
		}
	})
}
