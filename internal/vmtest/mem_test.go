package vmtest

import (
	"debug/elf"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"fornax/internal/units"
)

var tooLittleRE = regexp.MustCompile(`fornax: QEMU gave (\d+) MB of RAM, this kernel needs (\d+) MB: run QEMU with -m (\d+)M or more`)

// TestMemory boots the cluster image with several -m sizes: the board
// lays memory out from what QEMU gives (board/qemu_amd64/layout.go).
// Given too little, the kernel says how much it needs, on the console,
// and QEMU exits; given that much, it boots, and two such VMs form a
// cluster; so do 32M, 64M and 1G. The image's zero-filled part (bss)
// must stay small: QEMU's loader writes all of it (scripts/drbg-overlay).
func TestMemory(t *testing.T) {
	k := kernel(t, "FORNAX_KERNEL_CLUSTER")
	if zeros := imageZeros(t, k); zeros > 1<<20 {
		t.Errorf("%s: %d bytes of its loaded segments are zeros QEMU writes (memsz beyond filesz), want under 1 MiB: is the drbg overlay gone?", k, zeros)
	} else {
		t.Logf("%s: %d bytes of bss", k, zeros)
	}

	// tooLittle boots with mem MB and returns the MB the kernel asks for.
	tooLittle := func(mem int) int {
		t.Helper()
		vm := startVM(t, Config{Kernel: k, Name: "fornax-01", Memory: fmt.Sprintf("%dM", mem)})
		out, err := vm.Expect("or more\n", 30*time.Second)
		m := tooLittleRE.FindStringSubmatch(out)
		if err != nil || m == nil {
			t.Fatalf("-m %dM: no complaint about memory (%v):\n%s", mem, err, out)
		}
		if m[1] != strconv.Itoa(mem) || m[2] != m[3] {
			t.Errorf("-m %dM: %q", mem, m[0])
		}
		// Then the CPU faults and QEMU (-no-reboot) exits.
		if out, err := vm.Expect("never printed", 30*time.Second); err == nil || !strings.Contains(err.Error(), "console closed") {
			t.Errorf("-m %dM: QEMU still runs after the complaint (%v): %q", mem, err, out)
		}
		need, _ := strconv.Atoi(m[2])
		return need
	}
	least := tooLittle(16)
	if least > 32 {
		t.Fatalf("the kernel asks for -m %dM: want at most 32M", least)
	}
	if got := tooLittle(least - 1); got != least {
		t.Errorf("with -m %dM the kernel asks for %dM, with -m 32M for %dM", least-1, got, least)
	}
	t.Logf("the least RAM: -m %dM", least)

	for _, mem := range []string{fmt.Sprintf("%dM", least), "32M", "64M", "1G"} {
		t.Run(mem, func(t *testing.T) {
			mb := sizeMB(t, mem)
			lan := startLANOpts(t, k, 2, Options{Memory: mem})
			// The runtime has all but 4 MB below it and 4 MB of DMA
			// buffers above it (layout.go).
			want := "total " + units.Bytes(uint64(mb-8)<<20) + "\n"
			if got := command(t, lan.VMs[0], "mem"); !strings.HasPrefix(got, want) {
				t.Errorf("-m %s: mem says %q, want %q first", mem, got, want)
			}
			if got := command(t, lan.VMs[0], "cat /dev/kmesg"); !strings.Contains(got, fmt.Sprintf("mem: QEMU gave %dM of RAM: runtime 0x400000-", mb)) {
				t.Errorf("-m %s: no layout line in /dev/kmesg:\n%s", mem, got)
			}
			deadline := time.Now().Add(30 * time.Second)
			for i, vm := range lan.VMs {
				other := Name(2 - i)
				for {
					peers, err := PeerStatus(command(t, vm, "cat /cluster/view"))
					if err != nil {
						t.Fatal(err)
					}
					if peers[other] == "online" {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("-m %s: %s does not list %s online: %v", mem, vm.Name, other, peers)
					}
					time.Sleep(500 * time.Millisecond)
				}
			}
		})
	}
}

// imageZeros returns the bytes of an ELF's loaded segments that are
// not in the file (bss), which QEMU's loader writes as zeros.
func imageZeros(t *testing.T, path string) uint64 {
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var z uint64
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD {
			z += p.Memsz - p.Filesz
		}
	}
	return z
}

// sizeMB returns the MB of a QEMU -m size like 57M or 1G.
func sizeMB(t *testing.T, size string) int {
	n, err := strconv.Atoi(size[:len(size)-1])
	if err != nil {
		t.Fatalf("size %q", size)
	}
	if strings.HasSuffix(size, "G") {
		return n << 10
	}
	return n
}
