package sys

// The load meter, for the cluster's HEARTBEAT.

import (
	"sync"
	"time"
)

// LoadMeter turns a count of idle time into the busy CPU fraction over
// the last interval, as HEARTBEAT's load field wants (docs/protocol.md).
type LoadMeter struct {
	mu       sync.Mutex
	idle     func() time.Duration // total idle time since boot
	now      func() time.Duration // monotonic time (uptime)
	cpus     int
	min      time.Duration // shortest interval worth a new sample
	lastIdle time.Duration
	lastNow  time.Duration
	load     float64
}

// NewLoadMeter returns a meter over the idle counter of cpus CPUs;
// intervals shorter than min keep the previous figure.
func NewLoadMeter(idle, now func() time.Duration, cpus int, min time.Duration) *LoadMeter {
	return &LoadMeter{idle: idle, now: now, cpus: cpus, min: min, lastIdle: idle(), lastNow: now()}
}

// Load returns the busy fraction, summed over CPUs, since the previous
// sample.
func (m *LoadMeter) Load() float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	idle, now := m.idle(), m.now()
	dt := now - m.lastNow
	if dt < m.min {
		return m.load
	}
	busy := float64(m.cpus) - float64(idle-m.lastIdle)/float64(dt)
	m.load = min(max(busy, 0), float64(m.cpus))
	m.lastIdle, m.lastNow = idle, now
	return m.load
}
