package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/droverhq/drover/orchestrator"
	"github.com/droverhq/drover/runs"
	"github.com/droverhq/drover/runs/report"
)

func newCmdRunsWatch(f *Factory) *cobra.Command {
	opts := &RunsOptions{f: f}
	cmd := &cobra.Command{
		Use:   "watch ID",
		Short: "Follow a run live until it ends, then print its report",
		Long: `Follow a run live (the display of apply) until it ends, then print its report. ID
may be a unique prefix of a run ID, or "last". It changes nothing: Ctrl-C stops
watching, not the run.

Works on a run of the daemon (--server), and on a run another terminal's
'drover apply' is executing: that process holds the state file and answers on its
status socket (STATE.sock, readable only by its owner). A run nobody executes is
reported as it is.

Exit status: 0 the run succeeded (or waits for approval), 1 it failed, was stopped or
interrupted, or no such run, 2 a usage or config error.`,
		Args: exactArgs(1, "ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.ID = args[0]
			return runsWatchRun(commandContext(cmd), opts)
		},
	}
	return cmd
}

func runsWatchRun(ctx context.Context, opts *RunsOptions) error {
	f := opts.f
	if f.remote() {
		c, err := f.apiClient()
		if err != nil {
			return err
		}
		cluster, err := f.runCluster(ctx, c, opts.ID)
		if err != nil {
			return err
		}
		rep, err := c.Report(ctx, cluster, opts.ID)
		if err != nil {
			return remoteErr(err)
		}
		if runs.State(rep.State).Terminal() {
			printReport(f.IO.Out, rep)
			return endStatus(rep)
		}
		return followRemote(ctx, f, c, rep.ID, false, 0)
	}
	s, err := f.openSession(ctx, sessionOptions{store: readStore, command: "runs watch"})
	sc := f.lockedStatus(err)
	if sc == nil {
		if err != nil {
			return err
		}
		defer s.Close()
		r, rep, err := loadReport(s.store, s.cfg.Cluster.Name, opts.ID)
		if err != nil {
			return failedErr(err)
		}
		printReport(f.IO.Out, rep)
		if !r.State.Terminal() && r.State != runs.StateWaitingApproval {
			return failedErr(fmt.Errorf("run %s is not being executed by any drover process: continue it with `drover runs resume %s`", r.ID, r.ID))
		}
		return endStatus(rep)
	}
	var rep report.Report
	if err := sc.get(ctx, "/runs/"+opts.ID, &rep); err != nil {
		return failedErr(err)
	}
	order := make([]string, 0, len(rep.Nodes))
	for _, n := range rep.Nodes {
		order = append(order, n.Name)
	}
	d := newDisplay(f.IO.Out, f.IO.IsTerminal, f.IO.TermWidth, order)
	for _, n := range rep.Nodes {
		d.setState(n.Name, n.State)
	}
	go d.run()
	if !runs.State(rep.State).Terminal() {
		err = sc.events(ctx, rep.ID, func(ev orchestrator.Event) bool {
			d.Observe(ev)
			return ev.Kind == orchestrator.EventRunFinished || ev.Kind == orchestrator.EventApprovalNeeded
		})
	}
	d.stop()
	if ctx.Err() != nil {
		return failedErr(fmt.Errorf("stopped watching run %s; it goes on", rep.ID))
	}
	if err != nil {
		return failedErr(err)
	}
	// The final report: from the process if it still answers, else from the file it
	// releases as it exits (the event may arrive while it is closing).
	final, done := rep, false
	if sc2 := dialStatus(s2path(f)); sc2 != nil {
		var got report.Report
		if err := sc2.get(ctx, "/runs/"+rep.ID, &got); err == nil && finalState(got.State) {
			final, done = got, true
		}
	}
	for deadline := time.Now().Add(finalReportWait); !done && time.Now().Before(deadline) && ctx.Err() == nil; {
		if s, err := f.openSession(ctx, sessionOptions{store: readStore, command: "runs watch"}); err == nil {
			if _, got, err := loadReport(s.store, s.cfg.Cluster.Name, rep.ID); err == nil {
				final, done = got, true
			}
			s.Close()
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	printReport(f.IO.Out, final)
	return endStatus(final)
}

// finalReportWait bounds how long runs watch waits for the running process to
// release the state file once the run has ended.
const finalReportWait = 10 * time.Second

// finalState reports whether a run in state st has stopped moving (ended, or waiting
// for an approval).
func finalState(st string) bool {
	return runs.State(st).Terminal() || runs.State(st) == runs.StateWaitingApproval
}

// s2path is the state file's path of the config (for a second look at the socket).
func s2path(f *Factory) string {
	cfg, err := f.Config()
	if err != nil {
		return ""
	}
	p, _ := statePath(cfg, false)
	return p
}

// endStatus is the exit status of a run's end, as apply's.
func endStatus(rep report.Report) error {
	switch runs.State(rep.State) {
	case runs.StateSucceeded, runs.StateWaitingApproval:
		return nil
	}
	return failedErr(errors.New("run " + rep.ID + " " + report.StateAndReason(rep.State, rep.Error)))
}
