package qemu_amd64

// The fw_cfg file directory, parsed without port I/O so that the host
// tests it (this file has no build tag; fwcfg.go reads the device).

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
)

// QEMU docs/specs/fw_cfg.rst, "File Directory":
//
//	struct FWCfgFiles { be32 count; struct FWCfgFile f[]; };
//	struct FWCfgFile  { be32 size; be16 select; be16 reserved; char name[56]; };
const (
	fwCfgDirEntrySize = 64
	fwCfgNameSize     = 56

	// "Selector Register Behavior": the low 14 bits of a selector name
	// an item (FW_CFG_ENTRY_MASK); files take the selectors from
	// FW_CFG_FILE_FIRST up.
	fwCfgFileFirst = 0x20
	fwCfgEntryMask = 0x3fff

	// So no directory can list more files than there are selectors for
	// them: a larger count means a broken device, or none (all ones).
	fwCfgMaxFiles = fwCfgEntryMask + 1 - fwCfgFileFirst
)

// fwCfgFileEntry is one entry of the file directory.
type fwCfgFileEntry struct {
	Size   uint32
	Select uint16
	Name   string
}

// parseFwCfgDirEntry decodes one 64-byte directory entry.
func parseFwCfgDirEntry(b []byte) (fwCfgFileEntry, error) {
	if len(b) != fwCfgDirEntrySize {
		return fwCfgFileEntry{}, fmt.Errorf("fw_cfg: directory entry of %d bytes, want %d", len(b), fwCfgDirEntrySize)
	}
	name := b[8:]
	n := 0
	for n < len(name) && name[n] != 0 {
		n++
	}
	if n == len(name) {
		return fwCfgFileEntry{}, fmt.Errorf("fw_cfg: directory entry's name has no NUL in its %d bytes", fwCfgNameSize)
	}
	e := fwCfgFileEntry{
		Size:   binary.BigEndian.Uint32(b[0:4]),
		Select: binary.BigEndian.Uint16(b[4:6]),
		Name:   string(name[:n]),
	}
	if e.Select < fwCfgFileFirst || e.Select > fwCfgEntryMask {
		return fwCfgFileEntry{}, fmt.Errorf("fw_cfg: file %q has selector %#x, outside the file range %#x-%#x", e.Name, e.Select, fwCfgFileFirst, fwCfgEntryMask)
	}
	return e, nil
}

// fwCfgNoFile reports a file missing from the directory; it is
// fs.ErrNotExist to errors.Is.
type fwCfgNoFile struct {
	name  string
	files uint32
}

func (e fwCfgNoFile) Error() string {
	return fmt.Sprintf("fw_cfg: no file %s among %d (QEMU gives one with -fw_cfg name=%s,file=FILE)", e.name, e.files, e.name)
}

func (e fwCfgNoFile) Is(target error) bool { return target == fs.ErrNotExist }

// findFwCfgFile reads the file directory from dir (the bytes of item
// FW_CFG_FILE_DIR, in order) until it finds the entry called name. It
// reads no further than that entry: on the device every byte is a port
// read, a VM exit.
func findFwCfgFile(dir io.Reader, name string) (fwCfgFileEntry, error) {
	var count [4]byte
	if _, err := io.ReadFull(dir, count[:]); err != nil {
		return fwCfgFileEntry{}, fmt.Errorf("fw_cfg: reading the directory's count: %w", err)
	}
	n := binary.BigEndian.Uint32(count[:])
	if n > fwCfgMaxFiles {
		return fwCfgFileEntry{}, fmt.Errorf("fw_cfg: directory lists %d files, more than the %d selectors allow: is there a fw_cfg device?", n, fwCfgMaxFiles)
	}
	var b [fwCfgDirEntrySize]byte
	for i := uint32(0); i < n; i++ {
		if _, err := io.ReadFull(dir, b[:]); err != nil {
			return fwCfgFileEntry{}, fmt.Errorf("fw_cfg: reading directory entry %d of %d: %w", i+1, n, err)
		}
		e, err := parseFwCfgDirEntry(b[:])
		if err != nil {
			return fwCfgFileEntry{}, err
		}
		if e.Name == name {
			return e, nil
		}
	}
	return fwCfgFileEntry{}, fwCfgNoFile{name, n}
}

// ErrFwCfgTooLarge is the error, to errors.Is, of a fw_cfg file larger
// than its reader's limit.
var ErrFwCfgTooLarge = errors.New("fw_cfg file too large")

type fwCfgTooLarge struct {
	e   fwCfgFileEntry
	max int
}

func (e fwCfgTooLarge) Error() string {
	return fmt.Sprintf("fw_cfg file %s is %d bytes, limit %d", e.e.Name, e.e.Size, e.max)
}

func (e fwCfgTooLarge) Is(target error) bool { return target == ErrFwCfgTooLarge }

// checkFwCfgSize refuses a file larger than max bytes before it is read.
func checkFwCfgSize(e fwCfgFileEntry, max int) error {
	if max < 0 || uint64(e.Size) > uint64(max) {
		return fwCfgTooLarge{e, max}
	}
	return nil
}
