//go:build tamago

package qemu_amd64

// defined in port_amd64.s
func inb(port uint16) uint8
func outb(port uint16, val uint8)
func outw(port uint16, val uint16)
func cli()
func sti()
func stihlt()
