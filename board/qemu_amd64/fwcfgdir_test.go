package qemu_amd64

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io/fs"
	"strings"
	"testing"
)

// dirEntry encodes one FWCfgFile entry (docs/specs/fw_cfg.rst).
func dirEntry(size uint32, sel uint16, name string) []byte {
	b := make([]byte, fwCfgDirEntrySize)
	binary.BigEndian.PutUint32(b[0:], size)
	binary.BigEndian.PutUint16(b[4:], sel)
	copy(b[8:], name)
	return b
}

// dir encodes a directory: its count, then the entries.
func dir(count uint32, entries ...[]byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, count)
	for _, e := range entries {
		b = append(b, e...)
	}
	return b
}

// A directory like QEMU's: the key among files QEMU adds itself.
var qemuDir = dir(3,
	dirEntry(0x10, 0x20, "etc/boot-fail-wait"),
	dirEntry(65, 0x21, "opt/fornax/key"),
	dirEntry(0x200, 0x22, "etc/e820"))

func TestFindFwCfgFile(t *testing.T) {
	e, err := findFwCfgFile(bytes.NewReader(qemuDir), "opt/fornax/key")
	if err != nil {
		t.Fatal(err)
	}
	if e != (fwCfgFileEntry{Size: 65, Select: 0x21, Name: "opt/fornax/key"}) {
		t.Errorf("entry %+v", e)
	}
}

// The search stops at the entry it wants: every byte read costs a VM exit.
func TestFindFwCfgFileReadsNoFurther(t *testing.T) {
	r := bytes.NewReader(qemuDir)
	if _, err := findFwCfgFile(r, "opt/fornax/key"); err != nil {
		t.Fatal(err)
	}
	if got, want := r.Len(), fwCfgDirEntrySize; got != want {
		t.Errorf("%d bytes left unread, want %d (the last entry)", got, want)
	}
}

func TestFindFwCfgFileMissing(t *testing.T) {
	_, err := findFwCfgFile(bytes.NewReader(qemuDir), "opt/fornax/nope")
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("error %v, want fs.ErrNotExist", err)
	}
	if !strings.Contains(err.Error(), "-fw_cfg name=opt/fornax/nope,file=FILE") {
		t.Errorf("error %q does not say how to give the file", err)
	}
	// A prefix or an empty directory is no match either.
	for _, d := range [][]byte{dir(0), dir(1, dirEntry(1, 0x20, "opt/fornax/keyring"))} {
		if _, err := findFwCfgFile(bytes.NewReader(d), "opt/fornax/key"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("directory % x: error %v, want fs.ErrNotExist", d[:4], err)
		}
	}
}

func TestFindFwCfgFileBroken(t *testing.T) {
	full := make([]byte, fwCfgDirEntrySize)
	for i := 8; i < len(full); i++ {
		full[i] = 'a'
	}
	binary.BigEndian.PutUint16(full[4:], 0x20)
	for _, c := range []struct {
		name string
		dir  []byte
		want string
	}{
		{"no device", bytes.Repeat([]byte{0xff}, 4+fwCfgDirEntrySize), "more than the 16352 selectors allow"},
		{"short count", []byte{0, 0}, "reading the directory's count: unexpected EOF"},
		{"short entry", dir(2, dirEntry(1, 0x20, "a"))[:4+fwCfgDirEntrySize+10], "reading directory entry 2 of 2: unexpected EOF"},
		{"no NUL", dir(1, full), "has no NUL"},
		{"selector below the files", dir(1, dirEntry(1, 0x19, "a")), `file "a" has selector 0x19, outside the file range 0x20-0x3fff`},
		{"selector above", dir(1, dirEntry(1, 0x4020, "a")), "selector 0x4020"},
	} {
		_, err := findFwCfgFile(bytes.NewReader(c.dir), "opt/fornax/key")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.want)
		}
		if errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: a broken directory is not a missing file: %v", c.name, err)
		}
	}
}

func TestParseFwCfgDirEntryLength(t *testing.T) {
	if _, err := parseFwCfgDirEntry(make([]byte, 63)); err == nil {
		t.Error("63 bytes accepted")
	}
	// 55 characters and the NUL fill the name exactly.
	name := strings.Repeat("n", fwCfgNameSize-1)
	e, err := parseFwCfgDirEntry(dirEntry(7, 0x3fff, name))
	if err != nil || e.Name != name || e.Select != 0x3fff || e.Size != 7 {
		t.Errorf("%+v, %v", e, err)
	}
}

func TestCheckFwCfgSize(t *testing.T) {
	e := fwCfgFileEntry{Size: 5000, Select: 0x21, Name: "opt/fornax/key"}
	err := checkFwCfgSize(e, 4096)
	if !errors.Is(err, ErrFwCfgTooLarge) || err.Error() != "fw_cfg file opt/fornax/key is 5000 bytes, limit 4096" {
		t.Errorf("error %v", err)
	}
	e.Size = 4096
	if err := checkFwCfgSize(e, 4096); err != nil {
		t.Errorf("at the limit: %v", err)
	}
	e.Size = 1 << 31
	if err := checkFwCfgSize(e, -1); err == nil {
		t.Error("a negative limit let a file through")
	}
}
