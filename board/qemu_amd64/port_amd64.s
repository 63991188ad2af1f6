// Port I/O for the board's legacy devices (fw_cfg, CMOS RTC, 16550 UART).
// tamago's own helpers live in an internal package, so the board keeps
// these few instructions itself.

//go:build tamago

#include "textflag.h"

// func inb(port uint16) uint8
TEXT ·inb(SB),NOSPLIT,$0-9
	MOVW	port+0(FP), DX
	BYTE	$0xec	// in al, dx
	MOVB	AL, ret+8(FP)
	RET

// func outb(port uint16, val uint8)
TEXT ·outb(SB),NOSPLIT,$0-3
	MOVW	port+0(FP), DX
	MOVB	val+2(FP), AL
	BYTE	$0xee	// out dx, al
	RET

// func outw(port uint16, val uint16)
TEXT ·outw(SB),NOSPLIT,$0-4
	MOVW	port+0(FP), DX
	MOVW	val+2(FP), AX
	BYTE	$0x66	// operand-size prefix
	BYTE	$0xef	// out dx, ax
	RET

// func cli()
TEXT ·cli(SB),NOSPLIT,$0
	CLI
	RET

// func sti()
TEXT ·sti(SB),NOSPLIT,$0
	STI
	RET

// func stihlt()
//
// STI takes effect after the next instruction, so an interrupt that became
// pending while interrupts were off wakes this HLT instead of being lost
// (SDM Vol. 2B, STI).
TEXT ·stihlt(SB),NOSPLIT,$0
	STI
	HLT
	RET
