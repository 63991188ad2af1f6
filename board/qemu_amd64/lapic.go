//go:build tamago

package qemu_amd64

// The BSP's local APIC: its registers and software enable. Its timer is
// calibrated in pit.go and armed by the idle governor in idle.go.

import (
	"sync/atomic"
	"unsafe"

	"github.com/usbarmory/tamago/amd64"
)

// Local APIC registers (SDM Vol. 3A, 11.4.1 and 11.5.4).
const (
	lapicBase       = 0xfee00000
	lapicSVR        = 0x0f0
	lapicLVTTimer   = 0x320
	lapicInitCount  = 0x380
	lapicCurCount   = 0x390
	lapicDivideConf = 0x3e0

	svrEnable   = 1 << 8
	lvtMasked   = 1 << 16
	divideBy1   = 0b1011
	spuriousVec = 0xff
)

func lapicReg(off uintptr) *uint32 {
	return (*uint32)(unsafe.Pointer(uintptr(lapicBase) + off))
}

func lapicRead(off uintptr) uint32     { return atomic.LoadUint32(lapicReg(off)) }
func lapicWrite(off uintptr, v uint32) { atomic.StoreUint32(lapicReg(off), v) }

// lapicEnable software-enables the BSP's local APIC, which comes out of
// reset disabled; without it neither I/O APIC interrupts nor the LAPIC
// timer are delivered.
func lapicEnable() {
	lapicWrite(lapicSVR, svrEnable|spuriousVec)
	lapicWrite(lapicDivideConf, divideBy1)
	lapicWrite(lapicLVTTimer, lvtMasked|amd64.IRQ_WAKEUP)
}
