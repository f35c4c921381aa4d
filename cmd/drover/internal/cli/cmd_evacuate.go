package cli

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/droverhq/drover/orchestrator"
)

// EvacuateOptions are the options of `drover evacuate`.
type EvacuateOptions struct {
	f             *Factory
	Nodes         []string
	JSON          bool
	Yes           bool
	DryRun        bool
	ForceRecovery bool
}

// NewCmdEvacuate builds `drover evacuate NODE...`.
func NewCmdEvacuate(f *Factory, runF func(context.Context, *EvacuateOptions) error) *cobra.Command {
	opts := &EvacuateOptions{f: f}
	cmd := &cobra.Command{
		Use:   "evacuate NODE...",
		Short: "Empty nodes for good: drain them and leave them paused (decommission)",
		Long: `Empty nodes for good (decommission): each NODE in turn is paused and drained
with the run's bounded live migrations (and storage migrations of VMs on local disks,
under policy.local_storage), then left paused: it is neither patched nor rebooted and
takes no VMs until it is resumed on the platform. The same placement, reserve and
non-migratable rules as apply hold; a VM that cannot leave makes its node fail, and
the node is resumed.

The run is journaled like apply's: after kill -9, 'drover runs resume ID' continues it.
The report names every evacuated node "left paused" with the reason.
--dry-run prints the plan (its install and reboot times do not apply) and changes
nothing; --json prints the same report object as apply --json.

Moving VMs to another cluster (--to-cluster) is not built yet.

Exit status: 0 every node was evacuated, 1 the run failed, was stopped or
interrupted, 2 a usage or config error (nothing is changed).`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageErr(errors.New("evacuate needs the node(s) to empty: drover evacuate NODE... (see drover inventory)"))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Nodes = args
			if runF != nil {
				return runF(commandContext(cmd), opts)
			}
			return evacuateRun(commandContext(cmd), opts)
		},
	}
	fs := cmd.Flags()
	fs.BoolVar(&opts.JSON, "json", false, "print the report as one line of JSON (progress goes to stderr)")
	fs.BoolVarP(&opts.Yes, "yes", "y", false, "do not ask for confirmation")
	fs.BoolVar(&opts.DryRun, "dry-run", false, "show what would be done and change nothing")
	fs.BoolVar(&opts.ForceRecovery, "force-recovery", false, "take over a run lock held by a process on another host")
	return cmd
}

func evacuateRun(ctx context.Context, opts *EvacuateOptions) error {
	seen := map[string]bool{}
	for i, n := range opts.Nodes {
		if strings.TrimSpace(n) == "" || seen[n] {
			return usageErr(fmt.Errorf("evacuate: node argument %d (%q) is empty or given twice", i+1, n))
		}
		seen[n] = true
	}
	mode := writeStore
	if opts.DryRun {
		mode = readStore
	}
	s, err := opts.f.openSession(ctx, sessionOptions{store: mode, driver: true, quiet: true, command: "evacuate"})
	if err != nil {
		return err
	}
	defer s.Close()
	inv, err := s.driver.Inventory(ctx)
	if err != nil {
		return failedErr(fmt.Errorf("read inventory: %w", err))
	}
	var names []string
	for _, n := range inv.Nodes {
		names = append(names, n.Name)
	}
	for _, n := range opts.Nodes {
		if !slices.Contains(names, n) {
			return usageErr(fmt.Errorf("evacuate: unknown node %q in cluster %s (nodes: %s)", n, s.cfg.Cluster.Name, strings.Join(names, ", ")))
		}
	}
	// The run covers exactly these nodes, also those without pending updates, and
	// ends each one drained and paused (orchestrator.Policy.Evacuate).
	s.cfg.Policy.Nodes = opts.Nodes
	s.cfg.Policy.Force = true
	s.cfg.Policy.Evacuate = true
	if opts.DryRun {
		return dryRun(ctx, s, &ApplyOptions{f: opts.f, JSON: opts.JSON, DryRun: true})
	}
	if r, ok, err := unfinishedRun(s.store, s.cfg.Cluster.Name); err != nil {
		return failedErr(err)
	} else if ok {
		return failedErr(fmt.Errorf("cluster %s has unfinished run %s: finish it first (drover runs resume %s)", s.cfg.Cluster.Name, r.ID, r.ID))
	}
	prep, err := planOf(ctx, s)
	if err != nil {
		return classify(err)
	}
	for _, r := range prep.Records {
		if slices.Contains(opts.Nodes, r.Name) && r.State == orchestrator.NodeSkipped {
			return failedErr(fmt.Errorf("evacuate: node %s cannot be evacuated now: %s", r.Name, r.SkipReason))
		}
	}
	return confirmAndStart(ctx, s, prep, startRequest{
		command: "evacuate", question: fmt.Sprintf("Evacuate %s for good (drain, leave paused)?", strings.Join(opts.Nodes, ", ")),
		yes: opts.Yes, forceRecovery: opts.ForceRecovery, json: opts.JSON, io: opts.f.IO,
	})
}
