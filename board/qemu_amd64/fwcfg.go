//go:build tamago

package qemu_amd64

// QEMU firmware configuration device, I/O port interface
// (QEMU docs/specs/fw_cfg.rst, "Selector Register" / "Data Register").
const (
	fwCfgSelector = 0x510 // 16-bit, write
	fwCfgData     = 0x511 // 8-bit, read

	fwCfgCmdlineSize = 0x14 // FW_CFG_CMDLINE_SIZE: le32, includes the NUL
	fwCfgCmdlineData = 0x15 // FW_CFG_CMDLINE_DATA: the -append bytes

	maxCmdline = 4096
)

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
