//go:build tamago && cluster

package main

import (
	"context"
	"runtime"
	"runtime/goos"
	"sync/atomic"
	"time"

	board "fornax/board/qemu_amd64"
	"fornax/cluster/monoclock"
)

// startClusterClock returns the cluster's clock: time from the TSC, which
// setting the wall clock does not move (see package monoclock for why
// time.Now and runtime timers will not do under tamago).
//
// Its timers are fired by a goroutine that naps in time.Sleep, and a step
// of the wall clock back makes such a nap late by the step. So the
// board's idle hook (goos.Idle, which the scheduler calls with its next
// timer before it halts the CPU) is wrapped: it halts no longer than the
// earliest cluster timer by the TSC, and once that timer is due it wakes
// the napping goroutine with runtime.Wake, tamago's way to end a
// time.Sleep early (its interrupt handling uses it to wake the handler
// goroutine). The board's idle halts for at most a second of the LAPIC
// timer, which runs whatever the wall clock says, so the hook is asked
// again at least once a second whenever the CPU idles.
//
// runtime.Wake(0), before Run has started, finds no sleeping goroutine
// and reports false.
func startClusterClock() *monoclock.Clock {
	clk := monoclock.New(board.Uptime, time.Now())
	var napper atomic.Uint64 // the goroutine of Run, from runtime.GetG
	go func() {
		g, _ := runtime.GetG()
		napper.Store(uint64(g))
		clk.Run(context.Background(), time.Sleep)
	}()
	// A timer made while the CPU is busy and Run naps ends the nap, so
	// naps can be long (monoclock.Nap) and an idle VM wakes for them
	// rarely.
	clk.SetWaker(func() bool { return runtime.Wake(uint(napper.Load())) })
	idle := goos.Idle
	// Runs in the scheduler: no allocation, no locks, no blocking.
	goos.Idle = func(until int64) {
		wakeAt, wake := clk.Idle(board.AMD64.GetTime(), until)
		// Wake fails while Run is not in time.Sleep (not started,
		// napper 0, or firing): then it is runnable, and the scheduler
		// does not halt for long.
		if wake && runtime.Wake(uint(napper.Load())) {
			return // the scheduler looks again and finds Run ready
		}
		idle(wakeAt)
	}
	return clk
}
