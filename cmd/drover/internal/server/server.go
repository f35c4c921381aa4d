package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/droverhq/drover/drivers"
	"github.com/droverhq/drover/orchestrator"
	"github.com/droverhq/drover/orchestrator/schedule"
	"github.com/droverhq/drover/policies"
	"github.com/droverhq/drover/runs"
)

// Config wires a Server.
type Config struct {
	// Store is the open state file, shared by every cluster.
	Store *runs.Store
	// Owner is this process, recorded in run locks.
	Owner    runs.Owner
	Clusters []ClusterConfig
	Tokens   []Token
	Webhooks []WebhookConfig
	Logger   *slog.Logger
	Version  string
	// WebhookHTTP is the webhooks' HTTP client (nil = a default one with each
	// webhook's timeout); WebhookRetryWait the first pause between attempts
	// (default 1 s, doubling up to 30 s).
	WebhookHTTP      *http.Client
	WebhookRetryWait time.Duration
	// Alive tells whether a run lock's owner still runs (default runs.CheckAlive);
	// tests of restarts in one process set it.
	Alive func(runs.Owner) runs.Liveness
	// ShutdownGrace bounds the graceful shutdown of HTTP connections and webhook
	// deliveries (default 10 s).
	ShutdownGrace time.Duration
	// AcceptStoredPolicy resumes runs whose stored hook or health-gate commands
	// differ from the config's (serve --accept-stored-policy); otherwise they stay
	// interrupted and the API refuses to resume them.
	AcceptStoredPolicy bool
	// StateCheckInterval is how often the daemon checks that its state file is
	// still the one at its path (default 10 s); it also checks before any start.
	StateCheckInterval time.Duration
	// ScanCache is how long a viewer's plan, preview or analyze answer is reused
	// (0: 60 s; negative: never); MaxEventClients caps live event streams (0: 64).
	ScanCache       time.Duration
	MaxEventClients int
	// HA, when set, is the election among replicas (ha:): the daemon runs the
	// clusters only while it leads, and followers answer mutations with the
	// leader's address (ha.go).
	HA Leadership
}

// ClusterConfig is one cluster the daemon runs, its driver and updater open.
type ClusterConfig struct {
	Name       string
	DriverName string
	Driver     drivers.Driver
	Updater    drivers.Updater
	Policy     orchestrator.Policy
	// Schedule says when runs are due (nil or disabled: on demand only); Paused is
	// the pause switch's initial position.
	Schedule *schedule.Schedule
	Paused   bool
	// Windows are the maintenance windows (none: always open).
	Windows     schedule.Windows
	WindowSpecs []policies.WindowSpec
}

// Server is the daemon. New builds it; Start resumes interrupted runs and starts
// the schedules; Handler serves the API; Shutdown stops everything cleanly.
type Server struct {
	cfg      Config
	log      *slog.Logger
	auth     authenticator
	clusters map[string]*cluster
	names    []string
	metrics  *metrics
	notifier *notifier
	handler  http.Handler

	// runCtx is the context of every run execution; cancelRuns interrupts them.
	runCtx     context.Context
	cancelRuns context.CancelFunc
	// runs counts executions in flight; loops counts schedulers and the notifier.
	runs  sync.WaitGroup
	loops sync.WaitGroup
	// closing is closed at shutdown: event streams end.
	closing   chan struct{}
	closeOnce sync.Once
	started   bool

	// watch tells when the state file is replaced; quarantined lists the run
	// records moved aside.
	watch       *stateWatch
	quarMu      sync.Mutex
	quarantined []string
	// scans caches viewers' scans; streams counts live event streams.
	scans   *scanCache
	streams chan struct{}
	// timeouts of the HTTP server (the constants below; tests shorten them).
	timeouts httpTimeouts
}

type httpTimeouts struct{ readHeader, read, write, idle time.Duration }

// New builds the daemon without starting anything.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("server: Store is required")
	}
	if len(cfg.Clusters) == 0 {
		return nil, errors.New("server: no cluster to run")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ShutdownGrace <= 0 {
		cfg.ShutdownGrace = 10 * time.Second
	}
	s := &Server{
		cfg:      cfg,
		log:      cfg.Logger.With("component", "server"),
		auth:     authenticator{tokens: cfg.Tokens},
		clusters: map[string]*cluster{},
		closing:  make(chan struct{}),
	}
	s.runCtx, s.cancelRuns = context.WithCancel(context.Background())
	if cfg.StateCheckInterval <= 0 {
		cfg.StateCheckInterval = 10 * time.Second
		s.cfg.StateCheckInterval = cfg.StateCheckInterval
	}
	if cfg.ScanCache == 0 {
		s.cfg.ScanCache = time.Minute
	}
	if cfg.MaxEventClients <= 0 {
		s.cfg.MaxEventClients = 64
	}
	s.timeouts = httpTimeouts{readHeader: ReadHeaderTimeout, read: ReadTimeout, write: WriteTimeout, idle: IdleTimeout}
	s.watch = newStateWatch(cfg.Store.Path())
	s.scans = newScanCache(s.cfg.ScanCache)
	s.streams = make(chan struct{}, s.cfg.MaxEventClients)
	s.metrics = newMetrics(s)
	s.notifier = newNotifier(cfg.Webhooks, cfg.WebhookHTTP, cfg.WebhookRetryWait, cfg.Version, cfg.Logger)
	for _, cc := range cfg.Clusters {
		if _, dup := s.clusters[cc.Name]; dup {
			return nil, fmt.Errorf("server: cluster %q listed twice", cc.Name)
		}
		c, err := s.newCluster(cc)
		if err != nil {
			return nil, err
		}
		s.clusters[cc.Name] = c
		s.names = append(s.names, cc.Name)
	}
	sort.Strings(s.names)
	if len(cfg.Tokens) == 0 {
		s.log.Warn("no server.tokens configured: the API refuses every request")
	}
	s.handler = s.routes()
	return s, nil
}

// Handler is the HTTP API (every route needs a token).
func (s *Server) Handler() http.Handler { return s.handler }

// Start resumes every interrupted run, then starts the schedules and the webhook
// sender. ctx ends the schedules; runs end with Shutdown.
func (s *Server) Start(ctx context.Context) {
	if s.started {
		return
	}
	s.started = true
	s.loops.Go(func() { s.notifier.run(s.closing, s.cfg.ShutdownGrace) })
	s.loops.Go(func() { s.watchLoop(s.cfg.StateCheckInterval) })
	if s.cfg.HA != nil {
		s.loops.Go(func() { s.leadThenStart(ctx) })
		return
	}
	s.startWork(ctx)
}

// startWork moves unreadable run records aside, resumes every interrupted run and
// starts the schedules.
func (s *Server) startWork(ctx context.Context) {
	s.quarantine()
	for _, name := range s.names {
		c := s.clusters[name]
		s.resumeUnfinished(c)
	}
	for _, name := range s.names {
		c := s.clusters[name]
		s.loops.Go(func() { s.scheduleLoop(ctx, c) })
	}
}

// resumeUnfinished executes the cluster's interrupted run, if it has one. A run
// waiting for approval stays parked until it is approved.
func (s *Server) resumeUnfinished(c *cluster) {
	r, ok, err := c.eng.Unfinished()
	switch {
	case err != nil:
		c.log.Error("cannot read unfinished runs", "error", err)
		return
	case !ok:
		return
	case r.State == runs.StateWaitingApproval && !r.Approved:
		c.log.Info("run waits for approval", "run_id", r.ID)
		return
	}
	c.log.Info("resuming interrupted run", "run_id", r.ID, "state", r.State)
	if err := s.execute(c, r.ID); err != nil {
		c.log.Error("cannot resume run", "run_id", r.ID, "error", err)
	}
}

// Serve starts the daemon and serves the API on ln (TLS when cert is set) until ctx
// is done, then shuts down gracefully: runs are interrupted (migrations in flight
// aborted, everything journaled; they resume at the next start).
func (s *Server) Serve(ctx context.Context, ln net.Listener, cert *tls.Certificate) error {
	hs := s.httpServer()
	if cert != nil {
		hs.TLSConfig = &tls.Config{Certificates: []tls.Certificate{*cert}, MinVersion: tls.VersionTLS12}
		ln = tls.NewListener(ln, hs.TLSConfig)
	}
	s.Start(ctx)
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	s.log.Info("shutting down")
	s.Shutdown()
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownGrace)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		s.log.Warn("http shutdown", "error", err)
	}
	if errors.Is(serveErr, http.ErrServerClosed) {
		serveErr = nil
	}
	return serveErr
}

// Shutdown interrupts the runs in flight and waits for them to journal their state,
// ends the event streams, and stops the schedules and the webhook sender (giving
// queued notifications the shutdown grace).
func (s *Server) Shutdown() {
	s.closeOnce.Do(func() {
		s.cancelRuns()
		s.runs.Wait()
		close(s.closing)
		s.loops.Wait()
	})
}

// cluster returns the named cluster, or the only one when name is "".
func (s *Server) cluster(name string) (*cluster, error) {
	if name == "" {
		if len(s.names) == 1 {
			return s.clusters[s.names[0]], nil
		}
		return nil, fmt.Errorf("name the cluster: one of %v", s.names)
	}
	c, ok := s.clusters[name]
	if !ok {
		return nil, fmt.Errorf("no cluster %q: use one of %v", name, s.names)
	}
	return c, nil
}

// resolveRun finds a run by ID, unique ID prefix, or "last" (newest, of cluster when
// given), as the CLI does.
func (s *Server) resolveRun(id, cluster string) (runs.Run, error) {
	if cluster != "" {
		if _, ok := s.clusters[cluster]; !ok {
			return runs.Run{}, &BodyError{Status: http.StatusBadRequest, Field: "cluster", Msg: fmt.Sprintf("no cluster %q: use one of %v", cluster, s.names)}
		}
	}
	rs, err := s.cfg.Store.Runs(cluster)
	if err != nil {
		return runs.Run{}, err
	}
	if id == "last" && len(rs) > 0 {
		return rs[0], nil
	}
	if cluster != "" && !slices.ContainsFunc(rs, func(r runs.Run) bool { return r.ID == id }) {
		if other, err := s.cfg.Store.Run(id); err == nil {
			// The ID is right, the cluster is not: never act on another cluster's run.
			return runs.Run{}, &BodyError{Status: http.StatusBadRequest, Field: "cluster", Msg: fmt.Sprintf("run %s belongs to cluster %s, not %s", id, other.Cluster, cluster)}
		}
	}
	var found []runs.Run
	for _, r := range rs {
		if r.ID == id {
			return r, nil
		}
		if len(id) >= 4 && len(r.ID) > len(id) && r.ID[:len(id)] == id {
			found = append(found, r)
		}
	}
	switch len(found) {
	case 0:
		return runs.Run{}, fmt.Errorf("run %s: %w", id, runs.ErrNotFound)
	case 1:
		return found[0], nil
	}
	return runs.Run{}, fmt.Errorf("run ID prefix %s matches %d runs; give more of the ID: %w", id, len(found), errAmbiguous)
}

var errAmbiguous = errors.New("ambiguous run ID")

// HTTP timeouts: a client gets ReadTimeout to send a request (headers within
// ReadHeaderTimeout), WriteTimeout for the answer (event streams clear it: they
// last as long as their run), and an idle keep-alive connection is closed after
// IdleTimeout. Slow clients cannot hold connections open for ever.
const (
	ReadHeaderTimeout = 10 * time.Second
	ReadTimeout       = 30 * time.Second
	WriteTimeout      = 2 * time.Minute
	IdleTimeout       = 2 * time.Minute
)

func (s *Server) httpServer() *http.Server {
	return &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: s.timeouts.readHeader,
		ReadTimeout:       s.timeouts.read,
		WriteTimeout:      s.timeouts.write,
		IdleTimeout:       s.timeouts.idle,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
}
