package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/droverhq/drover/drivers"
)

// DriverCheckOptions are the flags of `drover driver check`.
type DriverCheckOptions struct {
	f *Factory
	// Out is the fixtures file ("" or "-": stdout).
	Out string
}

// NewCmdDriver builds `drover driver`, the commands about the configured driver.
func NewCmdDriver(f *Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "driver",
		Short: "Commands about the configured driver",
		Args:  noArgs,
	}
	cmd.AddCommand(newCmdDriverCheck(f, nil))
	return cmd
}

func newCmdDriverCheck(f *Factory, runF func(context.Context, *DriverCheckOptions) error) *cobra.Command {
	opts := &DriverCheckOptions{f: f}
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Run the driver's read-only probes and record the platform's raw answers",
		Long: `Run every read-only probe the driver uses (inventory and readiness: on Hyper-V the
cluster, host, readiness, migration status and Windows Update scan scripts on every
node) and record what the platform answered, as a fixtures file the driver's tests
replay. Nothing on the cluster is changed. Then print the driver's readiness checks.

Send the file back to the Drover project to validate the driver against a real
cluster; it holds what the scripts printed (host and VM names), never a password.

Exit status: 0 every probe ran and no check failed, 1 a probe or a check failed,
2 a usage or config error (or a driver without probes).`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(commandContext(cmd), opts)
			}
			return driverCheckRun(commandContext(cmd), opts)
		},
	}
	cmd.Flags().StringVarP(&opts.Out, "out", "o", "", "write the fixtures to this file (default stdout)")
	return cmd
}

func driverCheckRun(ctx context.Context, opts *DriverCheckOptions) error {
	s, err := opts.f.openSession(ctx, sessionOptions{driver: true, command: "driver check"})
	if err != nil {
		return err
	}
	defer s.Close()
	name := s.cfg.Cluster.Driver
	prober, ok := s.driver.(drivers.Prober)
	if !ok {
		return usageErr(fmt.Errorf("cluster.driver: driver %s records no probes (drover driver check supports: hyperv)", name))
	}
	probes, perr := prober.Probe(ctx)
	data, err := json.MarshalIndent(drivers.ProbeFile{Driver: name, RecordedAt: time.Now().UTC(), Probes: probes}, "", "  ")
	if err != nil {
		return failedErr(err)
	}
	data = append(data, '\n')
	if opts.Out == "" || opts.Out == "-" {
		if _, err := opts.f.IO.Out.Write(data); err != nil {
			return failedErr(err)
		}
	} else if err := os.WriteFile(opts.Out, data, 0o600); err != nil {
		return failedErr(fmt.Errorf("--out: %w", err))
	}
	failed := 0
	for _, p := range probes {
		if p.Error != "" || p.ExitCode != 0 {
			failed++
		}
	}
	fmt.Fprintf(opts.f.IO.ErrOut, "%d probes recorded, %d failed\n", len(probes), failed)
	if rc, ok := s.driver.(drivers.ReadinessChecker); ok {
		checks, err := rc.Readiness(ctx)
		if err != nil {
			fmt.Fprintf(opts.f.IO.ErrOut, "readiness checks could not run: %v\n", err)
			failed++
		}
		for _, c := range checks {
			fmt.Fprintf(opts.f.IO.ErrOut, "%-5s %-32s %s\n", c.Status, c.Name, c.Message)
			if c.Remedy != "" && c.Status != drivers.CheckPass {
				fmt.Fprintf(opts.f.IO.ErrOut, "      %-32s fix: %s\n", "", c.Remedy)
			}
			if c.Status == drivers.CheckFail {
				failed++
			}
		}
	}
	if perr != nil {
		return failedErr(fmt.Errorf("driver check: %w", perr))
	}
	if failed > 0 {
		return failedErr(fmt.Errorf("driver check: %d probes or checks failed", failed))
	}
	return nil
}
