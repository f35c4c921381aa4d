package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
	_ "time/tzdata" // schedules and windows name zones; hosts may lack a zone database

	"github.com/spf13/cobra"

	"github.com/droverhq/drover/cmd/drover/internal/config"
	"github.com/droverhq/drover/cmd/drover/internal/server"
	"github.com/droverhq/drover/drivers"
	"github.com/droverhq/drover/ha"
	"github.com/droverhq/drover/runs"
	"github.com/droverhq/drover/runs/report"
)

// ServeOptions are the options of `drover serve`.
type ServeOptions struct {
	f *Factory
}

// NewCmdServe builds `drover serve`.
func NewCmdServe(f *Factory, runF func(context.Context, *ServeOptions) error) *cobra.Command {
	opts := &ServeOptions{f: f}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the clusters on their schedules and serve the HTTP API",
		Long: `Run as a daemon (CAU's self-updating mode): for each cluster of the config, start
a run when its schedule is due and a maintenance window is open, start each node only
when its predicted time ends before the window closes (otherwise the run waits, still
running, for the next window), and serve the HTTP API, live events and metrics.

At start-up every interrupted run is resumed. One run per cluster at a time: a due time
while a run is in progress is skipped and logged. SIGINT, SIGTERM and SIGHUP shut down cleanly:
migrations in flight are aborted, the state is journaled, and the runs resume at the
next start.

Config keys (besides cluster/policy, or clusters: [...]):
  server.listen      address (default 127.0.0.1:8086; a non-loopback address needs
                     server.tls.cert, server.tls.key and server.tokens)
  server.tokens      [{name, role: viewer|operator, sha256: hex digest of the token}]
  server.tls.cert, server.tls.key   PEM files
  server.scan_cache  how long viewers' plan/preview/analyze reuse one scan (60s)
  server.max_event_clients   live event streams at once (64; 429 beyond)
  schedule.cron      cron expression with optional CRON_TZ=, or @every/@daily...
  schedule.days/weeks/interval_weeks/start_date/at/tz   CAU forms ("3rd Tuesday")
  schedule.blackout, schedule.paused, windows: [{days, start, end, tz, weeks, blackout}]
  webhooks           [{url, events, timeout, retries}]

It prints "drover serve: API on URL" once it listens (port 0 picks a free port).

Exit status: 0 after a clean shutdown, 1 it failed, 2 a usage or config error.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(commandContext(cmd), opts)
			}
			return serveRun(commandContext(cmd), opts)
		},
	}
	cmd.Flags().String("listen", "", "address to listen on (server.listen)")
	f.Bindings = append(f.Bindings, config.Binding{Key: "server.listen", Flag: cmd.Flags().Lookup("listen")})
	return cmd
}

func serveRun(ctx context.Context, opts *ServeOptions) error {
	cfg, err := opts.f.Config()
	if err != nil {
		return err
	}
	sc, err := cfg.Serve()
	if err != nil {
		return usageErr(err)
	}
	log := opts.f.Logger(cfg, false)
	h, err := cfg.HAConfig(nil)
	if err != nil {
		return usageErr(err)
	}
	owner := runs.Self(runs.DaemonCommand, time.Now())
	var (
		store *runs.Store
		ln    net.Listener
		el    *ha.Elector
	)
	if h != nil {
		// The replica tells followers where its API is: it listens first.
		if ln, err = net.Listen("tcp", sc.Server.Listen); err != nil {
			return failedErr(fmt.Errorf("listen on %s (server.listen): %w", sc.Server.Listen, err))
		}
		defer ln.Close()
		var stop func()
		store, el, stop, err = openHAStore(ctx, h, sc, ln, log)
		if err != nil {
			return err
		}
		defer stop()
	} else {
		path, err := statePath(cfg, true)
		if err != nil {
			return usageErr(err)
		}
		if err := stateFolderExists(path); err != nil {
			return usageErr(err)
		}
		store, err = runs.Open(path, runs.Options{Owner: owner})
		if err != nil {
			if runs.IsDamaged(err) {
				return failedErr(err)
			}
			// A state file Drover cannot use (untrusted, locked, not a state file) is
			// the config's `state` to fix, as for the other commands.
			return usageErr(fmt.Errorf("%w (config key state)", err))
		}
	}
	defer func() {
		if err := store.Close(); err != nil {
			log.Warn("close state file", "error", err)
		}
	}()

	var closers []func() error
	defer func() {
		for _, c := range closers {
			if err := c(); err != nil {
				log.Warn("close driver", "error", err)
			}
		}
	}()
	var clusters []server.ClusterConfig
	for _, c := range sc.Clusters {
		env := drivers.Env{Logger: log.With("cluster", c.Name, "driver", c.DriverName), BaseDir: cfg.BaseDir}
		d, err := c.Driver.Open(ctx, env)
		if err != nil {
			return failedErr(fmt.Errorf("cluster %s: open driver %s: %w", c.Name, c.DriverName, err))
		}
		closers = append(closers, d.Close)
		env.Driver, env.Logger = d, log.With("cluster", c.Name, "updater", c.UpdaterKind)
		u, err := c.Updater.Open(ctx, env)
		if err != nil {
			return failedErr(fmt.Errorf("cluster %s: open update plug-in %s: %w", c.Name, c.UpdaterKind, err))
		}
		clusters = append(clusters, server.ClusterConfig{
			Name: c.Name, DriverName: c.DriverName, Driver: d, Updater: u, Policy: c.Policy,
			Schedule: c.Schedule, Paused: c.Paused, Windows: c.Windows, WindowSpecs: c.WindowSpecs,
		})
	}
	var tokens []server.Token
	for _, t := range sc.Server.Tokens {
		tk, err := server.NewToken(t.Name, t.Role, t.SHA256)
		if err != nil {
			return usageErr(err)
		}
		tokens = append(tokens, tk)
	}
	var hooks []server.WebhookConfig
	for _, h := range sc.Webhooks {
		hooks = append(hooks, server.WebhookConfig{URL: h.URL, Events: h.Events, Timeout: h.Timeout, Retries: *h.Retries, Format: h.Format})
	}
	scfg := server.Config{
		Store: store, Owner: owner, Clusters: clusters, Tokens: tokens, Webhooks: hooks,
		Logger: log, Version: opts.f.Version, AcceptStoredPolicy: opts.f.AcceptStoredPolicy,
		ScanCache: sc.Server.ScanCache, MaxEventClients: sc.Server.MaxEventClients,
	}
	if el != nil {
		scfg.HA, scfg.Alive = el, haAlive(owner)
	}
	srv, err := server.New(scfg)
	if err != nil {
		return failedErr(err)
	}
	if ln == nil {
		if ln, err = net.Listen("tcp", sc.Server.Listen); err != nil {
			return failedErr(fmt.Errorf("listen on %s (server.listen): %w", sc.Server.Listen, err))
		}
	}
	scheme := "http"
	if sc.TLS != nil {
		scheme = "https"
	}
	var names []string
	for _, c := range clusters {
		names = append(names, c.Name)
	}
	fmt.Fprintf(report.SafeWriter(opts.f.IO.Out), "drover serve: API on %s://%s (clusters: %s)\n", scheme, ln.Addr(), strings.Join(names, ", "))

	// `drover runs stop` without --server signals the holder of the state file; the
	// daemon is stopped through its API instead, and must not die of the signal.
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	defer signal.Stop(usr1)
	go func() {
		for range usr1 {
			log.Warn("SIGUSR1 ignored: stop a run through the API (drover runs stop ID --server URL)")
		}
	}()

	if err := srv.Serve(ctx, ln, sc.TLS); err != nil && !errors.Is(err, net.ErrClosed) {
		return failedErr(err)
	}
	return nil
}
