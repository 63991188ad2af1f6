package qemu_amd64

// Host tests that fence in the TamaGo internals (tamago_internals.go,
// which itself builds only with GOOS=tamago, so it is read as source).

import (
	"bufio"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

const (
	internalsFile = "board/qemu_amd64/tamago_internals.go"
	tamagoModule  = "github.com/usbarmory/tamago"
	repoRoot      = "../.."
)

// TestTamagoVersionChecked fails when go.mod requires a tamago other
// than the one the linked symbols were checked against.
func TestTamagoVersionChecked(t *testing.T) {
	required, replaced := goModTamago(t, filepath.Join(repoRoot, "go.mod"))
	checked := checkedVersion(t, filepath.Join(repoRoot, internalsFile))
	if required != checked {
		t.Fatalf("go.mod requires tamago %s, but %s was checked against %s: recheck the symbols listed there (docs/tamago.md), then update checkedTamago",
			required, internalsFile, checked)
	}
	if replaced {
		t.Fatalf("go.mod replaces tamago %s: %s was checked against the released %s only: recheck the symbols listed there (docs/tamago.md) against the replacement",
			required, internalsFile, checked)
	}
}

// TestLinknamesFenced fails when a go:linkname lives anywhere but in
// tamago_internals.go.
func TestLinknamesFenced(t *testing.T) {
	err := filepath.WalkDir(repoRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != repoRoot && (strings.HasPrefix(name, ".") || name == "build" || name == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") && !strings.HasSuffix(name, ".s") {
			return nil
		}
		rel, err := filepath.Rel(repoRoot, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if strings.HasSuffix(name, ".s") {
			checkAsmSymbols(t, rel, path)
			return nil
		}
		if rel == internalsFile {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for i, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "//go:linkname ") {
				t.Errorf("%s:%d: go:linkname outside %s: move it there, with what it is for (docs/tamago.md)", rel, i+1, internalsFile)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// entryFile is the one assembly file that names runtime symbols, and
// entrySymbols the ones it may name (docs/tamago.md, "Memory layout").
const entryFile = "board/qemu_amd64/entry_amd64.s"

var entrySymbols = map[string]bool{
	"runtime∕goos·RamSize": true, // written before cpuinit reads it
	"runtime·end":          true, // the end of the image, for the least RAM
	"_rt0_amd64_tamago":    true, // tamago's entry, jumped to
}

var asmRuntimeSym = regexp.MustCompile(`runtime[^\s(),$]*·\w+|_rt0_\w+`)

// checkAsmSymbols fails when an assembly file other than entryFile names a
// runtime symbol, or entryFile one it was not checked for.
func checkAsmSymbols(t *testing.T, rel, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i, line := range strings.Split(string(b), "\n") {
		code, _, _ := strings.Cut(line, "//")
		for _, sym := range asmRuntimeSym.FindAllString(code, -1) {
			if rel != entryFile {
				t.Errorf("%s:%d: %s names runtime symbol %s: only %s may (docs/tamago.md)", rel, i+1, rel, sym, entryFile)
			} else if !entrySymbols[sym] {
				t.Errorf("%s:%d: %s is not among the symbols checked against tamago (entrySymbols): check it, then add it there and to docs/tamago.md", rel, i+1, sym)
			}
		}
	}
}

// goModTamago returns the tamago version go.mod requires, and whether a
// replace directive swaps the module.
func goModTamago(t *testing.T, path string) (version string, replaced bool) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	block := "" // the directive of the ( ... ) block we are in
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "//")
		fields := strings.Fields(line)
		var directive string
		switch {
		case len(fields) == 0:
			continue
		case block != "" && fields[0] == ")":
			block = ""
			continue
		case block != "":
			directive = block
		case len(fields) == 2 && fields[1] == "(":
			block = fields[0]
			continue
		default:
			directive, fields = fields[0], fields[1:]
		}
		if len(fields) < 2 || fields[0] != tamagoModule {
			continue
		}
		switch directive {
		case "require":
			version = fields[1]
		case "replace":
			replaced = true
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if version == "" {
		t.Fatalf("%s: no require of %s", path, tamagoModule)
	}
	return version, replaced
}

// checkedVersion returns the value of the constant checkedTamago in the
// Go file at path.
func checkedVersion(t *testing.T, path string) string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	for _, decl := range f.Decls {
		gd, ok := decl.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, n := range vs.Names {
				if n.Name != "checkedTamago" || i >= len(vs.Values) {
					continue
				}
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					t.Fatalf("%s: checkedTamago is not a string literal", path)
				}
				v, err := strconv.Unquote(lit.Value)
				if err != nil {
					t.Fatal(err)
				}
				return v
			}
		}
	}
	t.Fatalf("%s: no const checkedTamago", path)
	return ""
}

func TestGoModTamago(t *testing.T) {
	for _, tc := range []struct {
		mod      string
		version  string
		replaced bool
	}{
		{"module m\nrequire github.com/usbarmory/tamago v1.2.3\n", "v1.2.3", false},
		{"module m\n\ntool github.com/usbarmory/tamago/cmd/tamago\n\nrequire (\n\tgolang.org/x/sys v0.26.0\n\tgithub.com/usbarmory/tamago v1.27.0 // indirect\n)\n", "v1.27.0", false},
		{"module m\nrequire github.com/usbarmory/tamago v1.26.0\nreplace github.com/usbarmory/tamago => ../tamago\n", "v1.26.0", true},
		{"module m\nrequire github.com/usbarmory/tamago v1.26.0\nreplace (\n\tgithub.com/usbarmory/tamago v1.26.0 => github.com/x/tamago v1.0.0\n)\n", "v1.26.0", true},
	} {
		path := filepath.Join(t.TempDir(), "go.mod")
		if err := os.WriteFile(path, []byte(tc.mod), 0o644); err != nil {
			t.Fatal(err)
		}
		if v, r := goModTamago(t, path); v != tc.version || r != tc.replaced {
			t.Errorf("goModTamago(%q) = %q, %v; want %q, %v", tc.mod, v, r, tc.version, tc.replaced)
		}
	}
}
