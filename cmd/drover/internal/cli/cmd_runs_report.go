package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/droverhq/drover/runs/report"
)

// RunsReportOptions are the options of `drover runs report`.
type RunsReportOptions struct {
	f      *Factory
	ID     string
	Format string
	// Output is the file to write ("" or "-" = stdout).
	Output string
}

// newCmdRunsReport builds `drover runs report`.
func newCmdRunsReport(f *Factory, runF func(context.Context, *RunsReportOptions) error) *cobra.Command {
	opts := &RunsReportOptions{f: f}
	cmd := &cobra.Command{
		Use:   "report ID [--format html|csv|json|md] [-o FILE]",
		Short: "Export the report of a run: HTML, CSV, JSON or Markdown",
		Long: `Export the report of one run: per node the updates installed and failed, every
live migration (VM, from, to, duration, MiB), phase durations, hooks and their output,
VMs shut down or left running, failures and errors. ID may be a unique prefix or "last".

  html  one self-contained page (no scripts, no external assets), printable
  csv   one table, a row per fact; the "record" column says which (node, update,
        migration, phase, hook, ...)
  json  the JSON of 'runs show --json'
  md    Markdown (tables), for tickets and change records

With --server the report comes from the daemon.

Exit status: 0 success, 1 no such run (or the daemon failed), 2 a usage or config error.`,
		Args: exactArgs(1, "ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.ID = args[0]
			if !slices.Contains(report.Formats(), opts.Format) {
				return usageErr(fmt.Errorf("--format %q: use one of %s", opts.Format, strings.Join(report.Formats(), ", ")))
			}
			if runF != nil {
				return runF(commandContext(cmd), opts)
			}
			return runsReportRun(commandContext(cmd), opts)
		},
	}
	cmd.Flags().StringVar(&opts.Format, "format", "html", "html, csv, json or md")
	cmd.Flags().StringVarP(&opts.Output, "output", "o", "", "write to this file instead of stdout")
	return cmd
}

// output opens where the report goes; done finishes it (and reports a failure).
// A file is written as a new private file (mode 0600) next to the target, then
// renamed over it: a symlink planted at the target is replaced, never followed,
// and a failed write leaves the old file as it was. done(false) discards it.
func (o *RunsReportOptions) output() (io.Writer, func(ok bool) error, error) {
	if o.Output == "" || o.Output == "-" {
		return o.f.IO.Out, func(bool) error { return nil }, nil
	}
	if st, err := os.Lstat(o.Output); err == nil && st.IsDir() {
		return nil, nil, usageErr(fmt.Errorf("--output %s is a folder: give a file path", o.Output))
	}
	dir := filepath.Dir(o.Output)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(o.Output)+".tmp-*")
	if err != nil {
		return nil, nil, usageErr(fmt.Errorf("--output: %w", err))
	}
	return tmp, func(ok bool) error {
		err := tmp.Sync()
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if !ok || err != nil {
			_ = os.Remove(tmp.Name())
			if err != nil {
				return failedErr(fmt.Errorf("write %s: %w", o.Output, err))
			}
			return nil
		}
		if err := os.Rename(tmp.Name(), o.Output); err != nil {
			_ = os.Remove(tmp.Name())
			return failedErr(fmt.Errorf("write %s: %w", o.Output, err))
		}
		return nil
	}, nil
}

func runsReportRun(ctx context.Context, opts *RunsReportOptions) error {
	if opts.f.remote() {
		return remoteRunsReport(ctx, opts)
	}
	s, err := opts.f.openSession(ctx, sessionOptions{store: readStore, command: "runs report"})
	if err != nil {
		return err
	}
	defer s.Close()
	_, rep, err := loadReport(s.store, s.cfg.Cluster.Name, opts.ID)
	if err != nil {
		return failedErr(err)
	}
	w, done, err := opts.output()
	if err != nil {
		return err
	}
	if err := report.Render(w, rep, opts.Format); err != nil {
		_ = done(false)
		return failedErr(err)
	}
	return done(true)
}
