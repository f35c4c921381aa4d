package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/droverhq/drover/runs"
	"github.com/droverhq/drover/runs/report"
)

// newCmdStateMove builds `drover state export` and `drover state import`, which move
// the run history between stores: the state file (bbolt) and etcd (ha:).
func newCmdStateMove(f *Factory) []*cobra.Command {
	export := &cobra.Command{
		Use:   "export [FILE]",
		Short: "Write the whole run history of the store to FILE (or stdout)",
		Long: `Write every record of the run store (runs, node records, journals, locks,
timings, the pause switches, quarantined records) to FILE, or to stdout without one,
one JSON object a line, from one consistent read. The store is the one the config
names: the state file (state), or etcd when the config has an ha: section.

Move the history from a state file to etcd and back:
  drover --config single.yaml state export history.jsonl
  drover --config ha.yaml state import history.jsonl

Exit status: 0 written, 1 it failed, 2 a usage or config error.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return stateExportRun(commandContext(cmd), f, args)
		},
	}
	imp := &cobra.Command{
		Use:   "import FILE",
		Short: "Read an export into an empty store (a new state file, or an unused etcd prefix)",
		Long: `Read FILE, written by 'drover state export', into the run store the config
names: the state file (state), or etcd when the config has an ha: section. The store
must hold no run yet, and no 'drover serve' replica may run on it. Into a state file
the import is one transaction; into etcd it goes in batches and is removed again if a
batch fails: nothing is left half-imported.

Exit status: 0 imported, 1 it failed, 2 a usage or config error (a bad file, a store
that already holds runs).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return stateImportRun(commandContext(cmd), f, args[0])
		},
	}
	return []*cobra.Command{export, imp}
}

// openMoveStore opens the store the config names: etcd with ha:, else the state
// file (read-only for an export). close releases everything.
func openMoveStore(ctx context.Context, f *Factory, readOnly bool) (*runs.Store, func(), error) {
	cfg, err := f.Config()
	if err != nil {
		return nil, nil, err
	}
	h, err := cfg.HAConfig(nil)
	if err != nil {
		return nil, nil, usageErr(err)
	}
	if h != nil {
		cli, err := openEtcd(ctx, h)
		if err != nil {
			return nil, nil, err
		}
		st, err := runs.OpenEtcd(ctx, cli, h.Etcd.Prefix, runs.EtcdOptions{})
		if err != nil {
			cli.Close()
			return nil, nil, failedErr(fmt.Errorf("ha.etcd.prefix: %w", err))
		}
		return st, func() { st.Close(); cli.Close() }, nil
	}
	path, err := statePath(cfg, false)
	if err != nil {
		return nil, nil, usageErr(err)
	}
	st, err := runs.Open(path, runs.Options{ReadOnly: readOnly, Owner: runs.Self("state", time.Now()), Timeout: 300 * time.Millisecond})
	if err != nil {
		return nil, nil, stateErr(err)
	}
	return st, func() { st.Close() }, nil
}

func stateExportRun(ctx context.Context, f *Factory, args []string) error {
	st, closeStore, err := openMoveStore(ctx, f, true)
	if err != nil {
		return err
	}
	defer closeStore()
	var w io.Writer = f.IO.Out
	var file *os.File
	if len(args) == 1 && args[0] != "-" {
		if file, err = os.OpenFile(args[0], os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600); err != nil {
			return usageErr(fmt.Errorf("export to %s: %w; give a new file", args[0], err))
		}
		w = file
	}
	stats, err := st.Export(w)
	if file != nil {
		if cerr := file.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			_ = os.Remove(args[0])
		}
	}
	if err != nil {
		return failedErr(err)
	}
	if file != nil {
		fmt.Fprintf(report.SafeWriter(f.IO.Out), "Exported %d runs (%d records, %d buckets) from %s to %s\n", stats.Runs, stats.Records, stats.Buckets, st.Path(), args[0])
	}
	return nil
}

func stateImportRun(ctx context.Context, f *Factory, path string) error {
	in, err := os.Open(path)
	if err != nil {
		return usageErr(fmt.Errorf("import %s: %w", path, err))
	}
	defer in.Close()
	st, closeStore, err := openMoveStore(ctx, f, false)
	if err != nil {
		return err
	}
	defer closeStore()
	stats, err := st.Import(ctx, in)
	if errors.Is(err, runs.ErrImportRefused) {
		return usageErr(err)
	}
	if err != nil {
		return failedErr(err)
	}
	fmt.Fprintf(report.SafeWriter(f.IO.Out), "Imported %d runs (%d records, %d buckets) from %s into %s\n", stats.Runs, stats.Records, stats.Buckets, path, st.Path())
	return nil
}
