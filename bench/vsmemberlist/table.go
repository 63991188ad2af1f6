package main

import (
	"fmt"
	"runtime"
	"slices"
	"strings"
	"time"
)

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }

// A row of the table: its name, a cell per result, and the number the
// ratio divides (ok false: no ratio).
type row struct {
	name string
	cell func(r *result) string
	num  func(r *result) (float64, bool)
}

// table prints the results of one N as a Markdown table: a column per
// system, then each Fornax column divided by memberlist's (the first
// result, when it is memberlist).
func table(n int, rs []*result, p plan) string {
	var b strings.Builder
	var base *result
	if len(rs) > 0 && rs[0].name == "memberlist" {
		base = rs[0]
	}
	head := []string{fmt.Sprintf("N = %d", n)}
	for _, r := range rs {
		head = append(head, r.name)
	}
	if base != nil {
		for _, r := range rs[1:] {
			head = append(head, strings.TrimPrefix(r.name, "fornax ")+" ÷ memberlist")
		}
	}
	lossRow := fmt.Sprintf("under %.0f %% loss for %v:", 100*p.lossRate, p.lossFor)
	rows := []row{
		{"newcomer listed by all", timingCell(func(r *result) []timing { return r.join }), median(func(r *result) []timing { return r.join })},
		{"newcomer lists all", timingCell(func(r *result) []timing { return r.lists }), median(func(r *result) []timing { return r.lists })},
		{"graceful leave seen by all", timingCell(func(r *result) []timing { return r.leave }), median(func(r *result) []timing { return r.leave })},
		{"crash → suspect by all", timingCell(func(r *result) []timing { return r.suspect }), median(func(r *result) []timing { return r.suspect })},
		{"crash → dead by all", timingCell(func(r *result) []timing { return r.dead }), median(func(r *result) []timing { return r.dead })},
		{"sent, B/s per node", rate(func(t trafficRate) float64 { return t.sentB }, "%.0f"), rateNum(func(t trafficRate) float64 { return t.sentB })},
		{"received, B/s per node", rate(func(t trafficRate) float64 { return t.recvB }, "%.0f"), rateNum(func(t trafficRate) float64 { return t.recvB })},
		{"sent, packets/s per node", rate(func(t trafficRate) float64 { return t.sentP }, "%.2f"), rateNum(func(t trafficRate) float64 { return t.sentP })},
		{"received, packets/s per node", rate(func(t trafficRate) float64 { return t.recvP }, "%.2f"), rateNum(func(t trafficRate) float64 { return t.recvP })},
		{"CPU per node, % of a core", func(r *result) string { return fmt.Sprintf("%.3f %%", 100*r.cpuPerNode) }, func(r *result) (float64, bool) { return r.cpuPerNode, true }},
		{"heap per node", func(r *result) string { return kib(r.heapPerNode) }, func(r *result) (float64, bool) { return r.heapPerNode, true }},
		{"goroutine stacks per node", func(r *result) string { return kib(r.stackPerNode) }, func(r *result) (float64, bool) { return r.stackPerNode, true }},
		{"all N list all, from the first start", func(r *result) string { return dur(r.bringUp) }, func(r *result) (float64, bool) { return float64(r.bringUp), true }},
	}
	if p.lossFor > 0 {
		rows = append(rows,
			row{lossRow + " datagrams dropped", func(r *result) string { return fmt.Sprintf("%.1f %%", 100*r.lossDropped) }, nil},
			row{lossRow + " sent, packets/s per node", func(r *result) string { return fmt.Sprintf("%.2f", r.lossSent) }, func(r *result) (float64, bool) { return r.lossSent, true }},
			row{lossRow + " false suspicions", func(r *result) string { return perMin(r.falseSuspect, r) }, func(r *result) (float64, bool) { return float64(r.falseSuspect), true }},
			row{lossRow + " false deaths", func(r *result) string { return perMin(r.falseDead, r) }, func(r *result) (float64, bool) { return float64(r.falseDead), true }},
		)
	}
	line := func(cells []string) { b.WriteString("| " + strings.Join(cells, " | ") + " |\n") }
	line(head)
	seps := make([]string, len(head))
	for i := range seps {
		seps[i] = "---"
		if i > 0 {
			seps[i] = "---:"
		}
	}
	line(seps)
	for _, rw := range rows {
		cells := []string{rw.name}
		for _, r := range rs {
			if r.failed {
				cells = append(cells, "failed")
				continue
			}
			cells = append(cells, rw.cell(r))
		}
		if base != nil {
			for _, r := range rs[1:] {
				cells = append(cells, ratio(rw, r, base))
			}
		}
		line(cells)
	}
	if base != nil && len(rs) > 1 {
		b.WriteString("\n" + goals(rs, base))
	}
	for _, r := range rs {
		for _, note := range r.notes {
			fmt.Fprintf(&b, "\nnote (%s): %s", r.name, note)
		}
	}
	return b.String()
}

func ratio(rw row, r, base *result) string {
	if rw.num == nil {
		return ""
	}
	if r.failed || base.failed {
		return "—"
	}
	a, ok1 := rw.num(r)
	m, ok2 := rw.num(base)
	switch {
	case !ok1 || !ok2:
		return "—"
	case m == 0 && a == 0:
		return "="
	case m == 0:
		return "∞"
	}
	return fmt.Sprintf("%.3g×", a/m)
}

// goals checks the goals: join at most 0.5× memberlist's, leave
// at most 0.1×.
func goals(rs []*result, base *result) string {
	var parts []string
	for _, r := range rs[1:] {
		for _, g := range []struct {
			what  string
			ts    func(*result) []timing
			limit float64
		}{
			{"join", func(r *result) []timing { return r.join }, 0.5},
			{"leave", func(r *result) []timing { return r.leave }, 0.1},
		} {
			a, ok1 := median(g.ts)(r)
			m, ok2 := median(g.ts)(base)
			verdict := "not measured"
			if ok1 && ok2 && m > 0 && !r.failed && !base.failed {
				verdict = fmt.Sprintf("%.3g× (goal ≤ %g×): met", a/m, g.limit)
				if a/m > g.limit {
					verdict = fmt.Sprintf("%.3g× (goal ≤ %g×): NOT met", a/m, g.limit)
				}
			}
			parts = append(parts, fmt.Sprintf("%s %s %s", strings.TrimPrefix(r.name, "fornax "), g.what, verdict))
		}
	}
	return "Goals: " + strings.Join(parts, "; ") + ".\n"
}

// timingCell shows the median and range of a measurement, or how many
// observers saw it when one timed out.
func timingCell(get func(*result) []timing) func(*result) string {
	return func(r *result) string {
		ts := get(r)
		if len(ts) == 0 {
			return "—"
		}
		for _, t := range ts {
			if t.seen < t.of {
				return fmt.Sprintf("timed out (%d/%d saw it)", t.seen, t.of)
			}
		}
		ds := durations(ts)
		if len(ds) == 1 {
			return dur(ds[0])
		}
		return fmt.Sprintf("%s (%s–%s)", dur(mid(ds)), dur(ds[0]), dur(ds[len(ds)-1]))
	}
}

func median(get func(*result) []timing) func(*result) (float64, bool) {
	return func(r *result) (float64, bool) {
		ts := get(r)
		for _, t := range ts {
			if t.seen < t.of {
				return 0, false
			}
		}
		if len(ts) == 0 {
			return 0, false
		}
		ds := durations(ts)
		return float64(mid(ds)), true
	}
}

// mid is the median of sorted ds: the mean of the middle two of an even
// number.
func mid(ds []time.Duration) time.Duration {
	k := len(ds) / 2
	if len(ds)%2 == 0 {
		return (ds[k-1] + ds[k]) / 2
	}
	return ds[k]
}

func durations(ts []timing) []time.Duration {
	ds := make([]time.Duration, len(ts))
	for i, t := range ts {
		ds[i] = t.d
	}
	slices.Sort(ds)
	return ds
}

func rate(get func(trafficRate) float64, format string) func(*result) string {
	return func(r *result) string { return fmt.Sprintf(format, get(r.perNode)) }
}

func rateNum(get func(trafficRate) float64) func(*result) (float64, bool) {
	return func(r *result) (float64, bool) { return get(r.perNode), true }
}

// dur prints a duration in ms below 10 s, else in s.
func dur(d time.Duration) string {
	switch {
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	case d < 10*time.Second:
		return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.1f s", d.Seconds())
}

func kib(b float64) string { return fmt.Sprintf("%.1f KiB", b/1024) }

// perMin prints a count over the loss window and its rate per node and
// minute.
func perMin(k int, r *result) string {
	if r.lossFor <= 0 {
		return "—"
	}
	return fmt.Sprintf("%d (%.3g /node/min)", k, float64(k)/float64(r.n)/r.lossFor.Minutes())
}
