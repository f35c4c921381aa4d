package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/droverhq/drover/cmd/drover/internal/wire"
	"github.com/droverhq/drover/orchestrator"
	"github.com/droverhq/drover/policies"
	"github.com/droverhq/drover/runs"
	"github.com/droverhq/drover/runs/report"
)

// PlanOptions are the options of `drover plan`.
type PlanOptions struct {
	f    *Factory
	JSON bool
}

// NewCmdPlan builds `drover plan`.
func NewCmdPlan(f *Factory, runF func(context.Context, *PlanOptions) error) *cobra.Command {
	opts := &PlanOptions{f: f}
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Simulate the whole run before it starts: order, targets, times (changes nothing)",
		Long: `Simulate the whole run on the cluster as it is now, node by node: the node order,
for each node the target of every VM (capacity with the vCPU overcommit ratio, hard and
soft anti-affinity, CPU group, networks, the N-k reserve while the node is out), what
happens to non-migratable VMs, failbacks, and the predicted drain, install and reboot
times and the run's ETA. Estimates come from a model (memory, dirty rate, bandwidth,
setup cost) refined with the timings measured in earlier runs of the state file.

A node that cannot be drained, or whose absence breaks the reserve, is "blocked": the
plan says why, and the run would not patch it. 'apply' follows this plan and re-plans a
node only when the inventory changed since.

With --json: the plan {"order","skipped","nodes":[{"node","status","blocked",
"migrations":[{"vm","from","to","memory_mib","duration","converges"}],"reserve",
"drain","install","reboot","start","end",...}],"blocked","migrations","eta",
"warnings","at","measured_timings"}; durations are in nanoseconds.
With --server URL the daemon plans, with the policy of its config.

Exit status: 0 every node can be maintained, 1 a node is blocked (or the cluster
cannot be read), 2 a usage or config error.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(commandContext(cmd), opts)
			}
			return planRun(commandContext(cmd), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print JSON")
	bindPolicyFlags(f, cmd.Flags())
	return cmd
}

func planRun(ctx context.Context, opts *PlanOptions) error {
	if opts.f.remote() {
		return remotePlan(ctx, opts)
	}
	s, err := opts.f.openSession(ctx, sessionOptions{store: readStore, driver: true, command: "plan"})
	if err != nil {
		return err
	}
	defer s.Close()
	prep, err := planOf(ctx, s)
	if err != nil {
		return classify(err)
	}
	out := opts.f.IO.Out
	if opts.JSON {
		if err := printJSON(out, prep.Plan); err != nil {
			return err
		}
	} else {
		if err := printPlan(out, s.cfg.Cluster.Name, prep.Plan); err != nil {
			return err
		}
		// The policy this cluster runs with: the top-level one with its own overrides.
		fmt.Fprintf(report.SafeWriter(out), "Policy of cluster %s: %s\n", s.cfg.Cluster.Name, wire.PolicyLine(wire.PublicPolicy(s.cfg.Policy)))
	}
	if prep.Plan.Blocked > 0 {
		return failedErr(fmt.Errorf("%d node(s) cannot be maintained; see the plan", prep.Plan.Blocked))
	}
	return nil
}

// planOf prepares and plans a run, refined with the timings of the state file when
// there is one.
func planOf(ctx context.Context, s *session) (orchestrator.Prepared, error) {
	var timings []runs.Timing
	if s.store != nil {
		var err error
		if timings, err = s.store.Timings(s.cfg.Cluster.Name); err != nil {
			return orchestrator.Prepared{}, fmt.Errorf("read timings of earlier runs: %w", err)
		}
	}
	return orchestrator.PlanRun(ctx, s.driver, s.updater, s.cfg.Policy, timings)
}

// printPlan writes a plan for people: the order, then per node its VMs' targets and
// predicted times, then totals.
func printPlan(w io.Writer, cluster string, p *orchestrator.RunPlan) error {
	w = report.SafeWriter(w)
	basis := "model defaults (no earlier runs measured)"
	if p.MeasuredTimings > 0 {
		basis = fmt.Sprintf("%d measurements of earlier runs", p.MeasuredTimings)
	}
	fmt.Fprintf(w, "Plan for cluster %s: %s, %s, ETA %s of cluster time (estimates from %s)\n",
		cluster, report.Count(len(p.Order), "node", "nodes"), report.Count(p.Migrations, "migration", "migrations"), roundDur(p.ETA), basis)
	fmt.Fprintf(w, "Order: %s\n", orNoneStr(p.Order))
	for _, s := range p.Skipped {
		fmt.Fprintf(w, "Skip %s: %s\n", s.Node, s.Reason)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\n#\tNODE\tSTATUS\tVMS\tDRAIN\tINSTALL\tREBOOT\tFAILBACK\tSTART\tEND")
	for i, n := range p.Nodes {
		if n.Status == policies.NodeBlocked {
			fmt.Fprintf(tw, "%d\t%s\tBLOCKED\t-\t-\t-\t-\t-\t%s\t-\n", i+1, n.Node, roundDur(n.Start))
			continue
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", i+1, n.Node, n.Status, len(n.Migrations),
			roundDur(n.Drain), roundDur(n.Install), roundDur(n.Reboot), roundDur(n.FailbackTime), roundDur(n.Start), roundDur(n.End))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, n := range p.Nodes {
		fmt.Fprintf(w, "\n%s:\n", n.Node)
		if n.Status == policies.NodeBlocked {
			fmt.Fprintf(w, "  CANNOT BE DRAINED: %s\n", strings.Join(n.Blocked, "; "))
			for _, u := range n.Unplaced {
				fmt.Fprintf(w, "  no target for %s\n", u.VM)
				for _, r := range u.Refusals {
					fmt.Fprintf(w, "    %s\n", r)
				}
			}
			continue
		}
		for _, m := range n.Migrations {
			note := ""
			if !m.Converges {
				note = " (will not converge)"
			}
			if m.DiskMiB > 0 {
				note = fmt.Sprintf(" (with %d MiB of local disks)", m.DiskMiB) + note
			}
			fmt.Fprintf(w, "  %s -> %s  %d MiB, %s%s\n", m.VM, m.To, m.MemoryMiB, roundDur(m.Duration), note)
		}
		if len(n.Migrations) == 0 {
			fmt.Fprintln(w, "  no running VM to move")
		}
		for _, v := range n.Shutdown {
			fmt.Fprintf(w, "  %s: shut down during the patch, restarted after\n", v)
		}
		for _, v := range n.LeftOn {
			fmt.Fprintf(w, "  %s: LEFT RUNNING through the reboot (%s)\n", v.VM, v.Reason)
		}
		for _, m := range n.Failback {
			fmt.Fprintf(w, "  failback %s <- %s  %s\n", m.VM, m.From, roundDur(m.Duration))
		}
		if n.Reserve.K > 0 {
			fmt.Fprintf(w, "  reserve N-%d while out: %s\n", n.Reserve.K, n.Reserve.Basis)
		}
		for _, x := range n.Warnings {
			fmt.Fprintf(w, "  warning: %s\n", x)
		}
	}
	printSchedulerInputs(w, p)
	fmt.Fprintf(w, "\n%s, %s moved more than once, %s blocked, ETA %s of cluster time\n", report.Count(p.Migrations, "migration", "migrations"), report.Count(p.MovedMoreThanOnce, "VM", "VMs"), report.Count(p.Blocked, "node", "nodes"), roundDur(p.ETA))
	for _, x := range p.Warnings {
		fmt.Fprintf(w, "warning: %s\n", x)
	}
	return nil
}

func roundDur(d time.Duration) string {
	if d >= time.Minute {
		return d.Round(time.Second).String()
	}
	return d.Round(100 * time.Millisecond).String()
}

func orNoneStr(list []string) string {
	if len(list) == 0 {
		return "(none)"
	}
	return strings.Join(list, " ")
}
