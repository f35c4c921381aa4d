package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/droverhq/drover/runs"
	"github.com/droverhq/drover/runs/report"
)

// NewCmdRuns builds `drover runs`.
func NewCmdRuns(f *Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "runs",
		Short: "List, show, watch, stop, resume, approve and report runs",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageErr(fmt.Errorf("missing subcommand: list, show, watch, report, stop, resume or approve; see '%s --help'", cmd.CommandPath()))
		},
	}
	cmd.AddCommand(newCmdRunsList(f), newCmdRunsShow(f), newCmdRunsWatch(f), newCmdRunsStop(f), newCmdRunsResume(f), newCmdRunsApprove(f), newCmdRunsReport(f, nil))
	return cmd
}

// RunsOptions are the options of the runs subcommands.
type RunsOptions struct {
	f             *Factory
	JSON          bool
	ID            string
	Wait          time.Duration
	ForceRecovery bool
}

func newCmdRunsList(f *Factory) *cobra.Command {
	opts := &RunsOptions{f: f}
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the runs of the cluster, newest first",
		Long: `List the runs of the configured cluster, newest first.

With --json: [{"id","cluster","state","started_at","finished_at","nodes","error"}].

Exit status: 0 success, 2 a usage or config error (including a state file held by a
running drover: read it after that run ends, or through the daemon's API).`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runsListRun(commandContext(cmd), opts) },
	}
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print JSON")
	return cmd
}

type runSummary struct {
	ID         string     `json:"id"`
	Cluster    string     `json:"cluster"`
	State      runs.State `json:"state"`
	StartedAt  time.Time  `json:"started_at"`
	FinishedAt time.Time  `json:"finished_at,omitzero"`
	Nodes      int        `json:"nodes"`
	Error      string     `json:"error,omitempty"`
}

func runsListRun(ctx context.Context, opts *RunsOptions) error {
	if opts.f.remote() {
		return remoteRunsList(ctx, opts)
	}
	s, err := opts.f.openSession(ctx, sessionOptions{store: readStore, command: "runs list"})
	list := []runSummary{}
	if sc := opts.f.lockedStatus(err); sc != nil {
		// A drover process holds the file: ask it.
		if err := sc.get(ctx, "/runs", &list); err != nil {
			return failedErr(err)
		}
		return printRunList(opts, list)
	}
	if err != nil {
		return err
	}
	defer s.Close()
	if s.store != nil {
		rs, err := s.store.Runs(s.cfg.Cluster.Name)
		if err != nil {
			return failedErr(err)
		}
		for _, r := range rs {
			list = append(list, runSummary{ID: r.ID, Cluster: r.Cluster, State: r.State, StartedAt: r.StartedAt, FinishedAt: r.FinishedAt, Nodes: len(r.Order), Error: r.Error})
		}
	}
	return printRunList(opts, list)
}

func printRunList(opts *RunsOptions, list []runSummary) error {
	if opts.JSON {
		return printJSON(opts.f.IO.Out, list)
	}
	tw := tabwriter.NewWriter(report.SafeWriter(opts.f.IO.Out), 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tCLUSTER\tSTATE\tSTARTED\tDURATION\tNODES\tERROR")
	for _, r := range list {
		dur := "-"
		if !r.FinishedAt.IsZero() {
			dur = r.FinishedAt.Sub(r.StartedAt).Round(time.Second).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", r.ID, r.Cluster, r.State, r.StartedAt.Local().Format("2006-01-02 15:04:05"), dur, r.Nodes, r.Error)
	}
	return tw.Flush()
}

func newCmdRunsShow(f *Factory) *cobra.Command {
	opts := &RunsOptions{f: f}
	cmd := &cobra.Command{
		Use:   "show ID",
		Short: "Show the report of one run",
		Long: `Show the report of one run. ID may be a unique prefix of a run ID, or "last".

With --json: the same object 'apply --json' prints.

Exit status: 0 success, 1 no such run, 2 a usage or config error.`,
		Args: exactArgs(1, "ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.ID = args[0]
			return runsShowRun(commandContext(cmd), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print JSON")
	return cmd
}

func exactArgs(n int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usageErr(fmt.Errorf("%s needs %s (got %d arguments); see '%s --help'", cmd.CommandPath(), names, len(args), cmd.CommandPath()))
		}
		return nil
	}
}

// findRun resolves an ID, a unique prefix of one, or "last".
// loadReport finds run id of cluster in the state file and builds its report.
func loadReport(st *runs.Store, cluster, id string) (runs.Run, report.Report, error) {
	r, err := findRun(st, cluster, id)
	if err != nil {
		return runs.Run{}, report.Report{}, err
	}
	nodes, err := st.Nodes(r.ID)
	if err != nil {
		return r, report.Report{}, err
	}
	return r, report.Build(r, nodes), nil
}

func findRun(st *runs.Store, cluster, id string) (runs.Run, error) {
	if st == nil {
		return runs.Run{}, fmt.Errorf("run %s: %w: no state file yet (check --state or the config key state; `drover apply` starts a run)", id, runs.ErrNotFound)
	}
	rs, err := st.Runs(cluster)
	if err != nil {
		return runs.Run{}, err
	}
	if id == "last" && len(rs) > 0 {
		return rs[0], nil
	}
	var found []runs.Run
	for _, r := range rs {
		if r.ID == id {
			return r, nil
		}
		if strings.HasPrefix(r.ID, id) {
			found = append(found, r)
		}
	}
	switch len(found) {
	case 0:
		if other, err := st.Run(id); err == nil && other.Cluster != cluster {
			// The ID is right, the cluster is not: never act on another cluster's run.
			return runs.Run{}, usageErr(fmt.Errorf("run %s belongs to cluster %s, not %s: give --cluster-name %s", id, other.Cluster, cluster, other.Cluster))
		}
		return runs.Run{}, fmt.Errorf("run %s of cluster %s: %w; see `drover runs list`", id, cluster, runs.ErrNotFound)
	case 1:
		return found[0], nil
	}
	return runs.Run{}, fmt.Errorf("run ID prefix %s matches %d runs; give more of the ID", id, len(found))
}

func runsShowRun(ctx context.Context, opts *RunsOptions) error {
	if opts.f.remote() {
		return remoteRunsShow(ctx, opts)
	}
	s, err := opts.f.openSession(ctx, sessionOptions{store: readStore, command: "runs show"})
	var rep report.Report
	if sc := opts.f.lockedStatus(err); sc != nil {
		if err := sc.get(ctx, "/runs/"+opts.ID, &rep); err != nil {
			return failedErr(err)
		}
	} else {
		if err != nil {
			return err
		}
		defer s.Close()
		if _, rep, err = loadReport(s.store, s.cfg.Cluster.Name, opts.ID); err != nil {
			return failedErr(err)
		}
	}
	if opts.JSON {
		return printJSON(opts.f.IO.Out, rep)
	}
	printReport(opts.f.IO.Out, rep)
	return nil
}

func newCmdRunsResume(f *Factory) *cobra.Command {
	opts := &RunsOptions{f: f}
	cmd := &cobra.Command{
		Use:   "resume ID",
		Short: "Continue an interrupted run where it stopped",
		Long: `Continue an interrupted run where it stopped. Drover reconciles the journal with
the live cluster first: a migration that finished while it was away is recorded, one
still in flight is joined, none is started twice.

Exit status: 0 the run succeeded, 1 it failed or was interrupted again, 2 a usage or
config error.`,
		Args: exactArgs(1, "ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.ID = args[0]
			return runsResumeRun(commandContext(cmd), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print the report as one line of JSON")
	cmd.Flags().BoolVar(&opts.ForceRecovery, "force-recovery", false, "take over a run lock held by a process on another host")
	return cmd
}

func runsResumeRun(ctx context.Context, opts *RunsOptions) error {
	if opts.f.remote() {
		return remoteRunAction(ctx, opts, "resume")
	}
	s, err := opts.f.openSession(ctx, sessionOptions{store: writeStore, driver: true, quiet: true, command: "runs resume"})
	if err != nil {
		return err
	}
	defer s.Close()
	r, err := findRun(s.store, s.cfg.Cluster.Name, opts.ID)
	if err != nil {
		return failedErr(err)
	}
	if r.State.Terminal() {
		return failedErr(fmt.Errorf("run %s has already ended (%s); nothing to resume", r.ID, r.State))
	}
	eng, err := s.engine(opts.ForceRecovery)
	if err != nil {
		return failedErr(err)
	}
	return execute(ctx, s, eng, r.ID, opts.JSON)
}

func newCmdRunsStop(f *Factory) *cobra.Command {
	opts := &RunsOptions{f: f}
	cmd := &cobra.Command{
		Use:   "stop ID",
		Short: "Stop a run: resume the node in maintenance and start no further node",
		Long: `Stop a run. The drain in progress is aborted (each VM stays where it is), the
node in maintenance is resumed, a node already patching finishes, and no further node
starts. The cluster is left explicit: every node resumed, or reported as left paused
with the reason.

If the run's process is alive on this host, stop signals it (SIGUSR1) and waits up to
--wait for it to end. If the run was interrupted, stop finishes it here.

Exit status: 0 the run is stopped (or had already ended), 1 it could not be stopped,
2 a usage or config error.`,
		Args: exactArgs(1, "ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.ID = args[0]
			return runsStopRun(commandContext(cmd), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print the report as one line of JSON")
	cmd.Flags().DurationVar(&opts.Wait, "wait", 10*time.Minute, "how long to wait for a live run to stop")
	return cmd
}

func runsStopRun(ctx context.Context, opts *RunsOptions) error {
	if opts.f.remote() {
		return remoteRunAction(ctx, opts, "stop")
	}
	cfg, err := opts.f.Config()
	if err != nil {
		return err
	}
	path, err := statePath(cfg, false)
	if err != nil {
		return usageErr(err)
	}
	// Only a drover that really holds the state file is signalled (SignalTarget
	// says why not otherwise); nobody holding it means the run was interrupted, and
	// it is finished here.
	holder, herr := runs.SignalTarget(path)
	var nd *runs.NotDroverError
	switch {
	case errors.As(herr, &nd):
		return failedErr(fmt.Errorf("the state file %s is held by another process; %w; stop it yourself, then run `drover runs stop %s` again", path, herr, opts.ID))
	case herr != nil && !errors.Is(herr, runs.ErrNotHeld):
		return failedErr(herr)
	}
	live := herr == nil
	if live && holder.Command == runs.DaemonCommand {
		// The daemon holds the file as long as it runs and ignores SIGUSR1.
		return usageErr(fmt.Errorf("the state file %s is held by the daemon, %s: stop the run through its API: drover runs stop %s --server URL", path, holder, opts.ID))
	}
	// A live run holds the state file: signal its process and wait for the file.
	if live && holder.PID != os.Getpid() {
		fmt.Fprintf(opts.f.IO.ErrOut, "asking %s to stop the run\n", holder)
		if err := runs.Signal(holder, syscall.SIGUSR1); err != nil {
			return failedErr(err)
		}
		deadline := time.Now().Add(opts.Wait)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for runs.CheckAlive(holder) == runs.Alive {
			if h, err := runs.HolderOf(path); err != nil || h.PID != holder.PID {
				break
			}
			if time.Now().After(deadline) {
				return failedErr(fmt.Errorf("%s did not stop within --wait %s", holder, opts.Wait))
			}
			select {
			case <-tick.C:
			case <-ctx.Done():
				return failedErr(ctx.Err())
			}
		}
	}
	s, err := opts.f.openSession(ctx, sessionOptions{store: writeStore, driver: true, quiet: true, command: "runs stop"})
	if err != nil {
		return err
	}
	defer s.Close()
	r, err := findRun(s.store, s.cfg.Cluster.Name, opts.ID)
	if err != nil {
		return failedErr(err)
	}
	if r.State.Terminal() {
		nodes, err := s.store.Nodes(r.ID)
		if err != nil {
			return failedErr(err)
		}
		if opts.JSON {
			return printJSON(opts.f.IO.Out, report.Build(r, nodes))
		}
		fmt.Fprintf(opts.f.IO.Out, "run %s has ended: %s\n", r.ID, r.State)
		return nil
	}
	eng, err := s.engine(false)
	if err != nil {
		return failedErr(err)
	}
	eng.Stop(r.ID)
	err = execute(ctx, s, eng, r.ID, opts.JSON)
	if final, rerr := s.store.Run(r.ID); rerr == nil && final.State == runs.StateStopped {
		return nil
	}
	if err == nil {
		err = errors.New("run ended before the stop took effect")
	}
	return err
}
