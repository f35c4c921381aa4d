package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/droverhq/drover/drivers"
	"github.com/droverhq/drover/orchestrator/readiness"
	"github.com/droverhq/drover/runs"
	"github.com/droverhq/drover/runs/report"
)

// AnalyzeOptions are the options of `drover analyze`.
type AnalyzeOptions struct {
	f    *Factory
	JSON bool
}

// NewCmdAnalyze builds `drover analyze` (CAU's Test-CauSetup, deeper).
func NewCmdAnalyze(f *Factory, runF func(context.Context, *AnalyzeOptions) error) *cobra.Command {
	opts := &AnalyzeOptions{f: f}
	cmd := &cobra.Command{
		Use:   "analyze",
		Short: "Check whether the cluster is ready for a run (changes nothing)",
		Long: `Check whether the cluster is ready for a run with the configured policy. Each
check prints pass, warn or fail, what it found and, when it is not a pass, what to do:

  run_timeouts        policy.warn_after is less than policy.stop_after
  hooks               pre/post hooks and the health check command exist and are executable
  no_active_run       no other run holds the cluster (state file read-only); stale locks
  driver_reachable    the driver opens and returns an inventory
  inventory_valid     unique names, VMs on known nodes
  nodes_up            every node up (policy.require_all_nodes_online), else a majority
  update_plugin       the update plug-in answers on every ready node
  node_order          the nodes the run would maintain, in order
  vms_movable         every running VM can live-migrate somewhere (capacity, CPU group,
                      networks by name and VLAN, anti-affinity) or is covered by
                      policy.non_migratable
  reserve_now         the N-k reserve (policy.reserve_nodes) holds now
  reserve_during_run  ... and while each node in turn is out for maintenance
  health_gate         the health gate's check passes now (when one is configured)

With --json: {"cluster","ready","checks":[{"name","status","message","remedy"}]}.
With --server URL the daemon runs the checks, with the policy of its config.

Exit status: 0 ready (no check failed), 1 a check failed, 2 a usage or config error.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(commandContext(cmd), opts)
			}
			return analyzeRun(commandContext(cmd), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print JSON")
	bindPolicyFlags(f, cmd.Flags())
	return cmd
}

func analyzeRun(ctx context.Context, opts *AnalyzeOptions) error {
	if opts.f.remote() {
		return remoteAnalyze(ctx, opts)
	}
	// Config errors are usage errors; what cannot be reached is a finding.
	s, err := opts.f.openSession(ctx, sessionOptions{store: noStore, command: "analyze"})
	if err != nil {
		return err
	}
	defer s.Close()
	cfg := s.cfg
	dc, err := cfg.DriverConfig()
	if err != nil {
		return usageErr(err)
	}
	ukind, uc, err := cfg.UpdaterConfig()
	if err != nil {
		return usageErr(err)
	}
	path, err := statePath(cfg, false)
	if err != nil {
		return usageErr(err)
	}
	acfg := readiness.AnalyzeConfig{Cluster: cfg.Cluster.Name, Policy: cfg.Policy}
	st, err := runs.Open(path, runs.Options{ReadOnly: true, Timeout: 300 * time.Millisecond})
	switch {
	case errors.Is(err, runs.ErrNoState):
	case err != nil:
		acfg.StoreErr = err
	default:
		acfg.Store = st
		defer st.Close()
	}
	env := drivers.Env{Logger: s.log.With("driver", cfg.Cluster.Driver), BaseDir: cfg.BaseDir}
	if d, err := dc.Open(ctx, env); err != nil {
		acfg.DriverErr = err
	} else {
		s.driver = d // closed with the session
		acfg.Driver = d
		env.Driver = d
		env.Logger = s.log.With("updater", ukind)
		if acfg.Updater, err = uc.Open(ctx, env); err != nil {
			acfg.Updater, acfg.UpdaterErr = nil, err
		}
	}
	a := readiness.Analyze(ctx, acfg)
	if opts.JSON {
		if err := printJSON(opts.f.IO.Out, a); err != nil {
			return err
		}
	} else if err := printAnalysis(opts.f.IO.Out, a); err != nil {
		return err
	}
	if !a.Ready {
		return failedErr(fmt.Errorf("cluster %s is not ready: %d check(s) failed", a.Cluster, a.Count(readiness.CheckFail)))
	}
	return nil
}

// printAnalysis writes the checks for people: one line each, the remedy below a
// check that did not pass.
func printAnalysis(w io.Writer, a readiness.Analysis) error {
	tw := tabwriter.NewWriter(report.SafeWriter(w), 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STATUS\tCHECK\tMESSAGE")
	for _, c := range a.Checks {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", strings.ToUpper(string(c.Status)), c.Name, c.Message)
		if c.Remedy != "" && c.Status != readiness.CheckPass {
			fmt.Fprintf(tw, "\t\tremedy: %s\n", c.Remedy)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	verdict := "ready"
	if !a.Ready {
		verdict = "NOT ready"
	}
	_, err := fmt.Fprintf(w, "Cluster %s is %s: %d passed, %s, %d failed.\n", a.Cluster, verdict,
		a.Count(readiness.CheckPass), report.Count(a.Count(readiness.CheckWarn), "warning", "warnings"), a.Count(readiness.CheckFail))
	return err
}
