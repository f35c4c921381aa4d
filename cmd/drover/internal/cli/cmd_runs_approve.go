package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
)

func newCmdRunsApprove(f *Factory) *cobra.Command {
	opts := &RunsOptions{f: f}
	cmd := &cobra.Command{
		Use:   "approve ID",
		Short: "Approve a canary run and continue it",
		Long: `Approve a run that waits after its canary node (policy.canary) and continue it
here, as 'runs resume' does: the health gate runs, then the next node starts.
Approving a run that has not reached its canary yet makes it go on without stopping.

Exit status: 0 the run succeeded, 1 it failed, was stopped or interrupted (or cannot
be approved: it has ended, or another process holds the state file), 2 a usage or
config error.`,
		Args: exactArgs(1, "ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.ID = args[0]
			return runsApproveRun(commandContext(cmd), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print the report as one line of JSON")
	return cmd
}

func runsApproveRun(ctx context.Context, opts *RunsOptions) error {
	if opts.f.remote() {
		return remoteRunAction(ctx, opts, "approve")
	}
	s, err := opts.f.openSession(ctx, sessionOptions{store: writeStore, driver: true, quiet: true, command: "runs approve"})
	if err != nil {
		return err
	}
	defer s.Close()
	r, err := findRun(s.store, s.cfg.Cluster.Name, opts.ID)
	if err != nil {
		return failedErr(err)
	}
	if err := s.checkStoredPolicy(r.ID); err != nil {
		return err
	}
	eng, err := s.engine(false)
	if err != nil {
		return failedErr(err)
	}
	if err := eng.Approve(r.ID); err != nil {
		return failedErr(err)
	}
	fmt.Fprintf(progressWriter(s.io, opts.JSON), "run %s approved; continuing it\n", r.ID)
	return execute(ctx, s, eng, r.ID, opts.JSON)
}
