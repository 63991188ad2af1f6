// Command vsmemberlist runs Fornax's cluster package and HashiCorp
// memberlist side by side on one machine, in one run, and prints one
// table per cluster size N with the ratios (make bench-memberlist;
// docs/bench.md says what each row means and shows a run).
//
// Both run in the same process, one after the other, inside a network
// namespace the command makes (and removes) with one address per node
// on one dummy link: Fornax nodes are cluster.New over real kernel UDP
// broadcast (docs/protocol.md §1), memberlist nodes DefaultLANConfig
// over its own NetTransport. It needs root.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"fornax/cluster"
)

// nsEnv names the namespace a re-executed benchmark runs in.
const nsEnv = "FORNAX_BENCH_NS"

type options struct {
	sizes   []int
	systems []string
	plan    plan
}

func parseFlags(args []string) (*options, error) {
	fs := flag.NewFlagSet("vsmemberlist", flag.ContinueOnError)
	sizes := fs.String("n", "16,64,256", "cluster sizes N, comma-separated")
	systems := fs.String("systems", "memberlist,default,fast", "what to run: memberlist and Fornax profiles (docs/protocol.md §4.4), comma-separated")
	o := &options{}
	p := &o.plan
	fs.IntVar(&p.reps, "reps", 3, "newcomers joined and then left, per N")
	fs.IntVar(&p.crashes, "crashes", 2, "members crashed, per N")
	fs.DurationVar(&p.window, "window", 30*time.Second, "steady-state traffic window (a multiple of 15 s spans whole Fornax default cycles)")
	fs.DurationVar(&p.lossFor, "loss", 60*time.Second, "how long to drop received datagrams at -loss-rate (0: skip)")
	fs.Float64Var(&p.lossRate, "loss-rate", 0.10, "fraction of received datagrams each node drops during -loss")
	fs.DurationVar(&p.settle, "settle", 5*time.Second, "wait after the nodes agree, before measuring")
	fs.DurationVar(&p.converge, "converge", 5*time.Minute, "longest wait for N nodes to all list each other (memberlist pushes and pulls full state only every 2 min at N=256)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q: every setting is a flag (-h lists them)", fs.Args())
	}
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 3 || n > 4000 {
			return nil, fmt.Errorf("bad -n %q: want sizes from 3 to 4000, e.g. -n 16,64,256", s)
		}
		o.sizes = append(o.sizes, n)
	}
	for _, s := range strings.Split(*systems, ",") {
		s = strings.TrimSpace(s)
		if s != "memberlist" {
			if _, err := cluster.LookupProfile(s); err != nil {
				return nil, fmt.Errorf("bad -systems %q: want memberlist or a Fornax profile: %v", s, err)
			}
		}
		o.systems = append(o.systems, s)
	}
	switch {
	case p.reps < 1 || p.reps > 20:
		return nil, fmt.Errorf("bad -reps %d: want 1-20", p.reps)
	case p.crashes < 1 || p.crashes > 20:
		return nil, fmt.Errorf("bad -crashes %d: want 1-20", p.crashes)
	case p.converge < time.Second:
		return nil, fmt.Errorf("bad -converge %v: want at least 1s", p.converge)
	case p.window < time.Second:
		return nil, fmt.Errorf("bad -window %v: want at least 1s", p.window)
	case p.lossFor < 0 || p.lossRate < 0 || p.lossRate >= 1:
		return nil, fmt.Errorf("bad -loss %v / -loss-rate %v: want a duration ≥ 0 and a rate in [0, 1)", p.lossFor, p.lossRate)
	}
	for _, n := range o.sizes {
		if p.crashes > n-2 {
			return nil, fmt.Errorf("bad -crashes %d for N=%d: at most N-2 (the seed and one observer stay)", p.crashes, n)
		}
	}
	p.eventWait = 30 * time.Second
	p.crashWait = 2 * time.Minute
	p.crashJitter = cluster.DefaultInterval
	return o, nil
}

func main() {
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "vsmemberlist:", err)
		os.Exit(2)
	}
	if os.Getenv(nsEnv) == "" {
		err = outside(o)
	} else {
		err = inside(o)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "vsmemberlist:", err)
		os.Exit(1)
	}
}

// outside makes the namespace, runs this command again inside it and
// removes it, whatever happens to the run.
func outside(o *options) error {
	if err := needRoot(); err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	ns := fmt.Sprintf("fornax-bench-%d", os.Getpid())
	if err := makeNamespace(ns, slices.Max(o.sizes)+o.plan.reps); err != nil {
		return err
	}
	defer removeNamespace(ns)
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, exe}, os.Args[1:]...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), nsEnv+"="+ns)
	// A Ctrl-C reaches the child too; wait for it, then tear down.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sig)
	if err := cmd.Start(); err != nil {
		return err
	}
	go func() {
		for s := range sig {
			cmd.Process.Signal(s)
		}
	}()
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("the run in namespace %s failed: %w", ns, err)
	}
	return nil
}

// inside runs the benchmark in the namespace and prints the tables.
func inside(o *options) error {
	logf := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
	}
	maxN := slices.Max(o.sizes)
	if err := checkFanOut(maxN); err != nil {
		return err
	}
	logf("fan-out check: a broadcast reached all %d nodes' sockets once each, a unicast exactly one", maxN)
	rec, ls := new(recorder), new(loss)
	var ml *memberlistLAN
	fmt.Printf("# Fornax vs memberlist v0.7.0 (%s)\n\n", describePlan(o))
	for _, n := range o.sizes {
		var rs []*result
		for _, s := range o.systems {
			var l lan
			if s == "memberlist" {
				if ml == nil {
					ml = newMemberlistLAN(rec, ls)
				}
				l = ml
			} else {
				p, _ := cluster.LookupProfile(s)
				l = &fornaxLAN{profile: p, rec: rec, loss: ls}
			}
			r, err := bench(l, n, o.plan, rec, ls, logf)
			if err != nil {
				// One system failing at one N does not lose the rest.
				logf("%v", err)
				r = &result{n: n, failed: true}
				r.notef("failed: %v", err)
			}
			r.name = l.name()
			rs = append(rs, r)
			memNow() // the stopped nodes' memory goes before the next lan's
		}
		fmt.Print(table(n, rs, o.plan))
		fmt.Println()
	}
	return nil
}

func describePlan(o *options) string {
	p := o.plan
	return fmt.Sprintf("%d joins and leaves, %d crashes, traffic over %v, %.0f %% loss for %v per N; GOMAXPROCS %d",
		p.reps, p.crashes, p.window, 100*p.lossRate, p.lossFor, runtimeProcs())
}
