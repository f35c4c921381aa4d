package cli

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/droverhq/drover/orchestrator/bench"
)

// BenchOptions are the options of `drover bench`.
type BenchOptions struct {
	f         *Factory
	JSON      bool
	Scenarios []string
	Seed      uint64
	// PlanNodes and PlanVMsPerNode size the planning measurement (0 nodes: skip).
	PlanNodes      int
	PlanVMsPerNode int
}

// NewCmdBench builds `drover bench`.
func NewCmdBench(f *Factory, runF func(context.Context, *BenchOptions) error) *cobra.Command {
	opts := &BenchOptions{f: f}
	cmd := &cobra.Command{
		Use:   "bench [--json] [--scenarios a,b] [--seed N]",
		Short: "Compare drain strategies on simulated clusters, against the physical lower bound",
		Long: `Run benchmark scenarios on the simulator's model, in virtual time (a whole suite
takes seconds of wall time), each under five strategies from the same seed:
serial (one migration at a time), fixed-2 (Hyper-V/VMM: 2 per host), fixed-8 (vCenter:
8 per host), per-source-1 (Nova: 1 per source host) and drover (the adaptive drain
scheduler with the default policy, the code drover apply runs).

For each: the drain makespan of the run's first node (or first nodes, when the
scenario patches several at once), the whole rolling run, migrations per VM, bytes
moved, the physical lower bound of that drain, and the lower bound of the whole run
(every node's drain bound, patch and reboot, at most max_parallel_nodes at once as the
reserve allows): no schedule can beat either (see the README for the formulas). Times
are model seconds.

The table ends with the performance goals, met or missed, with their figures; they
are printed, not enforced. --json prints {"scenarios":[...]} with one object per
scenario and strategy (lower_bound_drain_seconds, lower_bound_run_seconds,
run_vs_lower_bound).

Scenarios: ` + strings.Join(bench.ScenarioNames(), ", ") + `.

Exit status: 0 success (also when a goal is missed), 1 a simulation failed, 2 a usage
error.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(commandContext(cmd), opts)
			}
			return benchRun(commandContext(cmd), opts)
		},
	}
	fs := cmd.Flags()
	fs.BoolVar(&opts.JSON, "json", false, `print {"scenarios":[...]} as JSON`)
	fs.StringSliceVar(&opts.Scenarios, "scenarios", nil, "run only these scenarios (comma-separated): "+strings.Join(bench.ScenarioNames(), ", "))
	fs.Uint64Var(&opts.Seed, "seed", bench.DefaultSeed, "seed of the generated clusters and the model")
	fs.IntVar(&opts.PlanNodes, "plan-nodes", 1000, "nodes of the planning measurement in the table (0 skips it; not in --json)")
	fs.IntVar(&opts.PlanVMsPerNode, "plan-vms-per-node", 30, "VMs per node of the planning measurement")
	return cmd
}

// benchOutput is the JSON of `drover bench --json`.
type benchOutput struct {
	Scenarios []bench.Row `json:"scenarios"`
}

func benchRun(ctx context.Context, opts *BenchOptions) error {
	for _, s := range opts.Scenarios {
		if !slices.Contains(bench.ScenarioNames(), s) {
			return usageErr(fmt.Errorf("--scenarios: unknown scenario %q; use some of: %s", s, strings.Join(bench.ScenarioNames(), ", ")))
		}
	}
	if opts.PlanNodes < 0 || opts.PlanVMsPerNode < 0 {
		return usageErr(fmt.Errorf("--plan-nodes and --plan-vms-per-node: must not be negative, got %d and %d", opts.PlanNodes, opts.PlanVMsPerNode))
	}
	if opts.Seed == 0 {
		return usageErr(fmt.Errorf("--seed: must not be 0 (0 means the default, %d)", bench.DefaultSeed))
	}
	start := time.Now()
	rows, err := bench.Suite(bench.Options{Seed: opts.Seed, Scenarios: opts.Scenarios})
	if err != nil {
		return failedErr(fmt.Errorf("bench: %w", err))
	}
	out := opts.f.IO.Out
	if opts.JSON {
		return printJSON(out, benchOutput{Scenarios: rows})
	}
	wall := time.Since(start)
	bench.WriteTable(out, rows)
	var scale *bench.ScaleFigures
	if opts.PlanNodes > 0 {
		s, err := bench.PlanScale(ctx, opts.PlanNodes, opts.PlanVMsPerNode)
		if err != nil {
			return failedErr(fmt.Errorf("bench: plan %d nodes: %w", opts.PlanNodes, err))
		}
		scale = &s
	}
	fmt.Fprintf(out, "\n%d simulations in %.1f s of wall time (times above are model seconds).\nGoals:\n", len(rows), wall.Seconds())
	bench.WriteGoals(out, bench.Goals(rows, scale))
	return nil
}
