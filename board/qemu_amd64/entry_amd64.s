// The kernel's entry point: it sizes the Go runtime's memory from the RAM
// QEMU gives, then starts tamago. Only this file writes runtime/goos.RamSize
// (see tamago_internals.go).
//
// tamago's cpuinit (amd64/init.s) puts the boot stack at RamStart+RamSize
// minus RamStackOffset, and the runtime's allocator grows the heap up to
// that stack (tamago-go runtime/mem_tamago.go sbrk) and sizes its arena
// index by RamSize (malloc.go mallocinit). All of it runs before any Go
// code of the board, so RamSize has to be right before cpuinit: the
// Makefile links this function as the ELF entry (-ldflags "-E ...") and
// it jumps on to tamago's own entry, _rt0_amd64_tamago.
//
// It runs as PVH starts a kernel: 32-bit protected mode, paging off, no
// stack. Every instruction below means the same in 32-bit and in 64-bit
// mode: 32-bit registers and operands only (no REX prefix), and no
// RIP-relative addressing, which 32-bit mode reads as an absolute
// address; a symbol's address is taken as tamago's cpuinit does, from the
// offset a LEA holds plus the address of the next instruction (·pc).
// layout.go does the same sums in Go (LayoutFor, tested on the host) and
// Init checks that both agree.

//go:build tamago

#include "go_asm.h"
#include "textflag.h"

// PUTC writes the byte c to COM1; DX holds the port.
#define PUTC(c) MOVL $c, AX; BYTE $0xee

// LEA6 is the length of MOVL $sym(SB), reg: the LEA whose offset is
// relative to the instruction after it.
#define LEA6 6

// func entry()
TEXT ·entry(SB),NOSPLIT|NOFRAME,$0
	CLI
	// A stack for CALL, below tamago's page tables at 0x9000 (its
	// cpuinit does the same before it sets up its own).
	MOVL	$0x9000, SP

	// fw_cfg item FW_CFG_RAM_SIZE, le64 (QEMU docs/specs/fw_cfg.rst):
	// SI gets the low half, DI the high half.
	MOVL	$const_fwCfgSelector, DX
	MOVL	$const_fwCfgRAMSize, AX
	BYTE	$0x66; BYTE $0xef	// out dx, ax
	MOVL	$const_fwCfgData, DX
	CALL	·in32<>(SB)
	MOVL	BX, SI
	CALL	·in32<>(SB)
	MOVL	BX, DI

	// fwRAM = the size as QEMU gave it, for Init.
	CALL	·pc<>(SB)
	MOVL	$·fwRAM(SB), CX
	ADDL	$LEA6, AX
	ADDL	CX, AX
	MOVL	SI, 0(AX)
	MOVL	DI, 4(AX)

	// SI = min(RAM, MaxRAM)
	TESTL	DI, DI
	JNZ	capped
	CMPL	SI, $const_MaxRAM
	JLS	sized
capped:
	MOVL	$const_MaxRAM, SI
sized:

	// BX = MinRAM(end of the image), rounded up to a MB.
	CALL	·pc<>(SB)
	MOVL	$runtime·end(SB), BX
	ADDL	$LEA6, AX
	ADDL	AX, BX
	ADDL	$(const_MinHeap+const_StackOffset+const_DMASize+const_mb-1), BX
	ANDL	$~(const_mb-1), BX
	CMPL	SI, BX
	JCS	toosmall

	// runtime/goos.RamSize = RAM used - DMASize - RamStart
	SUBL	$(const_DMASize+const_RamStart), SI
	CALL	·pc<>(SB)
	MOVL	$runtime∕goos·RamSize(SB), CX
	ADDL	$LEA6, AX
	ADDL	CX, AX
	MOVL	SI, 0(AX)
	MOVL	$0, 4(AX)

	JMP	_rt0_amd64_tamago(SB)

toosmall:
	// The console says why, in the words of ErrTooLittleRAM (layout.go),
	// then the CPU triple-faults (an empty IDT, then an exception): QEMU
	// run with -no-reboot exits.
	MOVL	$0x3f8, DX
	// "\r\nfornax: QEMU gave %d MB of RAM, this kernel needs %d MB: run
	// QEMU with -m %dM or more\r\n" (layout_test.go checks it)
	PUTC(0x0d)
	PUTC(0x0a)
	PUTC(0x66)
	PUTC(0x6f)
	PUTC(0x72)
	PUTC(0x6e)
	PUTC(0x61)
	PUTC(0x78)
	PUTC(0x3a)
	PUTC(0x20)
	PUTC(0x51)
	PUTC(0x45)
	PUTC(0x4d)
	PUTC(0x55)
	PUTC(0x20)
	PUTC(0x67)
	PUTC(0x61)
	PUTC(0x76)
	PUTC(0x65)
	PUTC(0x20)
	MOVL	SI, AX
	CALL	·putmb<>(SB)
	PUTC(0x20)
	PUTC(0x4d)
	PUTC(0x42)
	PUTC(0x20)
	PUTC(0x6f)
	PUTC(0x66)
	PUTC(0x20)
	PUTC(0x52)
	PUTC(0x41)
	PUTC(0x4d)
	PUTC(0x2c)
	PUTC(0x20)
	PUTC(0x74)
	PUTC(0x68)
	PUTC(0x69)
	PUTC(0x73)
	PUTC(0x20)
	PUTC(0x6b)
	PUTC(0x65)
	PUTC(0x72)
	PUTC(0x6e)
	PUTC(0x65)
	PUTC(0x6c)
	PUTC(0x20)
	PUTC(0x6e)
	PUTC(0x65)
	PUTC(0x65)
	PUTC(0x64)
	PUTC(0x73)
	PUTC(0x20)
	MOVL	BX, AX
	CALL	·putmb<>(SB)
	PUTC(0x20)
	PUTC(0x4d)
	PUTC(0x42)
	PUTC(0x3a)
	PUTC(0x20)
	PUTC(0x72)
	PUTC(0x75)
	PUTC(0x6e)
	PUTC(0x20)
	PUTC(0x51)
	PUTC(0x45)
	PUTC(0x4d)
	PUTC(0x55)
	PUTC(0x20)
	PUTC(0x77)
	PUTC(0x69)
	PUTC(0x74)
	PUTC(0x68)
	PUTC(0x20)
	PUTC(0x2d)
	PUTC(0x6d)
	PUTC(0x20)
	MOVL	BX, AX
	CALL	·putmb<>(SB)
	PUTC(0x4d)
	PUTC(0x20)
	PUTC(0x6f)
	PUTC(0x72)
	PUTC(0x20)
	PUTC(0x6d)
	PUTC(0x6f)
	PUTC(0x72)
	PUTC(0x65)
	PUTC(0x0d)
	PUTC(0x0a)
	PUSHQ	$0
	PUSHQ	$0
	LIDT	(SP)
	INT	$3
	JMP	toosmall

// ·in32 reads four bytes from port DX into BX, the first lowest.
TEXT ·in32<>(SB),NOSPLIT|NOFRAME,$0
	MOVL	$4, CX
next:
	BYTE	$0xec	// in al, dx
	MOVB	AL, BL
	RORL	$8, BX
	DECL	CX
	JNZ	next
	RET

// ·pc returns in AX the address it returns to.
TEXT ·pc<>(SB),NOSPLIT|NOFRAME,$0
	POPQ	AX
	JMP	AX

// ·putmb writes AX/1MB in decimal to COM1; it keeps BX, DX and SI.
TEXT ·putmb<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	BX
	PUSHQ	DX
	SHRL	$20, AX
	MOVL	$10, BX
	XORL	CX, CX
digit:
	XORL	DX, DX
	DIVL	BX
	ADDL	$'0', DX
	PUSHQ	DX
	INCL	CX
	TESTL	AX, AX
	JNZ	digit
	MOVL	$0x3f8, DX
put:
	POPQ	AX
	BYTE	$0xee	// out dx, al
	DECL	CX
	JNZ	put
	POPQ	DX
	POPQ	BX
	RET
