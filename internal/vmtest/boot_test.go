package vmtest

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// kernel returns the image named by env, or skips loudly: `make test`
// sets these after building both images.
func kernel(t *testing.T, env string) string {
	t.Helper()
	k := os.Getenv(env)
	if k == "" {
		t.Skipf("VM TEST SKIPPED: %s is not set; `make test` builds the images and sets it", env)
	}
	return k
}

func startVM(t *testing.T, cfg Config) *VM {
	t.Helper()
	vm, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		vm.Kill()
		if t.Failed() {
			t.Logf("console of %s:\n%s", vm.Name, vm.Log())
		}
	})
	return vm
}

var (
	bannerRE = regexp.MustCompile(`^fornax \S+ ready in (\d+) ms$`)
	uptimeRE = regexp.MustCompile(`\((\d+\.\d{3}) s\)`)
)

func TestBootConsole(t *testing.T) {
	k := kernel(t, "FORNAX_KERNEL")
	vm := startVM(t, Config{Kernel: k, Name: "fornax-01", Append: []string{"bogus=1"}})
	banner, err := vm.WaitReady(30 * time.Second)
	host := time.Since(vm.Started)
	if err != nil {
		t.Fatal(err)
	}
	m := bannerRE.FindStringSubmatch(banner)
	if m == nil {
		t.Fatalf("banner %q does not match %v", banner, bannerRE)
	}
	t.Logf("boot to prompt: guest %s ms, host %d ms from QEMU start", m[1], host.Milliseconds())
	if !strings.Contains(vm.Log(), `warning: bootcfg: ignoring unknown key "bogus"`) {
		t.Errorf("no warning for an unknown command-line key in:\n%s", vm.Log())
	}

	for _, tc := range []struct {
		typed string // what is typed, without Enter
		want  string // regexp for the whole answer
	}{
		{"ls /", `(?s)^(.*\n)?dev/\n(.*\n)?proc/\n(.*)$`},
		{"cat /dev/sysname", `^fornax-01\n$`},
		{"uptime", `^up \d\d:\d\d:\d\d \(\d+\.\d{3} s\)\n$`},
		{"foo", `^unknown command: foo\n$`},
		{"cat /nope", `^cat: /nope: file does not exist\n$`},
		{"ls /nope", `^ls: /nope: file does not exist\n$`},
		{"cat /dev/time", `^ *\d+ +\d+ +\d+ +1000000000 \n$`},
		{"date", `^\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d UTC \d{4}\n$`},
		{"mem", `^total \d+[KMG]?\nused  \d+[KMG]?\nfree  \d+[KMG]?\n$`},
		{"echo hello > /dev/sysname", `^echo: /dev/sysname: .*\n$`},
		{"", `^$`},
		// backspace (DEL) corrects a typo; the terminal sees "\b \b"
		{"cat /dev/sysnamX\x7fe", `^fornax-01\n$`},
	} {
		got, err := vm.Command(tc.typed, 10*time.Second)
		if err != nil {
			t.Fatalf("%q: %v", tc.typed, err)
		}
		if !regexp.MustCompile(tc.want).MatchString(got) {
			t.Errorf("%q: got %q, want match for %s", tc.typed, got, tc.want)
		}
	}
}

// TestClock checks the guest clock against the host's: over a 2 s host
// interval the guest's uptime advances 2 s ± 2 %. The bounds account for
// the round trips of the two console commands.
func TestClock(t *testing.T) {
	k := kernel(t, "FORNAX_KERNEL")
	vm := startVM(t, Config{Kernel: k, Name: "fornax-01"})
	if _, err := vm.WaitReady(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	sample := func() (guest float64, sent, got time.Time) {
		sent = time.Now()
		out, err := vm.Command("uptime", 10*time.Second)
		got = time.Now()
		if err != nil {
			t.Fatal(err)
		}
		m := uptimeRE.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("uptime: %q", out)
		}
		guest, _ = strconv.ParseFloat(m[1], 64)
		return
	}
	g1, s1, r1 := sample()
	time.Sleep(2 * time.Second)
	g2, s2, r2 := sample()
	dg := g2 - g1
	lo, hi := s2.Sub(r1).Seconds(), r2.Sub(s1).Seconds()
	t.Logf("guest advanced %.3f s; host interval between %.3f and %.3f s", dg, lo, hi)
	if dg < lo*0.98 || dg > hi*1.02 {
		t.Errorf("guest clock advanced %.3f s over a host interval of %.3f..%.3f s (±2%%)", dg, lo, hi)
	}
}
