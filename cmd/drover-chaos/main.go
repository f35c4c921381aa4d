// Command chaos is `make chaos`: it kill -9s drover processes at random moments
// of simulated rolling runs, hundreds of times, resumes each, and checks that no
// VM is lost, none migrated twice, no node left paused, the reserve kept, no node
// rebooted twice and no suspended VM's state lost (some rounds suspend VMs
// first). Each round runs against a `drover sim serve` process of its own. It ends
// with one line:
//
//	chaos: N kills, N resumed, 0 lost VMs, 0 double migrations, 0 nodes left paused, 0 reserve violations, 0 double reboots, 0 lost suspended VMs
//
// and exits 1 if any count is off. Round r uses seed SEED+r and prints it:
// `chaos -seed S -kills 1` replays round 0 of seed S alone.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/droverhq/drover/cmd/internal/chaos"
)

func main() {
	os.Exit(run())
}

func run() int {
	seed := flag.Uint64("seed", 0, "seed of the first round (0 = from the clock); round r uses seed+r")
	kills := flag.Int("kills", 200, "kills to make in all; rounds run until there are this many")
	drover := flag.String("drover", "", "drover binary (default: build ./cmd/drover)")
	keep := flag.Bool("keep", false, "keep the folders of rounds that passed (failed ones are always kept)")
	mode := flag.String("mode", "mixed", "what to kill: apply, serve, or mixed (the round's seed decides)")
	flag.Parse()
	if *seed == 0 {
		*seed = uint64(time.Now().UnixNano()) % 1_000_000_000
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	procs := &chaos.Procs{}
	defer procs.KillAll()
	root, err := chaos.ModuleRoot(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 2
	}
	if *drover == "" {
		dir, err := os.MkdirTemp("", "drover-chaos-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "chaos:", err)
			return 2
		}
		defer os.RemoveAll(dir)
		if *drover, err = chaos.Build(ctx, dir); err != nil {
			fmt.Fprintln(os.Stderr, "chaos:", err)
			return 2
		}
	}
	fmt.Printf("chaos: seed %d, %d kills (replay: make chaos SEED=%d KILLS=%d)\n", *seed, *kills, *seed, *kills)
	start := time.Now()
	var (
		total                    chaos.Findings
		nKills, nResumed, rounds int
		harnessErrors            int
	)
	for r := uint64(0); nKills < *kills; r++ {
		o := chaos.RandomOptions(root, *seed+r)
		switch *mode {
		case "apply":
			o.Serve = false
		case "serve":
			o.Serve = true
		}
		o.Kills = min(o.Kills, *kills-nKills)
		o.Drover, o.Procs = *drover, procs
		dir, err := os.MkdirTemp("", fmt.Sprintf("drover-chaos-%d-", o.Seed))
		if err != nil {
			fmt.Fprintln(os.Stderr, "chaos:", err)
			return 2
		}
		o.Dir = dir
		res, err := chaos.Run(ctx, o)
		rounds++
		nKills += res.Kills
		nResumed += res.Resumed
		total.Add(res.Findings)
		switch {
		case err != nil:
			harnessErrors++
			fmt.Printf("round %d seed %d: harness error: %v (logs in %s)\n", r, o.Seed, err, dir)
		case !res.Findings.Clean():
			fmt.Printf("round %d seed %d: %d kills, FINDINGS (logs in %s):\n", r, o.Seed, res.Kills, dir)
			for _, f := range res.Findings.All() {
				fmt.Println("  " + f)
			}
		default:
			fmt.Printf("round %d seed %d: %s %s scale %g failback %s limits %d/%d hang %dms 5xx %g suspended %v: %d kills, run %s in %s; %v\n",
				r, o.Seed, map[bool]string{false: "apply", true: "serve"}[o.Serve], baseName(o.ClusterFile), o.TimeScale, o.Failback, o.MaxParallel, o.PerNode, o.HangMs, o.APIErrors,
				res.Suspended, res.Kills, res.Report.State, res.Wall.Round(time.Second), res.Moments)
			if !*keep {
				os.RemoveAll(dir)
			}
		}
		if ctx.Err() != nil {
			break
		}
		if err == nil && res.Kills == 0 {
			fmt.Printf("round %d made no kill: stopping\n", r)
			break
		}
	}
	fmt.Printf("chaos: %d rounds, %d other findings, %d harness errors in %s\n", rounds, len(total.Other), harnessErrors, time.Since(start).Round(time.Second))
	fmt.Printf("chaos: %d kills, %d resumed, %d lost VMs, %d double migrations, %d nodes left paused, %d reserve violations, %d double reboots, %d lost suspended VMs\n",
		nKills, nResumed, len(total.LostVMs), len(total.DoubleMigrations), len(total.LeftPaused), len(total.ReserveViolations),
		len(total.DoubleReboots), len(total.LostSuspended))
	if !total.Clean() || harnessErrors > 0 || nKills < *kills || nResumed != nKills {
		return 1
	}
	return 0
}

func baseName(path string) string {
	for i := len(path) - 1; i >= 0; i-- {
		if path[i] == '/' {
			return path[i+1:]
		}
	}
	return path
}
