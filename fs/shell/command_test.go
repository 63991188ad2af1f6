package shell

import (
	"fmt"
	"io"
	"strings"
	"testing"

	"fornax/fs/ns"
)

// TestCommandArgs checks that the shell enforces a Command's bounds and
// that every usage error reads "usage: NAME USAGE", whether the shell
// found it or the command did.
func TestCommandArgs(t *testing.T) {
	sh := New(ns.New(), nil)
	ran := func(w io.Writer, args []string) error {
		_, err := fmt.Fprintf(w, "ran %q\n", args)
		return err
	}
	sh.Add(Command{Name: "none", Help: "no arguments", Run: ran})
	sh.Add(Command{Name: "one", Usage: "x", Help: "one argument", MinArgs: 1, MaxArgs: 1, Run: ran})
	sh.Add(Command{Name: "some", Usage: "x [y]", Help: "one or two", MinArgs: 1, MaxArgs: 2, Run: ran})
	sh.Add(Command{Name: "many", Usage: "x...", Help: "one or more", MinArgs: 1, MaxArgs: Many, Run: ran})
	sh.Add(Command{Name: "picky", Usage: "add|rm name", Help: "checks its own", MinArgs: 2, MaxArgs: 2,
		Run: func(w io.Writer, args []string) error {
			if args[0] != "add" && args[0] != "rm" {
				return ErrUsage
			}
			return ran(w, args)
		}})
	sh.Register("old", "[x...]", "registered the old way", ran)
	for line, want := range map[string]string{
		"none":           `ran []` + "\n",
		"none a":         "usage: none\n",
		"none a > /x":    "usage: none\n",
		"one":            "usage: one x\n",
		"one a":          `ran ["a"]` + "\n",
		"one a b":        "usage: one x\n",
		"some a b":       `ran ["a" "b"]` + "\n",
		"some a b c":     "usage: some x [y]\n",
		"many":           "usage: many x...\n",
		"many a b c d e": `ran ["a" "b" "c" "d" "e"]` + "\n",
		"picky add n":    `ran ["add" "n"]` + "\n",
		"picky ad n":     "usage: picky add|rm name\n",
		"picky add":      "usage: picky add|rm name\n",
		"old":            `ran []` + "\n",
		"old a b":        `ran ["a" "b"]` + "\n",
		"cat":            "usage: cat path...\n",
	} {
		var out strings.Builder
		sh.Exec(line, &out)
		if out.String() != want {
			t.Errorf("Exec(%q) wrote %q, want %q", line, out.String(), want)
		}
	}
	// help ignores its arguments, as it always has.
	var out strings.Builder
	sh.Exec("help me", &out)
	if !strings.Contains(out.String(), "picky add|rm name  checks its own\n") {
		t.Errorf("Exec(%q) wrote %q", "help me", out.String())
	}
}

func TestAddPanics(t *testing.T) {
	ok := func(io.Writer, []string) error { return nil }
	for _, c := range []Command{
		{Name: "", Run: ok},
		{Name: "a b", Run: ok},
		{Name: "nil"},
		{Name: "neg", MinArgs: -1, Run: ok},
		{Name: "max", MaxArgs: -2, Run: ok},
		{Name: "inverted", MinArgs: 2, MaxArgs: 1, Run: ok},
		{Name: "ls", MaxArgs: Many, Run: ok},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Add(%+v) did not panic", c)
				}
			}()
			New(ns.New(), nil).Add(c)
		}()
	}
	New(ns.New(), nil).Add(Command{Name: "fine", MinArgs: 2, MaxArgs: 2, Run: ok})
}
