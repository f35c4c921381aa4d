package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/droverhq/drover/runs"
	"github.com/droverhq/drover/runs/report"
)

// NewCmdState builds `drover state`: check and repair the state file.
func NewCmdState(f *Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "state",
		Short: "Check or repair the state file",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageErr(fmt.Errorf("missing subcommand: check or repair; see '%s --help'", cmd.CommandPath()))
		},
	}
	var jsonOut bool
	check := &cobra.Command{
		Use:   "check",
		Short: "Read the whole state file and say whether it is intact (changes nothing)",
		Long: `Read the whole state file (config key state, or --state) without changing it:
its header and length, bbolt's page consistency, and every run record. Run records
that cannot be read are listed; the daemon moves them aside ("quarantined") at start-up
so that every other run goes on, and check lists those too.

With --json: {"path","damaged","problems","corrupt","quarantined","runs"}.

Exit status: 0 the file is intact, 1 it is damaged or holds unreadable records (see
'drover state repair'), 2 a usage or config error (including a file held by a running
drover).`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return stateCheckRun(commandContext(cmd), f, jsonOut) },
	}
	check.Flags().BoolVar(&jsonOut, "json", false, "print JSON")
	repair := &cobra.Command{
		Use:   "repair",
		Short: "Copy every readable record of a damaged state file into a new one",
		Long: `Copy every record of the state file that can still be read into a new state
file, keep the damaged one next to it as FILE.damaged-TIMESTAMP, and put the new one in
its place. Run records that cannot be read are kept in the new file's quarantine.
Stop every drover using the file first (repair refuses a file in use).

Exit status: 0 repaired, 1 the repair failed, 2 a usage or config error.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return stateRepairRun(commandContext(cmd), f) },
	}
	cmd.AddCommand(check, repair)
	cmd.AddCommand(newCmdStateMove(f)...)
	return cmd
}

func stateFileOf(f *Factory) (string, error) {
	cfg, err := f.Config()
	if err != nil {
		return "", err
	}
	path, err := statePath(cfg, false)
	if err != nil {
		return "", usageErr(err)
	}
	return path, nil
}

// stateErr maps an error about the state file to its exit status.
func stateErr(err error) error {
	var le *runs.LockedError
	var ue *runs.UntrustedError
	switch {
	case errors.As(err, &le), errors.As(err, &ue), errors.Is(err, fs.ErrNotExist):
		return usageErr(fmt.Errorf("%w (config key state)", err))
	}
	return failedErr(err)
}

func stateCheckRun(_ context.Context, f *Factory, jsonOut bool) error {
	path, err := stateFileOf(f)
	if err != nil {
		return err
	}
	rep, err := runs.Check(path)
	if err != nil {
		return stateErr(err)
	}
	if jsonOut {
		if err := printJSON(f.IO.Out, rep); err != nil {
			return err
		}
	} else {
		w := report.SafeWriter(f.IO.Out)
		fmt.Fprintf(w, "State file %s\n", rep.Path)
		switch {
		case rep.Damaged != "":
			fmt.Fprintf(w, "DAMAGED: %s\n", rep.Damaged)
		default:
			fmt.Fprintf(w, "%d readable runs\n", rep.Runs)
		}
		for _, p := range rep.Problems {
			fmt.Fprintf(w, "problem: %s\n", p)
		}
		if len(rep.Corrupt) > 0 {
			fmt.Fprintf(w, "unreadable run records: %s\n", strings.Join(rep.Corrupt, ", "))
		}
		if len(rep.Quarantined) > 0 {
			fmt.Fprintf(w, "quarantined run records (moved aside, unreadable): %s\n", strings.Join(rep.Quarantined, ", "))
		}
		if rep.OK() {
			fmt.Fprintln(w, "ok")
		}
	}
	if !rep.OK() {
		return failedErr(fmt.Errorf("state file %s is damaged: `drover state repair` copies out what can still be read", path))
	}
	return nil
}

func stateRepairRun(_ context.Context, f *Factory) error {
	path, err := stateFileOf(f)
	if err != nil {
		return err
	}
	rep, err := runs.Repair(path, time.Now())
	if err != nil {
		return stateErr(err)
	}
	w := report.SafeWriter(f.IO.Out)
	var parts []string
	for _, b := range []string{"runs", "nodes", "journal", "timings", "locks", "quarantine"} {
		if n := rep.Copied[b]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", b, n))
		}
	}
	fmt.Fprintf(w, "repaired %s: copied %s; %d unreadable run records quarantined\n", path, orNoneStr(parts), rep.Quarantined)
	for _, l := range rep.Lost {
		fmt.Fprintf(w, "lost: %s\n", l)
	}
	fmt.Fprintf(w, "the damaged file is kept as %s\n", rep.KeptAs)
	return nil
}
