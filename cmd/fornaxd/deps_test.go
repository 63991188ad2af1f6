package main

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// goList runs `go list args...` in this package's directory and returns
// its lines.
func goList(t *testing.T, args ...string) []string {
	t.Helper()
	goTool := "go"
	if root := runtime.GOROOT(); root != "" {
		goTool = filepath.Join(root, "bin", "go")
	}
	out, err := exec.Command(goTool, append([]string{"list"}, args...)...).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("go list %s: %v\n%s", strings.Join(args, " "), err, ee.Stderr)
		}
		t.Fatalf("go list %s: %v", strings.Join(args, " "), err)
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}

// TestImportsPointDown: imports run from programs down to the packages
// they use, never back up. fornaxd has no console, so it links neither
// the console's line editor (fs/shell) nor its commands; and no
// package under internal/, below all others, imports the cluster.
func TestImportsPointDown(t *testing.T) {
	deps := goList(t, "-deps", ".")
	if !slices.Contains(deps, "fornax/cluster") {
		t.Fatalf("go list -deps: no fornax/cluster among %q: the list is wrong", deps)
	}
	for _, p := range []string{"fornax/fs/shell", "fornax/kernel/commands"} {
		if slices.Contains(deps, p) {
			t.Errorf("fornaxd links %s", p)
		}
	}
	for _, line := range goList(t, "-f", `{{.ImportPath}}:{{range .Imports}} {{.}}{{end}}`, "fornax/internal/...") {
		pkg, imports, _ := strings.Cut(line, ":")
		if slices.Contains(strings.Fields(imports), "fornax/cluster") {
			t.Errorf("%s imports fornax/cluster", pkg)
		}
	}
}
