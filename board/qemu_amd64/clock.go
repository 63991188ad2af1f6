//go:build tamago

package qemu_amd64

import (
	"time"
)

// MC146818 CMOS RTC (the PC's RTC; QEMU hw/rtc/mc146818rtc.c).
const (
	cmosAddr = 0x70
	cmosData = 0x71

	rtcRegA     = 0x0a
	rtcRegA_UIP = 1 << 7

	nmiDisable = 0x80 // bit 7 of the CMOS address port
)

func cmosRead(reg uint8) uint8 {
	outb(cmosAddr, nmiDisable|reg)
	return inb(cmosData)
}

func bcd(v uint8) int { return int(v&0x0f) + int(v>>4)*10 }

// rtcTime reads the wall clock (UTC, BCD, 24 h, as QEMU sets it).
func rtcTime() (time.Time, bool) {
	for i := 0; i < 1000000 && cmosRead(rtcRegA)&rtcRegA_UIP != 0; i++ {
	}
	sec := bcd(cmosRead(0x00))
	min := bcd(cmosRead(0x02))
	hour := bcd(cmosRead(0x04) & 0x7f)
	day := bcd(cmosRead(0x07))
	mon := bcd(cmosRead(0x08))
	year := bcd(cmosRead(0x09)) + 100*bcd(cmosRead(0x32))
	if mon < 1 || mon > 12 || day < 1 || day > 31 || year < 2000 {
		return time.Time{}, false
	}
	return time.Date(year, time.Month(mon), day, hour, min, sec, 0, time.UTC), true
}
