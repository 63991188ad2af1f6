package main

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"syscall"
	"time"
)

// A lan runs one kind of node on the benchmark's LAN.
type lan interface {
	name() string
	// start starts node k on address hostAddr(k); it joins at once.
	start(k int) (member, error)
	// converged reports whether every node of ms lists every other one.
	converged(ms []member) bool
}

// A member is one running node.
type member interface {
	index() int
	target() string // what observers call it
	traffic() *traffic
	leave() // graceful: tell the others, then stop
	crash() // stop without a word
}

// plan is what one run measures, the same for every lan.
type plan struct {
	reps      int           // newcomers joined then left
	crashes   int           // members crashed
	window    time.Duration // steady-state traffic
	lossFor   time.Duration // 10 % loss
	lossRate  float64
	settle    time.Duration // after convergence, before measuring
	converge  time.Duration // longest wait for convergence
	eventWait time.Duration // longest wait for a join or leave to reach all
	crashWait time.Duration // longest wait for a crash to be seen dead by all
	// crashJitter spreads the crashes over a node's send schedule: each
	// comes after a random wait below it.
	crashJitter time.Duration
}

// result is what one lan did at one N.
type result struct {
	name         string
	failed       bool // bench returned an error (in notes)
	n            int
	bringUp      time.Duration // N nodes started until all list all
	join, lists  []timing      // newcomer listed by all; newcomer lists all
	leave        []timing
	suspect      []timing // crash until all suspect it (or already call it dead)
	dead         []timing
	perNode      trafficRate
	heapPerNode  float64 // bytes
	stackPerNode float64 // bytes
	cpuPerNode   float64 // CPU seconds a second: the process's, user and system, over N
	// Under loss: suspicions and deaths of live nodes, and how long.
	falseSuspect, falseDead int
	lossDropped             float64 // fraction of received UDP datagrams dropped
	lossSent                float64 // packets sent per node per second under loss (Fornax: probes included)
	lossFor                 time.Duration
	notes                   []string
}

// timing is one measurement; seen < of means it timed out with seen of
// the of observers having seen it.
type timing struct {
	d        time.Duration
	seen, of int
}

type trafficRate struct{ sentB, recvB, sentP, recvP float64 } // per node per second

func (r *result) notef(format string, args ...any) {
	r.notes = append(r.notes, fmt.Sprintf(format, args...))
}

// bench runs plan p on lan l with n nodes; rec and loss are the ones l's
// nodes report to and drop by. Addresses n..n+p.reps-1 are the newcomers'.
func bench(l lan, n int, p plan, rec *recorder, ls *loss, logf func(string, ...any)) (*result, error) {
	res := &result{n: n}
	var ms []member
	defer func() {
		for _, m := range ms {
			m.crash()
		}
	}()

	// Bring-up, and memory: the heap the N nodes hold once they agree.
	// The nodes of the run before have had time to stop.
	time.Sleep(2 * time.Second)
	before := memNow()
	t0 := time.Now()
	for k := range n {
		m, err := l.start(k)
		if err != nil {
			return nil, err
		}
		ms = append(ms, m)
	}
	// Checking costs every node a copy of its table: at most every N ms.
	poll := max(100*time.Millisecond, time.Duration(n)*time.Millisecond)
	if !waitUntil(p.converge, poll, func() bool { return l.converged(ms) }) {
		return nil, fmt.Errorf("%s: %d nodes did not all list each other within %v", l.name(), n, p.converge)
	}
	res.bringUp = time.Since(t0)
	logf("%s N=%d: all list all %.1f s after the first start", l.name(), n, res.bringUp.Seconds())
	time.Sleep(p.settle)
	after := memNow()
	res.heapPerNode = (float64(after.heap) - float64(before.heap)) / float64(n)
	res.stackPerNode = (float64(after.stack) - float64(before.stack)) / float64(n)

	// Steady-state traffic.
	ts := make([]*traffic, len(ms))
	for i, m := range ms {
		ts[i] = m.traffic()
	}
	s0, c0 := sumTraffic(ts), cpuNow()
	time.Sleep(p.window)
	d := sumTraffic(ts).minus(s0)
	per := float64(n) * p.window.Seconds()
	res.cpuPerNode = float64(cpuNow()-c0) / float64(time.Second) / per
	res.perNode = trafficRate{float64(d.sentBytes) / per, float64(d.recvBytes) / per,
		float64(d.sentPkts) / per, float64(d.recvPkts) / per}

	// Join and leave: a newcomer each time, on a fresh address.
	for r := range p.reps {
		others := indexes(ms)
		rec.start()
		t := time.Now()
		m, err := l.start(n + r)
		if err != nil {
			rec.stop()
			return nil, err
		}
		join, seen := rec.waitAll(others, m.target(), []string{sawJoined}, t, p.eventWait)
		res.join = append(res.join, timing{join, seen, len(others)})
		lists := listsAll(rec, m.index(), ms, t, p.eventWait)
		res.lists = append(res.lists, lists)
		time.Sleep(time.Second) // answers and gossip about it die down
		t = time.Now()
		m.leave()
		left, seen := rec.waitAll(others, m.target(), []string{sawLeft, sawGone}, t, p.eventWait)
		res.leave = append(res.leave, timing{left, seen, len(others)})
		rec.stop()
		logf("%s N=%d: join %v (newcomer lists all %v), leave %v", l.name(), n, join, lists.d, left)
		time.Sleep(time.Second)
	}

	// Loss: false suspicions and deaths of live nodes.
	if p.lossFor > 0 {
		ts := make([]*traffic, len(ms))
		for i, m := range ms {
			ts[i] = m.traffic()
		}
		s0 := sumTraffic(ts)
		rec.start()
		ls.set(p.lossRate)
		time.Sleep(p.lossFor)
		ls.set(0)
		obs := rec.stop()
		d := sumTraffic(ts).minus(s0)
		if d.datagrams > 0 {
			res.lossDropped = float64(d.dropped) / float64(d.datagrams)
		}
		res.lossFor = p.lossFor
		res.lossSent = float64(d.sentPkts) / float64(n) / p.lossFor.Seconds()
		for _, o := range obs {
			switch o.what {
			case sawSuspect:
				res.falseSuspect++
			case sawDead, sawGone:
				res.falseDead++
			}
		}
		logf("%s N=%d: %v at %.0f %% loss: %d false suspicions, %d false deaths", l.name(), n,
			p.lossFor, 100*res.lossDropped, res.falseSuspect, res.falseDead)
		if !waitUntil(p.converge, poll, func() bool { return l.converged(ms) }) {
			return nil, fmt.Errorf("%s: N=%d did not converge again within %v after the loss", l.name(), n, p.converge)
		}
		time.Sleep(p.settle)
	}

	// Crash: a member stops without a word, at a random point of its schedule.
	for c := range p.crashes {
		victim := ms[len(ms)-1]
		ms = ms[:len(ms)-1]
		others := indexes(ms)
		if p.crashJitter > 0 {
			time.Sleep(time.Duration(rand.Int64N(int64(p.crashJitter))))
		}
		rec.start()
		t := time.Now()
		victim.crash()
		sus, seenS := rec.waitAll(others, victim.target(), []string{sawSuspect, sawDead, sawGone}, t, p.crashWait)
		dead, seenD := rec.waitAll(others, victim.target(), []string{sawDead, sawGone}, t, p.crashWait)
		rec.stop()
		res.suspect = append(res.suspect, timing{sus, seenS, len(others)})
		res.dead = append(res.dead, timing{dead, seenD, len(others)})
		logf("%s N=%d: crash %d: suspect by all %v, dead by all %v", l.name(), n, c+1, sus, dead)
	}
	return res, nil
}

// listsAll waits until newcomer k has listed every member of ms.
func listsAll(rec *recorder, k int, ms []member, since time.Time, timeout time.Duration) timing {
	end := time.Now().Add(timeout)
	for {
		seen := rec.listed(k, since)
		var last time.Time
		n := 0
		for _, m := range ms {
			if t, ok := seen[m.target()]; ok {
				n++
				if t.After(last) {
					last = t
				}
			}
		}
		if n == len(ms) || time.Now().After(end) {
			if n == 0 {
				return timing{0, 0, len(ms)}
			}
			return timing{last.Sub(since), n, len(ms)}
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func indexes(ms []member) []int {
	ks := make([]int, len(ms))
	for i, m := range ms {
		ks[i] = m.index()
	}
	return ks
}

func waitUntil(timeout, poll time.Duration, ok func() bool) bool {
	end := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(end) {
			return false
		}
		time.Sleep(poll)
	}
	return true
}

// cpuNow is the CPU time the process has used, in user and system mode
// (the kernel's work on its sockets included).
func cpuNow() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type mem struct{ heap, stack uint64 }

// memNow is the live heap and goroutine stacks after a full collection.
func memNow() mem {
	runtime.GC()
	runtime.GC()
	var s runtime.MemStats
	runtime.ReadMemStats(&s)
	return mem{s.HeapAlloc, s.StackInuse}
}
