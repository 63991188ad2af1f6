package vmtest

// Host tests (no QEMU, no root): scripts/qemu-args is the one QEMU command
// line, and the README, the guide, `make qemu`, the launcher and QEMUArgs
// all use it.

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// repoRoot returns the root of this repository.
func repoRoot() string { return filepath.Join(filepath.Dir(Script()), "..") }

// lines splits a program's output, one argument a line.
func lines(out []byte) []string {
	return strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
}

// The VMs of the tests run with exactly this line.
func TestQEMUArgs(t *testing.T) {
	base := func(accel, mem, kernel, cmdline string) []string {
		return []string{"-M", "microvm", "-global", "virtio-mmio.force-legacy=false",
			"-accel", accel, "-cpu", "max", "-m", mem, "-smp", "1",
			"-nographic", "-no-reboot", "-monitor", "none", "-serial", "stdio",
			"-kernel", kernel, "-append", cmdline}
	}
	tests := []struct {
		cfg  Config
		want []string
	}{
		{Config{Kernel: "/k/fornax.elf", Name: "fornax-01"},
			base("tcg", "128M", "/k/fornax.elf", "name=fornax-01")},
		{Config{Kernel: "/k dir/-x.elf", Name: "n", Append: []string{"bogus=1", "ip=10.0.0.2/24"},
			Accel: "kvm", Memory: "256M", Args: []string{"-netdev", "tap,id=n0", "-device", ""}},
			append(base("kvm", "256M", "/k dir/-x.elf", "name=n bogus=1 ip=10.0.0.2/24"),
				"-netdev", "tap,id=n0", "-device", "")},
	}
	for _, tt := range tests {
		if got := QEMUArgs(tt.cfg); !slices.Equal(got, tt.want) {
			t.Errorf("QEMUArgs(%+v) =\n%q\nwant\n%q", tt.cfg, got, tt.want)
		}
	}
}

// docQEMULines returns the QEMU command lines inside the code blocks of
// a Markdown file, backslash-continued lines joined, as words.
func docQEMULines(t *testing.T, file string) [][]string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var found [][]string
	inBlock, cmd := false, ""
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(strings.TrimSpace(line), "```"):
			inBlock = !inBlock
			continue
		case !inBlock:
			continue
		case cmd == "" && !strings.HasPrefix(line, "qemu-system-x86_64 "):
			continue
		}
		cmd += line
		if strings.HasSuffix(cmd, "\\") {
			cmd = strings.TrimSuffix(cmd, "\\")
			continue
		}
		found = append(found, shellWords(t, cmd))
		cmd = ""
	}
	return found
}

// shellWords splits a command line into words as the shell does, for
// the quoting the docs use: '...' and "..." without escapes or $.
func shellWords(t *testing.T, s string) []string {
	t.Helper()
	var words []string
	var w strings.Builder
	inWord := false
	var quote rune
	for _, c := range s {
		switch {
		case quote != 0 && c == quote:
			quote = 0
		case quote != 0:
			w.WriteRune(c)
		case c == '\'' || c == '"':
			quote, inWord = c, true
		case c == ' ' || c == '\t':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		case strings.ContainsRune("\\$`", c):
			t.Fatalf("%q: the docs' QEMU line has %q, which this test does not parse", s, c)
		default:
			w.WriteRune(c)
			inWord = true
		}
	}
	if quote != 0 {
		t.Fatalf("%q: unterminated quote", s)
	}
	if inWord {
		words = append(words, w.String())
	}
	return words
}

// The README and the guide show the line of scripts/qemu-args for
// build/fornax.elf and name=fornax-01.
func TestQEMUArgsDocs(t *testing.T) {
	want := append([]string{"qemu-system-x86_64"},
		QEMUArgs(Config{Kernel: "build/fornax.elf", Name: "fornax-01"})...)
	for _, doc := range []string{"README.md", "docs/guide.md"} {
		found := docQEMULines(t, filepath.Join(repoRoot(), doc))
		if len(found) == 0 {
			t.Errorf("%s: no qemu-system-x86_64 command line in a code block", doc)
		}
		for _, got := range found {
			if !slices.Equal(got, want) {
				t.Errorf("%s shows the QEMU line\n%q\nscripts/qemu-args prints\n%q", doc, got, want)
			}
		}
	}
}

// `make qemu` runs QEMU with the line of scripts/qemu-args.
func TestQEMUArgsMake(t *testing.T) {
	// Not this make's flags and variables, if a make runs this test.
	var env []string
	for _, e := range os.Environ() {
		switch strings.SplitN(e, "=", 2)[0] {
		case "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "QEMU", "ACCEL", "APPEND":
		default:
			env = append(env, e)
		}
	}
	for _, tt := range []struct {
		vars []string
		cfg  Config
	}{
		{nil, Config{Kernel: "build/fornax.elf", Name: "fornax-01"}},
		{[]string{"ACCEL=kvm", "APPEND=name=fornax-07 ip=10.0.0.8/24 gw=10.0.0.1"},
			Config{Kernel: "build/fornax.elf", Name: "fornax-07", Accel: "kvm", Append: []string{"ip=10.0.0.8/24", "gw=10.0.0.1"}}},
	} {
		// -o: neither build the kernel nor look for QEMU; QEMU prints
		// its arguments, one a line.
		args := append([]string{"-s", "--no-print-directory", "-C", repoRoot(),
			"-o", "kernel", "-o", "check-qemu", "qemu", `QEMU=printf '%s\n'`}, tt.vars...)
		cmd := exec.Command("make", args...)
		cmd.Env = env
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("make %q: %v", args, err)
		}
		if got, want := lines(out), QEMUArgs(tt.cfg); !slices.Equal(got, want) {
			t.Errorf("make qemu %q runs QEMU with\n%q\nwant (scripts/qemu-args)\n%q", tt.vars, got, want)
		}
	}
}

// scripts/run-two-qemu.sh runs QEMU with the line of scripts/qemu-args,
// console on a socket and its memory (--mem), plus its NIC, key and
// daemon options.
func TestQEMUArgsLauncher(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "a,b.key") // a comma QEMU must see doubled
	if err := os.WriteFile(key, []byte("00\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	kernel := filepath.Join(dir, "fornax-cluster.elf")
	for _, withKey := range []bool{false, true} {
		args := []string{"--print-qemu-args", "-n", "2", "-k", kernel, "--dir", dir, "--append", "x=1 y"}
		mem := "128M" // the launcher's default
		if withKey {
			mem = "64M"
			args = append(args, "--key", key, "--mem", mem)
		}
		out, err := exec.Command(Script(), args...).Output()
		if err != nil {
			t.Fatalf("run-two-qemu.sh %q: %v", args, err)
		}
		vms := strings.Split(strings.TrimSuffix(string(out), "\n\n"), "\n\n")
		if len(vms) != 2 {
			t.Fatalf("run-two-qemu.sh %q printed %d VMs, want 2:\n%s", args, len(vms), out)
		}
		for i, vm := range vms {
			n := Name(i + 1)
			extra := []string{"-netdev", "tap,id=net0,ifname=" + TapName(i+1) + ",script=no,downscript=no",
				"-device", "virtio-net-device,netdev=net0,mac=" + VMMAC(i+1).String()}
			if withKey {
				extra = append(extra, "-fw_cfg", "name=opt/fornax/key,file="+strings.ReplaceAll(key, ",", ",,"))
			}
			extra = append(extra, "-daemonize", "-pidfile", filepath.Join(dir, n+".pid"))
			src := append([]string{"--accel", "tcg", "--mem", mem, "--console", filepath.Join(dir, n+".sock"), filepath.Join(dir, n+".log"),
				"--", kernel, "name=" + n + " ip=" + Addr(i+1) + "/24 gw=10.0.0.1 x=1 y"}, extra...)
			wantOut, err := exec.Command(qemuArgsScript(), src...).Output()
			if err != nil {
				t.Fatalf("qemu-args %q: %v", src, err)
			}
			if got, want := lines([]byte(vm)), lines(wantOut); !slices.Equal(got, want) {
				t.Errorf("run-two-qemu.sh %q runs %s with\n%q\nwant (scripts/qemu-args)\n%q", args, n, got, want)
			}
		}
	}
}
