//go:build tamago

package qemu_amd64

// QEMU firmware configuration device, I/O port interface
// (QEMU docs/specs/fw_cfg.rst, "Selector Register" / "Data Register").
const (
	fwCfgSelector = 0x510 // 16-bit, write
	fwCfgData     = 0x511 // 8-bit, read

	fwCfgCmdlineSize = 0x14 // FW_CFG_CMDLINE_SIZE: le32, includes the NUL
	fwCfgCmdlineData = 0x15 // FW_CFG_CMDLINE_DATA: the -append bytes
	fwCfgFileDir     = 0x19 // FW_CFG_FILE_DIR: "File Directory", see fwcfgdir.go

	maxCmdline = 4096
)

// fwCfgRead selects item key and reads its first len(buf) bytes: selecting
// an item rewinds it ("Selector Register Behavior"; past the end the data
// register reads 0).
func fwCfgRead(key uint16, buf []byte) {
	outw(fwCfgSelector, key)
	for i := range buf {
		buf[i] = inb(fwCfgData)
	}
}

// CmdLine returns the kernel command line given to QEMU with -append.
func CmdLine() string {
	var size [4]byte
	fwCfgRead(fwCfgCmdlineSize, size[:])
	n := int(size[0]) | int(size[1])<<8 | int(size[2])<<16 | int(size[3])<<24
	if n <= 0 {
		return ""
	}
	if n > maxCmdline {
		n = maxCmdline
	}
	buf := make([]byte, n)
	fwCfgRead(fwCfgCmdlineData, buf)
	for i, c := range buf {
		if c == 0 {
			buf = buf[:i]
			break
		}
	}
	return string(buf)
}

// fwCfgStream reads the item selected last, byte by byte.
type fwCfgStream struct{}

func (fwCfgStream) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = inb(fwCfgData)
	}
	return len(p), nil
}

// FwCfgFile returns the contents of the fw_cfg file called name (QEMU's
// -fw_cfg name=NAME,file=FILE), refusing one larger than max bytes. A
// missing file is an error that errors.Is fs.ErrNotExist. The device has
// one selector: callers read fw_cfg at boot, one at a time.
func FwCfgFile(name string, max int) ([]byte, error) {
	outw(fwCfgSelector, fwCfgFileDir)
	e, err := findFwCfgFile(fwCfgStream{}, name)
	if err != nil {
		return nil, err
	}
	if err := checkFwCfgSize(e, max); err != nil {
		return nil, err
	}
	buf := make([]byte, e.Size)
	fwCfgRead(e.Select, buf)
	return buf, nil
}
