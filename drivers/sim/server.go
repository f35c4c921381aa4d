package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Long-poll bounds: a client waits at most maxWait per request.
const maxWait = 60 * time.Second

// ServerOptions configure a Server.
type ServerOptions struct {
	// TimeScale is model seconds per wall second (0 = 1).
	TimeScale float64
	// Logger receives the server's logs (nil = discard).
	Logger *slog.Logger
}

// Server serves a Model over HTTP+JSON. Model time follows wall time times the
// scale: every request first advances the model to "now", and Run advances it
// at each event so that long-polls wake up when migrations move on.
//
// Every route is idempotent, so clients may retry any of them:
//
//	GET  /v1/clock                       ClockResponse
//	GET  /v1/inventory                   cluster.Inventory
//	GET  /v1/nodes/{node}                cluster.Node
//	GET  /v1/nodes/{node}/ready          ReadyResponse
//	POST /v1/nodes/{node}/pause          cluster.Node
//	POST /v1/nodes/{node}/resume         cluster.Node
//	POST /v1/nodes/{node}/reboot         cluster.Node (already rebooting: unchanged)
//	GET  /v1/nodes/{node}/updates        UpdatesResponse (scan)
//	POST /v1/nodes/{node}/updates/install drivers.InstallResult
//	GET  /v1/vms/{vm}                    cluster.VM
//	POST /v1/vms/{vm}/shutdown           cluster.VM
//	POST /v1/vms/{vm}/start              cluster.VM
//	POST /v1/migrations                  StartMigrationRequest -> StartMigrationResponse
//	GET  /v1/migrations?vm=NAME          []MigrationStatus
//	GET  /v1/migrations/{id}?wait=5s&version=N  MigrationStatus (long-poll until
//	                                     the version differs from N or the wait ends)
//	POST /v1/migrations/{id}/cancel      MigrationStatus
//	GET  /v1/stats                       Stats
//	POST /v1/admin/faults                Fault -> {}
//	POST /v1/admin/nodes/{node}/crash    cluster.Node
//	POST /v1/admin/nodes/{node}/recover  cluster.Node
//
// Errors are ErrorResponse with 404 (unknown node, VM, migration), 409
// (rejected; reason says why), 400 (bad body or query) and 5xx only for
// injected faults and internal errors. Stats and admin routes are exempt from
// injected API faults.
type Server struct {
	logger    *slog.Logger
	scale     float64
	wallStart time.Time
	mux       *http.ServeMux
	// kick wakes Run after a request changed what the next event is.
	kick chan struct{}

	mu    sync.Mutex
	model *Model
	// changed is closed (and replaced) whenever the model's version moves on;
	// long-polls wait on it.
	changed chan struct{}
	seen    uint64
	// loggedMigs and loggedEvents count the stats entries already logged.
	loggedMigs, loggedEvents int
}

// NewServer builds a server around a new model of c. Model time starts at the
// current wall time (the fake one inside a synctest bubble).
func NewServer(c *Cluster, opts ServerOptions) (*Server, error) {
	scale := opts.TimeScale
	if scale == 0 {
		scale = 1
	}
	if !finite(scale) || scale <= 0 || scale > 1e6 {
		return nil, fmt.Errorf("new sim server: time scale must be > 0 and <= 1e6, got %v", scale)
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	now := time.Now()
	m, err := NewModel(c, now)
	if err != nil {
		return nil, fmt.Errorf("new sim server: %w", err)
	}
	s := &Server{
		logger: logger, scale: scale, wallStart: now, mux: http.NewServeMux(),
		kick: make(chan struct{}, 1), model: m, changed: make(chan struct{}), seen: m.Version(),
	}
	s.routes()
	return s, nil
}

// Handler is the HTTP API.
func (s *Server) Handler() http.Handler { return s.mux }

// Scale is model seconds per wall second.
func (s *Server) Scale() float64 { return s.scale }

// ModelTime is the model time that corresponds to the wall time wall.
func (s *Server) ModelTime(wall time.Time) time.Time {
	el := wall.Sub(s.wallStart)
	return s.wallStart.Add(time.Duration(float64(el) * s.scale))
}

// wallUntil is the wall time left until model time t.
func (s *Server) wallUntil(t time.Time) time.Duration {
	at := time.Duration(math.Ceil(float64(t.Sub(s.wallStart)) / s.scale))
	return max(at-time.Since(s.wallStart), 0)
}

// syncLocked advances the model to the current time and wakes long-polls if
// anything changed. s.mu must be held.
func (s *Server) syncLocked() {
	s.model.AdvanceTo(s.ModelTime(time.Now()))
	s.broadcastLocked()
}

func (s *Server) broadcastLocked() {
	if v := s.model.Version(); v != s.seen {
		s.seen = v
		close(s.changed)
		s.changed = make(chan struct{})
		s.logEventsLocked()
	}
}

// logEventsLocked logs what the model did on its own since the last call:
// finished migrations and node changes.
func (s *Server) logEventsLocked() {
	st := &s.model.stats
	for _, r := range st.Migrations[s.loggedMigs:] {
		if r.OK {
			s.logger.Info("migration completed", "vm", r.VM, "from", r.From, "to", r.To, "migration_id", r.ID,
				"duration", r.Duration, "transferred_mib", int64(r.TransferredMiB), "rounds", r.Rounds, "downtime", r.Downtime)
		} else {
			s.logger.Warn("migration failed", "vm", r.VM, "from", r.From, "to", r.To, "migration_id", r.ID,
				"error_kind", r.ErrorKind, "error", r.Error)
		}
	}
	s.loggedMigs = len(st.Migrations)
	for _, e := range st.NodeEvents[s.loggedEvents:] {
		s.logger.Info("node event", "node", e.Node, "event", e.Event, "boot_id", e.BootID)
	}
	s.loggedEvents = len(st.NodeEvents)
}

// do runs fn on the synced model under the lock and wakes Run.
func (s *Server) do(fn func(m *Model) (any, error)) (any, error) {
	s.mu.Lock()
	s.syncLocked()
	out, err := fn(s.model)
	s.broadcastLocked()
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
	return out, err
}

// Run advances the model at each of its events until ctx is done, so that
// reboots end and migrations progress without requests.
func (s *Server) Run(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		s.mu.Lock()
		s.syncLocked()
		next, ok := s.model.NextEventTime()
		s.mu.Unlock()
		var fire <-chan time.Time
		if ok {
			timer.Reset(s.wallUntil(next))
			fire = timer.C
		}
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
		case <-fire:
		}
	}
}

type handlerFunc func(r *http.Request) (any, error)

func (s *Server) routes() {
	node := func(fn func(m *Model, name string) (any, error)) handlerFunc {
		return func(r *http.Request) (any, error) {
			if err := s.noBody(r); err != nil {
				return nil, err
			}
			name := r.PathValue("node")
			return s.do(func(m *Model) (any, error) { return fn(m, name) })
		}
	}
	vmRoute := func(fn func(m *Model, name string) (any, error)) handlerFunc {
		return func(r *http.Request) (any, error) {
			if err := s.noBody(r); err != nil {
				return nil, err
			}
			name := r.PathValue("vm")
			return s.do(func(m *Model) (any, error) { return fn(m, name) })
		}
	}
	s.route("GET /v1/clock", true, func(r *http.Request) (any, error) {
		return s.do(func(m *Model) (any, error) {
			return ClockResponse{Now: m.Now(), Start: m.Start(), Scale: s.scale}, nil
		})
	})
	s.route("GET /v1/inventory", true, func(r *http.Request) (any, error) {
		return s.do(func(m *Model) (any, error) { return m.Inventory(), nil })
	})
	s.route("GET /v1/nodes/{node}", true, node(func(m *Model, n string) (any, error) { return m.Node(n) }))
	s.route("GET /v1/nodes/{node}/ready", true, node(func(m *Model, n string) (any, error) {
		info, err := m.Node(n)
		if err != nil {
			return nil, err
		}
		return ReadyResponse{Ready: info.Ready(), State: info.State, BootID: info.BootID}, nil
	}))
	s.route("POST /v1/nodes/{node}/pause", true, func(r *http.Request) (any, error) {
		data, err := readBody(r.Body)
		if err != nil {
			return nil, err
		}
		var req PauseRequest
		if len(bytes.TrimSpace(data)) > 0 {
			if err := decodeStrict(data, &req); err != nil {
				return nil, err
			}
		}
		name := r.PathValue("node")
		return s.do(func(m *Model) (any, error) { return m.PauseNode(name, req.Owner) })
	})
	s.route("POST /v1/nodes/{node}/resume", true, node(func(m *Model, n string) (any, error) { return m.ResumeNode(n) }))
	s.route("POST /v1/nodes/{node}/reboot", true, node(func(m *Model, n string) (any, error) { return m.RebootNode(n) }))
	s.route("GET /v1/nodes/{node}/updates", true, node(func(m *Model, n string) (any, error) {
		pending, err := m.ScanUpdates(n)
		if err != nil {
			return nil, err
		}
		inactive, err := m.InstalledInactive(n)
		return UpdatesResponse{Pending: pending, InstalledInactive: inactive}, err
	}))
	s.route("POST /v1/nodes/{node}/updates/install", true, node(func(m *Model, n string) (any, error) {
		return s.logged("updates installed", "node", n)(m.InstallUpdates(n))
	}))
	s.route("GET /v1/vms/{vm}", true, vmRoute(func(m *Model, v string) (any, error) { return m.VM(v) }))
	s.route("POST /v1/vms/{vm}/shutdown", true, vmRoute(func(m *Model, v string) (any, error) { return s.logged("vm shut down", "vm", v)(m.ShutdownVM(v)) }))
	s.route("POST /v1/vms/{vm}/start", true, vmRoute(func(m *Model, v string) (any, error) { return s.logged("vm started", "vm", v)(m.StartVM(v)) }))
	s.route("POST /v1/migrations", true, s.startMigration)
	s.route("GET /v1/migrations", true, func(r *http.Request) (any, error) {
		vm := r.URL.Query().Get("vm")
		return s.do(func(m *Model) (any, error) { return m.Migrations(vm), nil })
	})
	s.route("GET /v1/migrations/{id}", true, s.migrationStatus)
	s.route("POST /v1/migrations/{id}/cancel", true, func(r *http.Request) (any, error) {
		if err := s.noBody(r); err != nil {
			return nil, err
		}
		id := r.PathValue("id")
		return s.do(func(m *Model) (any, error) {
			return s.logged("migration cancelled", "migration_id", id)(m.CancelMigration(id))
		})
	})
	s.route("GET /v1/stats", false, func(r *http.Request) (any, error) {
		return s.do(func(m *Model) (any, error) { return m.Stats(), nil })
	})
	s.route("POST /v1/admin/faults", false, func(r *http.Request) (any, error) {
		data, err := readBody(r.Body)
		if err != nil {
			return nil, err
		}
		var f Fault
		if err := decodeStrict(data, &f); err != nil {
			return nil, err
		}
		return s.do(func(m *Model) (any, error) {
			if err := m.InjectFault(f); err != nil {
				return nil, err
			}
			s.logger.Info("fault injected", "kind", f.Kind, "node", f.Node, "vm", f.VM)
			return struct{}{}, nil
		})
	})
	s.route("POST /v1/admin/nodes/{node}/crash", false, node(func(m *Model, n string) (any, error) { return m.CrashNode(n) }))
	s.route("POST /v1/admin/nodes/{node}/recover", false, node(func(m *Model, n string) (any, error) { return m.RecoverNode(n) }))
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, errorf(KindNotFound, "", "no route %s %s", r.Method, r.URL.Path), 0)
	})
}

// logged logs a successful mutation and passes its result through.
func (s *Server) logged(msg, key, name string) func(out any, err error) (any, error) {
	return func(out any, err error) (any, error) {
		if err == nil {
			s.logger.Info(msg, key, name)
		}
		return out, err
	}
}

func (s *Server) noBody(r *http.Request) error {
	if r.Method != http.MethodPost {
		return nil
	}
	data, err := readBody(r.Body)
	if err != nil {
		return err
	}
	return emptyBody(data)
}

// route registers h, wrapped with API fault injection (when faultable) and
// JSON encoding of its answer.
func (s *Server) route(pattern string, faultable bool, h handlerFunc) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		var rf RequestFault
		if faultable {
			s.mu.Lock()
			rf = s.model.RequestFault(r.URL.Path)
			s.mu.Unlock()
		}
		if rf.Delay > 0 {
			t := time.NewTimer(rf.Delay)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
		}
		if rf.Status != 0 && !rf.AfterApply {
			s.writeError(w, errorf(KindUnavailable, "", "%s", rf), rf.Status)
			return
		}
		out, err := h(r)
		if err != nil && r.Context().Err() != nil {
			return // the client is gone; nobody reads the answer
		}
		switch {
		case rf.Status != 0:
			s.writeError(w, errorf(KindUnavailable, "", "%s", rf), rf.Status)
		case err != nil:
			s.writeError(w, asModelError(err), 0)
		default:
			s.writeJSON(w, http.StatusOK, out)
		}
	})
}

func (s *Server) startMigration(r *http.Request) (any, error) {
	data, err := readBody(r.Body)
	if err != nil {
		return nil, err
	}
	var req StartMigrationRequest
	if err := decodeStrict(data, &req); err != nil {
		return nil, err
	}
	if err := req.validate(); err != nil {
		return nil, err
	}
	return s.do(func(m *Model) (any, error) {
		st, outcome, err := m.StartMigration(req.VM, req.From, req.To)
		if err != nil {
			s.logger.Info("migration refused", "vm", req.VM, "to", req.To, "error", err)
			return nil, err
		}
		if outcome == OutcomeStarted {
			s.logger.Info("migration started", "vm", req.VM, "from", st.From, "to", req.To, "migration_id", st.ID)
		}
		return StartMigrationResponse{Outcome: outcome, Migration: st}, nil
	})
}

// migrationStatus answers at once, or with ?wait=D&version=N when the version
// differs from N, the migration ended, or D passed.
func (s *Server) migrationStatus(r *http.Request) (any, error) {
	id := r.PathValue("id")
	q := r.URL.Query()
	var wait time.Duration
	if w := q.Get("wait"); w != "" {
		d, err := time.ParseDuration(w)
		if err != nil || d < 0 || d > maxWait {
			return nil, errorf(KindBadRequest, "", "wait: want a duration between 0s and %s, got %q", maxWait, w)
		}
		wait = d
	}
	var version uint64
	hasVersion := q.Has("version")
	if hasVersion {
		v, err := strconv.ParseUint(q.Get("version"), 10, 64)
		if err != nil {
			return nil, errorf(KindBadRequest, "", "version: want a number, got %q", q.Get("version"))
		}
		version = v
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	expired := wait == 0 || !hasVersion
	for {
		s.mu.Lock()
		s.syncLocked()
		st, err := s.model.Migration(id)
		ch := s.changed
		s.mu.Unlock()
		if err != nil || expired || st.Version != version || st.Done() {
			return st, err
		}
		select {
		case <-ch:
		case <-timer.C:
			expired = true
		case <-r.Context().Done():
			return nil, r.Context().Err()
		}
	}
}

func (s *Server) writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set(timeHeader, s.ModelTime(time.Now()).Format(time.RFC3339Nano))
	w.WriteHeader(code)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		s.logger.Debug("write answer failed", "error", err)
	}
}

// writeError writes e with the status of its kind, or code when not 0.
func (s *Server) writeError(w http.ResponseWriter, e *Error, code int) {
	if code == 0 {
		code = statusOf(e.Kind)
	}
	if e.Kind == KindInternal {
		s.logger.Error("internal error", "error", e.Msg)
	}
	s.writeJSON(w, code, ErrorResponse{Error: e.Msg, Kind: e.Kind, Reason: e.Reason})
}

// ServeOptions configure Serve.
type ServeOptions struct {
	// ClusterFile is the cluster to simulate; Cluster, when set, is used instead.
	ClusterFile string
	Cluster     *Cluster
	// Listen is host:port; the host must be a loopback address unless
	// AllowNonLoopback is set. Port 0 picks a free port (see Ready).
	Listen           string
	AllowNonLoopback bool
	// TimeScale is model seconds per wall second (0 = 1).
	TimeScale float64
	Logger    *slog.Logger
	// Ready, when set, is called with the bound address once the server accepts
	// connections.
	Ready func(addr string)
}

// Serve runs a sim server until ctx is done, then shuts it down gracefully
// (long-polls end at once, other requests get up to 5 s).
func Serve(ctx context.Context, opts ServeOptions) error {
	if err := checkListen(opts.Listen, opts.AllowNonLoopback); err != nil {
		return fmt.Errorf("sim serve: %w", err)
	}
	c := opts.Cluster
	if c == nil {
		var err error
		if c, err = LoadCluster(opts.ClusterFile); err != nil {
			return fmt.Errorf("sim serve: %w", err)
		}
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	srv, err := NewServer(c, ServerOptions{TimeScale: opts.TimeScale, Logger: logger})
	if err != nil {
		return fmt.Errorf("sim serve: %w", err)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", opts.Listen)
	if err != nil {
		return fmt.Errorf("sim serve: %w", err)
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	hs := &http.Server{
		Handler:           guard(srv.Handler(), opts.AllowNonLoopback),
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return runCtx },
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	var wg sync.WaitGroup
	wg.Go(func() { srv.Run(runCtx) })
	serveErr := make(chan error, 1)
	go func() { serveErr <- hs.Serve(ln) }()
	logger.Info("sim server listening", "addr", ln.Addr().String(), "time_scale", srv.Scale(),
		"nodes", len(c.Nodes), "vms", len(c.VMs))
	if opts.Ready != nil {
		opts.Ready(ln.Addr().String())
	}
	var result error
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		result = fmt.Errorf("sim serve: %w", err)
	}
	stop()
	shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(shutCtx); err != nil && result == nil {
		result = fmt.Errorf("sim serve: shutdown: %w", err)
	}
	wg.Wait()
	logger.Info("sim server stopped")
	return result
}

// checkListen refuses addresses that would expose the simulator beyond this
// machine unless allowed.
func checkListen(addr string, allowAny bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("listen address %q: %w (give host:port, e.g. 127.0.0.1:8090)", addr, err)
	}
	if allowAny {
		return nil
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return errors.New("listen address " + addr + " is not a loopback address (use 127.0.0.1:PORT, or allow non-loopback explicitly)")
}
