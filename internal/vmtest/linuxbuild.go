package vmtest

// Building the Linux guest: Debian's kernel and busybox-static,
// downloaded with apt-get (never installed) and packed into an initramfs
// by BuildLinuxGuest. Nothing of it is committed; the build is cached by
// kernel version. linux.go runs it.

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
)

// LinuxModules are the modules the guest loads (with their dependencies):
// the virtio-mmio transport, virtio-net, and 9P over TCP.
var LinuxModules = []string{"virtio_mmio", "virtio_net", "9pnet_fd", "9p"}

// LinuxCacheDir is where BuildLinuxGuest's results are kept between
// runs: the user's cache directory, fornax-linux.
func LinuxCacheDir() (string, error) {
	c, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(c, "fornax-linux"), nil
}

// linuxInit is the guest's /init. Kernel command-line words NAME=VALUE
// it does not know reach init as environment variables: fxip, fxname.
const linuxInit = `#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /lib/modules/order); do insmod /lib/modules/$m.ko || echo "init: insmod $m failed"; done
echo 1 > /proc/sys/kernel/printk
ip link set lo up
n=0
while ! ip link show eth0 >/dev/null 2>&1 && [ $n -lt 50 ]; do usleep 100000; n=$((n+1)); done
ip addr add ${fxip:-10.0.0.50/24} dev eth0
ip link set eth0 up
hostname ${fxname:-linux}
export PS1="${fxname:-linux}% "
echo "fornax-linux init done"
exec setsid cttyhack sh -c 'stty cols 4096 rows 50 2>/dev/null; exec sh'
`

// aptKernelPackage returns the kernel package linux-image-amd64 depends
// on, running apt-get update once if apt-cache knows nothing.
func aptKernelPackage() (string, error) {
	re := regexp.MustCompile(`Depends: (linux-image-[0-9][^\s]*)`)
	for try := 0; try < 2; try++ {
		out, _ := exec.Command("apt-cache", "depends", "linux-image-amd64").Output()
		if m := re.FindSubmatch(out); m != nil {
			return string(m[1]), nil
		}
		if try == 0 {
			if out, err := exec.Command("apt-get", "update").CombinedOutput(); err != nil {
				return "", fmt.Errorf("apt-get update: %v\n%s", err, out)
			}
		}
	}
	return "", errors.New("apt-cache depends linux-image-amd64: no kernel package")
}

// BuildLinuxGuest returns the kernel and initramfs of the Linux guest,
// building them under dir/<kernel version>/ unless already there: it
// downloads the current Debian kernel and busybox-static with
// `apt-get download`, unpacks them with dpkg-deb in a scratch folder and
// writes a gzipped newc initramfs (in Go) holding busybox, /init and the
// modules of LinuxModules in dependency order.
func BuildLinuxGuest(dir string) (kernel, initrd string, err error) {
	pkg, err := aptKernelPackage()
	if err != nil {
		return "", "", err
	}
	version := strings.TrimPrefix(pkg, "linux-image-")
	out := filepath.Join(dir, version)
	kernel, initrd = filepath.Join(out, "vmlinuz"), filepath.Join(out, "initrd.gz")
	if _, err1 := os.Stat(kernel); err1 == nil {
		if _, err2 := os.Stat(initrd); err2 == nil {
			return kernel, initrd, nil
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	scratch, err := os.MkdirTemp(dir, "build-")
	if err != nil {
		return "", "", err
	}
	defer os.RemoveAll(scratch)
	// apt as root warns that _apt cannot write here; it downloads anyway.
	os.Chmod(scratch, 0o755)
	dl := exec.Command("apt-get", "download", pkg, "busybox-static")
	dl.Dir = scratch
	if o, err := dl.CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("apt-get download %s busybox-static: %v\n%s", pkg, err, o)
	}
	debs, _ := filepath.Glob(filepath.Join(scratch, "*.deb"))
	if len(debs) != 2 {
		return "", "", fmt.Errorf("apt-get download: got %v", debs)
	}
	root := filepath.Join(scratch, "root")
	for _, d := range debs {
		if o, err := exec.Command("dpkg-deb", "-x", d, root).CombinedOutput(); err != nil {
			return "", "", fmt.Errorf("dpkg-deb -x %s: %v\n%s", d, err, o)
		}
	}
	busybox := filepath.Join(root, "bin", "busybox")
	mods, err := resolveModules(filepath.Join(root, "lib", "modules", version), busybox, LinuxModules)
	if err != nil {
		return "", "", err
	}

	tmp, err := os.MkdirTemp(dir, "out-")
	if err != nil {
		return "", "", err
	}
	defer os.RemoveAll(tmp)
	if err := writeInitramfs(filepath.Join(tmp, "initrd.gz"), busybox, mods); err != nil {
		return "", "", err
	}
	vmlinuz, err := os.ReadFile(filepath.Join(root, "boot", "vmlinuz-"+version))
	if err != nil {
		return "", "", err
	}
	if err := os.WriteFile(filepath.Join(tmp, "vmlinuz"), vmlinuz, 0o644); err != nil {
		return "", "", err
	}
	os.RemoveAll(out)
	if err := os.Rename(tmp, out); err != nil {
		return "", "", err
	}
	return kernel, initrd, nil
}

// module is one kernel module for the initramfs.
type module struct {
	name string
	data []byte // uncompressed .ko
}

// resolveModules finds the named modules under moddir and everything
// they depend on (the .modinfo depends= of each .ko), and returns them
// in loading order, dependencies first. .ko.xz files are decompressed
// with busybox.
func resolveModules(moddir, busybox string, want []string) ([]module, error) {
	norm := func(s string) string { return strings.ReplaceAll(s, "-", "_") }
	files := map[string]string{}
	filepath.WalkDir(moddir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		base := d.Name()
		for _, ext := range []string{".ko", ".ko.xz"} {
			if strings.HasSuffix(base, ext) {
				files[norm(strings.TrimSuffix(base, ext))] = p
			}
		}
		return nil
	})
	var order []module
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(name string) error
	visit = func(name string) error {
		name = norm(name)
		switch state[name] {
		case 1:
			return fmt.Errorf("module dependency cycle at %s", name)
		case 2:
			return nil
		}
		state[name] = 1
		p, ok := files[name]
		if !ok {
			return fmt.Errorf("module %s: not in %s (built in? check config-*)", name, moddir)
		}
		var data []byte
		var err error
		if strings.HasSuffix(p, ".xz") {
			data, err = exec.Command(busybox, "xzcat", p).Output()
		} else {
			data, err = os.ReadFile(p)
		}
		if err != nil {
			return fmt.Errorf("module %s: %v", name, err)
		}
		deps, err := modDepends(data)
		if err != nil {
			return fmt.Errorf("module %s: %v", name, err)
		}
		for _, d := range deps {
			if err := visit(d); err != nil {
				return err
			}
		}
		state[name] = 2
		order = append(order, module{name, data})
		return nil
	}
	for _, w := range want {
		if err := visit(w); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// modDepends returns the depends= entry of a module's .modinfo section.
func modDepends(ko []byte) ([]string, error) {
	f, err := elf.NewFile(bytes.NewReader(ko))
	if err != nil {
		return nil, err
	}
	s := f.Section(".modinfo")
	if s == nil {
		return nil, errors.New("no .modinfo section")
	}
	info, err := s.Data()
	if err != nil {
		return nil, err
	}
	for _, kv := range bytes.Split(info, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte("depends=")); ok {
			if len(v) == 0 {
				return nil, nil
			}
			return strings.Split(string(v), ","), nil
		}
	}
	return nil, nil
}

// cpioWriter writes a newc ("070701") cpio archive, the initramfs format.
type cpioWriter struct {
	w   io.Writer
	ino int
	err error
}

func (c *cpioWriter) entry(name string, mode uint32, data []byte, rdevMajor, rdevMinor int) {
	if c.err != nil {
		return
	}
	c.ino++
	nlink := 1
	if mode&syscall.S_IFMT == syscall.S_IFDIR {
		nlink = 2
	}
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rdevMajor, rdevMinor, len(name)+1, 0)
	var b bytes.Buffer
	b.WriteString(hdr)
	b.WriteString(name)
	b.WriteByte(0)
	for b.Len()%4 != 0 {
		b.WriteByte(0)
	}
	b.Write(data)
	for b.Len()%4 != 0 {
		b.WriteByte(0)
	}
	_, c.err = c.w.Write(b.Bytes())
}

func (c *cpioWriter) close() error {
	c.entry("TRAILER!!!", 0, nil, 0, 0)
	return c.err
}

// writeInitramfs writes the guest's gzipped initramfs to path.
func writeInitramfs(path, busybox string, mods []module) error {
	bb, err := os.ReadFile(busybox)
	if err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	bw := bufio.NewWriter(f)
	zw, _ := gzip.NewWriterLevel(bw, gzip.BestSpeed)
	c := &cpioWriter{w: zw}
	for _, d := range []string{"bin", "dev", "proc", "sys", "mnt", "tmp", "lib", "lib/modules"} {
		c.entry(d, syscall.S_IFDIR|0o755, nil, 0, 0)
	}
	// the initial console, before devtmpfs is mounted
	c.entry("dev/console", syscall.S_IFCHR|0o600, nil, 5, 1)
	c.entry("bin/busybox", syscall.S_IFREG|0o755, bb, 0, 0)
	c.entry("bin/sh", syscall.S_IFLNK|0o777, []byte("busybox"), 0, 0)
	c.entry("init", syscall.S_IFREG|0o755, []byte(linuxInit), 0, 0)
	var order []string
	for _, m := range mods {
		c.entry("lib/modules/"+m.name+".ko", syscall.S_IFREG|0o644, m.data, 0, 0)
		order = append(order, m.name)
	}
	c.entry("lib/modules/order", syscall.S_IFREG|0o644, []byte(strings.Join(order, "\n")+"\n"), 0, 0)
	if err := c.close(); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return f.Close()
}
