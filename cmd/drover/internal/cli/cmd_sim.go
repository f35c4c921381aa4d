package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"

	"github.com/spf13/cobra"

	"github.com/droverhq/drover/drivers/sim"
)

// NewCmdSim builds `drover sim`.
func NewCmdSim(f *Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sim",
		Short: "The simulated hypervisor cluster",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageErr(fmt.Errorf("missing subcommand: serve; see '%s --help'", cmd.CommandPath()))
		},
	}
	cmd.AddCommand(newCmdSimServe(f, nil))
	return cmd
}

// SimServeOptions are the options of `drover sim serve`.
type SimServeOptions struct {
	f         *Factory
	Cluster   string
	Listen    string
	TimeScale float64
	LogLevel  string
}

func newCmdSimServe(f *Factory, runF func(context.Context, *SimServeOptions) error) *cobra.Command {
	opts := &SimServeOptions{f: f}
	cmd := &cobra.Command{
		Use:   "serve --cluster FILE [--listen 127.0.0.1:8090] [--time-scale X]",
		Short: "Serve a simulated cluster over HTTP+JSON",
		Long: `Serve a simulated cluster over HTTP+JSON, so that it outlives the drover
processes that manage it (point them at it with cluster.sim.url or --sim-url).

The simulator models NIC bandwidth shared by all migrations into and out of a node,
a per-stream cap, setup cost, pre-copy rounds against each VM's dirty rate (a VM whose
share of bandwidth is below its dirty rate does not converge), reboot times, pending
updates and seeded faults. --time-scale runs it faster than the wall clock (model
seconds per wall second). It listens on loopback addresses only.

Exit status: 0 after a clean shutdown (SIGINT/SIGTERM), 1 it failed, 2 a usage error.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(commandContext(cmd), opts)
			}
			// The global --cluster-file (cluster.sim.cluster_file) names the same
			// file as --cluster: either works, both must agree.
			if fl := cmd.Flags().Lookup("cluster-file"); fl != nil && fl.Changed {
				if opts.Cluster != "" && opts.Cluster != fl.Value.String() {
					return usageErr(fmt.Errorf("--cluster %s and --cluster-file %s name different files: give one of them", opts.Cluster, fl.Value.String()))
				}
				opts.Cluster = fl.Value.String()
			}
			return simServeRun(commandContext(cmd), opts)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&opts.Cluster, "cluster", "", "cluster file (YAML), e.g. testdata/clusters/demo.yaml (same as the global --cluster-file)")
	fs.StringVar(&opts.Listen, "listen", "127.0.0.1:8090", "loopback host:port to listen on (port 0 picks one)")
	fs.Float64Var(&opts.TimeScale, "time-scale", 1, "model seconds per wall second")
	return cmd
}

func simServeRun(ctx context.Context, opts *SimServeOptions) error {
	if opts.Cluster == "" {
		return usageErr(errors.New("--cluster: required (the cluster file to simulate, e.g. testdata/clusters/demo.yaml)"))
	}
	if opts.TimeScale <= 0 {
		return usageErr(fmt.Errorf("--time-scale: must be > 0, got %g (e.g. 1 or 60)", opts.TimeScale))
	}
	if err := loopbackListen(opts.Listen); err != nil {
		return usageErr(err)
	}
	c, err := sim.LoadCluster(opts.Cluster)
	if err != nil {
		return usageErr(fmt.Errorf("--cluster: %w", err))
	}
	logger := slog.New(slog.NewTextHandler(opts.f.IO.ErrOut, &slog.HandlerOptions{Level: slog.LevelInfo}))
	err = sim.Serve(ctx, sim.ServeOptions{
		Cluster:   c,
		Listen:    opts.Listen,
		TimeScale: opts.TimeScale,
		Logger:    logger,
		Ready: func(addr string) {
			fmt.Fprintf(opts.f.IO.Out, "sim serving %s on http://%s (time scale %g)\n", opts.Cluster, addr, opts.TimeScale)
		},
	})
	if err != nil && ctx.Err() == nil {
		return failedErr(err)
	}
	return nil
}

// loopbackListen checks --listen before anything starts: the simulator has no
// authentication, so it listens on this machine only.
func loopbackListen(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--listen: %q is not host:port (write e.g. 127.0.0.1:8090, or 127.0.0.1:0 for any free port)", addr)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("--listen: %s is not a loopback address (the simulator has no authentication: use 127.0.0.1:PORT)", addr)
	}
	return nil
}
