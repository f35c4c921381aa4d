package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/droverhq/drover/cmd/drover/internal/wire"
	"github.com/droverhq/drover/orchestrator"
	"github.com/droverhq/drover/runs"
	"github.com/droverhq/drover/runs/report"
)

// ApplyOptions are the options of `drover apply`.
type ApplyOptions struct {
	f             *Factory
	JSON          bool
	Yes           bool
	DryRun        bool
	ForceRecovery bool
}

// NewCmdApply builds `drover apply`.
func NewCmdApply(f *Factory, runF func(context.Context, *ApplyOptions) error) *cobra.Command {
	opts := &ApplyOptions{f: f}
	cmd := &cobra.Command{
		Use:   "apply",
		Short: "Patch the cluster now, one node at a time",
		Long: `Patch the cluster now: for each node in turn, pause it, drain it with bounded
concurrent live migrations, install its updates, reboot it, wait until it is back,
resume it and (with policy.failback) move its VMs back.

If the cluster has an interrupted run, apply offers to resume it (--yes accepts).
On a terminal apply shows live progress; otherwise it prints a line per event.
With --json, progress goes to stderr and stdout gets one line: the run's report
{"id","state","nodes":[{"name","state","updates_installed","migrations":[{"vm","from","to","seconds"}]}]}.

Ctrl-C (SIGINT) or SIGTERM interrupts the run: migrations in flight are aborted, the
state is journaled, and 'drover runs resume ID' continues it. SIGUSR1 (sent by
'drover runs stop') stops it: the node in maintenance is resumed, no further node starts.

With policy.canary the run stops after its first node and waits for
'drover runs approve ID'; apply then exits 0 with the report's state waiting_approval.
--dry-run prints the whole plan (see 'drover plan') and changes nothing.

Exit status: 0 the run succeeded (or waits for approval), 1 it failed, was stopped or
interrupted, 2 a usage or config error (nothing is changed).`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(commandContext(cmd), opts)
			}
			return applyRun(commandContext(cmd), opts)
		},
	}
	fs := cmd.Flags()
	fs.BoolVar(&opts.JSON, "json", false, "print the report as one line of JSON (progress goes to stderr)")
	fs.BoolVarP(&opts.Yes, "yes", "y", false, "do not ask for confirmation")
	fs.BoolVar(&opts.DryRun, "dry-run", false, "show what would be done and change nothing")
	fs.BoolVar(&opts.ForceRecovery, "force-recovery", false, "take over a run lock held by a process on another host")
	bindPolicyFlags(f, fs)
	return cmd
}

func applyRun(ctx context.Context, opts *ApplyOptions) error {
	if opts.f.remote() {
		return remoteApply(ctx, opts)
	}
	mode := writeStore
	if opts.DryRun {
		mode = readStore
	}
	s, err := opts.f.openSession(ctx, sessionOptions{store: mode, driver: true, quiet: true, command: "apply"})
	if err != nil {
		return err
	}
	defer s.Close()
	io := opts.f.IO
	if opts.DryRun {
		return dryRun(ctx, s, opts)
	}
	// The interrupted run and the new run's input are checked before the state
	// file is opened for writing: bad input writes nothing.
	if r, ok, err := unfinishedRun(s.store, s.cfg.Cluster.Name); err != nil {
		return failedErr(err)
	} else if ok {
		ue := &orchestrator.UnfinishedRunError{Run: r, Live: runs.CheckAlive(r.Owner) == runs.Alive}
		if ue.Live || r.State == runs.StateWaitingApproval {
			return failedErr(ue)
		}
		if !opts.Yes && !confirm(io, fmt.Sprintf("Run %s was interrupted. Resume it now?", r.ID)) {
			return failedErr(fmt.Errorf("%w (or pass --yes to resume it)", ue))
		}
		eng, err := s.engine(opts.ForceRecovery)
		if err != nil {
			return err
		}
		fmt.Fprintf(progressWriter(io, opts.JSON), "resuming interrupted run %s\n", r.ID)
		return execute(ctx, s, eng, r.ID, opts.JSON)
	}
	prep, err := planOf(ctx, s)
	if err != nil {
		return classify(err)
	}
	if nothingToDo(prep) {
		// No run is recorded: a history of empty "succeeded" runs would say the
		// cluster was patched when nothing was.
		if opts.JSON {
			return printJSON(io.Out, report.Report{Cluster: s.cfg.Cluster.Name, State: "nothing_to_do", Nodes: []report.Node{}})
		}
		printPrepared(io.Out, prep)
		fmt.Fprintf(io.Out, "Nothing to do on cluster %s: no node is to be patched; no run was started or recorded.\n", s.cfg.Cluster.Name)
		return nil
	}
	return confirmAndStart(ctx, s, prep, startRequest{
		command: "apply", question: startQuestion(s, prep),
		yes: opts.Yes, forceRecovery: opts.ForceRecovery, json: opts.JSON, io: io,
	})
}

// startRequest is how a command that changes the cluster (apply, evacuate) asks to
// start a prepared run.
type startRequest struct {
	command, question        string
	yes, forceRecovery, json bool
	io                       IOStreams
}

// confirmAndStart shows the plan and asks question unless --yes (off a terminal,
// --yes is required), then starts the run and executes it to its report.
func confirmAndStart(ctx context.Context, s *session, prep orchestrator.Prepared, req startRequest) error {
	if !req.yes {
		printPrepared(req.io.ErrOut, prep)
		if !req.io.IsTerminal {
			return usageErr(fmt.Errorf("%s changes the cluster: confirm with --yes (or run on a terminal)", req.command))
		}
		if !confirm(req.io, req.question) {
			return failedErr(errors.New("not started"))
		}
	}
	eng, err := s.engine(req.forceRecovery)
	if err != nil {
		return err
	}
	runID, err := eng.Start(ctx, prep)
	if err != nil {
		return classify(err)
	}
	return execute(ctx, s, eng, runID, req.json)
}

// unfinishedRun returns the newest run of cluster that has not finished, if any (st
// may be nil: no state file yet).
func unfinishedRun(st *runs.Store, cluster string) (runs.Run, bool, error) {
	if st == nil {
		return runs.Run{}, false, nil
	}
	rs, err := st.Runs(cluster)
	if err != nil {
		return runs.Run{}, false, err
	}
	for _, r := range rs {
		if !r.State.Terminal() {
			return r, true, nil
		}
	}
	return runs.Run{}, false, nil
}

// classify gives config-like errors exit status 2 and the rest 1.
func classify(err error) error {
	if ExitCode(err) == ExitUsage {
		return usageErr(err)
	}
	return failedErr(err)
}

func progressWriter(io IOStreams, jsonOut bool) io.Writer {
	if jsonOut {
		return io.ErrOut
	}
	return io.Out
}

func confirm(io IOStreams, question string) bool {
	if !io.IsTerminal {
		return false
	}
	fmt.Fprintf(io.ErrOut, "%s [y/N] ", question)
	line, _ := bufio.NewReader(io.In).ReadString('\n')
	answer := strings.ToLower(strings.TrimSpace(line))
	return answer == "y" || answer == "yes"
}

func printPrepared(w io.Writer, prep orchestrator.Prepared) {
	w = report.SafeWriter(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tNODE\tPENDING UPDATES\tACTION")
	for i, r := range prep.Records {
		action := "patch"
		if r.State == orchestrator.NodeSkipped {
			action = "skip: " + r.SkipReason
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%s\n", i+1, r.Name, len(r.Pending), action)
	}
	tw.Flush()
}

func dryRun(ctx context.Context, s *session, opts *ApplyOptions) error {
	prep, err := planOf(ctx, s)
	if err != nil {
		return classify(err)
	}
	var unfinished *runs.Run
	if s.store != nil {
		rs, err := s.store.Runs(s.cfg.Cluster.Name)
		if err != nil {
			return failedErr(err)
		}
		for _, r := range rs {
			if !r.State.Terminal() {
				unfinished = &r
				break
			}
		}
	}
	if opts.JSON {
		id := ""
		if unfinished != nil {
			id = unfinished.ID
		}
		// The daemon's preview is the same object: apply --dry-run --server prints it.
		return printJSON(opts.f.IO.Out, wire.NewPreview(s.cfg.Cluster.Name, prep, id))
	}
	if unfinished != nil {
		fmt.Fprintf(opts.f.IO.Out, "Run %s is unfinished: apply would offer to resume it instead of starting this one.\n", unfinished.ID)
	}
	fmt.Fprintln(opts.f.IO.Out, "Dry run: nothing will be changed. A new run would do:")
	printPrepared(opts.f.IO.Out, prep)
	fmt.Fprintln(opts.f.IO.Out)
	return printPlan(opts.f.IO.Out, s.cfg.Cluster.Name, prep.Plan)
}

// execute runs (or resumes) a run with a progress display and prints its report.
func execute(ctx context.Context, s *session, eng *orchestrator.Engine, runID string, jsonOut bool) error {
	io := s.io
	if err := s.checkStoredPolicy(runID); err != nil {
		return err
	}
	nodes, err := s.store.Nodes(runID)
	if err != nil {
		return failedErr(err)
	}
	order := make([]string, 0, len(nodes))
	for _, n := range nodes {
		order = append(order, n.Name)
	}
	live := io.IsTerminal && !jsonOut
	d := newDisplay(progressWriter(io, jsonOut), live, io.TermWidth, order)
	for _, n := range nodes {
		d.setState(n.Name, n.State)
	}
	remove := s.observers.Add(d)
	defer remove()
	go d.run()
	restoreLog := s.logTo.set(d.logWriter(io.ErrOut))
	defer restoreLog()
	// Other terminals watch this run through the status socket (runs list|show|watch).
	stopStatus := serveStatus(s)
	defer stopStatus()

	stopSig := make(chan os.Signal, 1)
	signal.Notify(stopSig, syscall.SIGUSR1)
	defer signal.Stop(stopSig)
	go func() {
		for range stopSig {
			s.log.Warn("stop requested", "run_id", runID)
			eng.Stop(runID)
		}
	}()

	run, execErr := eng.Execute(ctx, runID)
	d.stop()
	if run.ID == "" {
		// The run could not even be claimed (its lock is held, its record unreadable).
		return failedErr(execErr)
	}
	nodes, err = s.store.Nodes(runID)
	if err != nil {
		return failedErr(errors.Join(execErr, err))
	}
	rep := report.Build(run, nodes)
	if jsonOut {
		if err := printJSON(io.Out, rep); err != nil {
			return err
		}
	} else {
		printReport(io.Out, rep)
	}
	switch {
	case errors.Is(execErr, orchestrator.ErrInterrupted):
		return failedErr(fmt.Errorf("run %s interrupted; continue it with: drover runs resume %s", runID, runID))
	case errors.Is(execErr, orchestrator.ErrAwaitingApproval):
		return failedErr(execErr)
	case run.State == runs.StateWaitingApproval:
		fmt.Fprintf(io.ErrOut, "run %s waits after its canary node: check it, then continue with `drover runs approve %s`\n", runID, runID)
		return nil
	case run.State != runs.StateSucceeded:
		return failedErr(fmt.Errorf("run %s %s", runID, report.StateAndReason(string(run.State), run.Error)))
	}
	return nil
}

// printReport writes a report for people.
func printReport(w io.Writer, rep report.Report) {
	w = report.SafeWriter(w)
	fmt.Fprintf(w, "Run %s on cluster %s: %s\n", rep.ID, rep.Cluster, report.StateAndReason(rep.State, rep.Error))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tSTATE\tUPDATES\tMIGRATIONS\tCLUSTER TIME\tNOTE")
	for _, n := range rep.Nodes {
		note := n.Failure
		if note == "" {
			note = n.SkipReason
		}
		if n.LeftPaused != "" {
			note = "LEFT PAUSED: " + n.LeftPaused
		}
		state := n.State
		if state == orchestrator.NodeQueued && runs.State(rep.State).Terminal() {
			// The run ended: it never comes back to this node, which is not waiting
			// in any queue.
			state, note = "skipped", "not started: the run "+rep.State+" before this node's turn"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d installed, %d failed\t%d (%s)\t%.0fs\t%s\n",
			n.Name, state, n.UpdatesInstalled, n.UpdatesFailed, len(n.Migrations), report.Count(len(n.FailedMigrations), "failed attempt", "failed attempts")+report.Aborted(len(n.AbortedMigrations)), n.Seconds, note)
	}
	tw.Flush()
	sm := rep.Summary
	fmt.Fprintf(w, "%d/%s done, %d failed, %d skipped; %s installed; %s, %s moved more than once (%.2f drain moves per VM), %.0f MiB moved\n",
		sm.NodesDone, report.Count(sm.Nodes, "node", "nodes"), sm.NodesFailed, sm.NodesSkipped, report.Count(sm.UpdatesInstalled, "update", "updates"), report.Count(sm.Migrations, "migration", "migrations"), report.Count(sm.MovedMoreThanOnce, "VM", "VMs"), sm.MigrationsPerVM, sm.TransferredMiB)
	for _, v := range sm.VMsLeftRunning {
		fmt.Fprintf(w, "WARNING: vm %s was left running through its node's reboot (policy.non_migratable=skip)\n", v)
	}
	for _, n := range sm.LeftPaused {
		fmt.Fprintf(w, "WARNING: node %s is left paused\n", n)
	}
	for _, a := range sm.VMsAway {
		fmt.Fprintf(w, "WARNING: %s\n", a)
	}
}

// startQuestion is the [y/N] question of apply: what the run will do, how long the
// plan expects it to take and under which policy, so that the answer is informed.
func startQuestion(s *session, prep orchestrator.Prepared) string {
	q := fmt.Sprintf("Policy of cluster %s: %s\n", s.cfg.Cluster.Name, wire.PolicyLine(wire.PublicPolicy(s.cfg.Policy)))
	if p := prep.Plan; p != nil {
		q += fmt.Sprintf("Plan: %s, %s, ETA %s of cluster time.\n", report.Count(len(p.Order), "node", "nodes"), report.Count(p.Migrations, "migration", "migrations"), roundDur(p.ETA))
	}
	return q + "Start the run?"
}

// nothingToDo: every node of a new run would be skipped (up to date, down, paused).
func nothingToDo(prep orchestrator.Prepared) bool {
	for _, r := range prep.Records {
		if r.State != orchestrator.NodeSkipped {
			return false
		}
	}
	return true
}
