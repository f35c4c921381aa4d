package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/droverhq/drover/cmd/drover/internal/limits"
	"github.com/droverhq/drover/cmd/drover/internal/wire"
	"github.com/droverhq/drover/drivers"
	"github.com/droverhq/drover/orchestrator"
	"github.com/droverhq/drover/orchestrator/readiness"
	"github.com/droverhq/drover/orchestrator/schedule"
	"github.com/droverhq/drover/policies"
	"github.com/droverhq/drover/runs"
	"github.com/droverhq/drover/runs/report"
)

// route is one API endpoint: every route needs a token of at least Role.
type route struct {
	Method  string
	Path    string // a net/http pattern path, e.g. /api/v1/runs/{id}
	Role    Role
	Handler http.HandlerFunc
	// Body: the route reads a JSON body (decoded strictly).
	Body bool
}

// routeTable lists the API. The README's table is this list.
func (s *Server) routeTable() []route {
	p := APIPrefix
	return []route{
		{Method: "GET", Path: "/metrics", Role: RoleViewer, Handler: s.metrics.handler.ServeHTTP},
		{Method: "GET", Path: p + "/health", Role: RoleViewer, Handler: s.handleHealth},
		{Method: "GET", Path: p + "/ha", Role: RoleViewer, Handler: s.handleHA},
		{Method: "GET", Path: p + "/clusters", Role: RoleViewer, Handler: s.handleClusters},
		{Method: "GET", Path: p + "/clusters/{cluster}", Role: RoleViewer, Handler: s.handleCluster},
		{Method: "GET", Path: p + "/clusters/{cluster}/preview", Role: RoleViewer, Handler: s.handlePreview},
		{Method: "GET", Path: p + "/clusters/{cluster}/analyze", Role: RoleViewer, Handler: s.handleAnalyze},
		{Method: "GET", Path: p + "/clusters/{cluster}/plan", Role: RoleViewer, Handler: s.handlePlan},
		{Method: "POST", Path: p + "/clusters/{cluster}/pause", Role: RoleOperator, Handler: s.handlePause(true), Body: true},
		{Method: "POST", Path: p + "/clusters/{cluster}/unpause", Role: RoleOperator, Handler: s.handlePause(false), Body: true},
		{Method: "GET", Path: p + "/runs", Role: RoleViewer, Handler: s.handleRuns},
		{Method: "POST", Path: p + "/runs", Role: RoleOperator, Handler: s.handleStart, Body: true},
		{Method: "GET", Path: p + "/runs/{id}", Role: RoleViewer, Handler: s.handleRun},
		{Method: "GET", Path: p + "/runs/{id}/report", Role: RoleViewer, Handler: s.handleReport},
		{Method: "GET", Path: p + "/runs/{id}/events", Role: RoleViewer, Handler: s.handleEvents},
		{Method: "POST", Path: p + "/runs/{id}/stop", Role: RoleOperator, Handler: s.handleStop, Body: true},
		{Method: "POST", Path: p + "/runs/{id}/resume", Role: RoleOperator, Handler: s.handleResume, Body: true},
		{Method: "POST", Path: p + "/runs/{id}/approve", Role: RoleOperator, Handler: s.handleApprove, Body: true},
	}
}

// routes builds the handler: routes by path, then authentication, then method; an
// unknown path or method still needs a token before it learns anything.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	byPath := map[string][]route{}
	var paths []string
	for _, rt := range s.routeTable() {
		if _, ok := byPath[rt.Path]; !ok {
			paths = append(paths, rt.Path)
		}
		byPath[rt.Path] = append(byPath[rt.Path], rt)
	}
	for _, path := range paths {
		rts := byPath[path]
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			for _, rt := range rts {
				if rt.Method == r.Method || (rt.Method == "GET" && r.Method == "HEAD") {
					s.require(rt.Role, func(w http.ResponseWriter, r *http.Request) {
						if !s.followerGate(w, r) {
							rt.Handler(w, r)
						}
					})(w, r)
					return
				}
			}
			var allow []string
			for _, rt := range rts {
				allow = append(allow, rt.Method)
			}
			s.require(RoleViewer, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Allow", strings.Join(allow, ", "))
				writeError(w, http.StatusMethodNotAllowed, ErrorBody{Error: fmt.Sprintf("%s %s: use %s", r.Method, r.URL.Path, strings.Join(allow, ", "))})
			})(w, r)
		})
	}
	mux.HandleFunc("/api/", s.require(RoleViewer, func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, ErrorBody{Error: "no such endpoint: the API is under " + APIPrefix})
	}))
	if err := s.mountDashboard(mux); err != nil {
		s.log.Error("web dashboard disabled", "error", err)
	}
	return s.accessLog(mux)
}

// statusWriter records the status for the access log and passes Flush through
// (event streams).
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (event streams clear
// their write deadline).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// accessLog logs every request: method, path (never the query or headers), status,
// duration and the token's name.
func (s *Server) accessLog(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		tok := &Token{}
		r = r.WithContext(contextWithToken(r, tok))
		sw := &statusWriter{ResponseWriter: w}
		h.ServeHTTP(sw, r)
		level := slog.LevelInfo
		if r.URL.Path == "/metrics" && sw.status == http.StatusOK {
			level = slog.LevelDebug
		}
		s.log.Log(r.Context(), level, "http request", "method", r.Method, "path", r.URL.Path, "status", sw.status,
			"duration_ms", time.Since(start).Milliseconds(), "token", tok.Name, "remote", r.RemoteAddr)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	b, err := json.Marshal(v)
	if err != nil {
		b = []byte(`{"error":"cannot encode the answer"}`)
	}
	_, _ = w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, status int, e ErrorBody) {
	writeJSON(w, status, e)
}

// writeFailure maps an error of the engine or of a request to a status.
func writeFailure(w http.ResponseWriter, err error) {
	var (
		be   *BodyError
		fe   *drivers.FieldError
		busy *BusyError
		ue   *orchestrator.UnfinishedRunError
		rl   *runs.RunLockedError
		sp   *limits.StoredPolicyError
		sf   *StateFileError
	)
	switch {
	case errors.As(err, &sf):
		writeError(w, http.StatusServiceUnavailable, ErrorBody{Error: sf.Error()})
	case errors.As(err, &sp):
		writeError(w, http.StatusConflict, ErrorBody{Error: sp.Error(), RunID: sp.RunID})
	case errors.As(err, &be):
		writeError(w, be.Status, ErrorBody{Error: be.Error(), Field: be.Field})
	case errors.As(err, &busy):
		writeError(w, http.StatusConflict, ErrorBody{Error: busy.Error(), RunID: busy.RunID})
	case errors.As(err, &ue):
		writeError(w, http.StatusConflict, ErrorBody{Error: ue.Error(), RunID: ue.Run.ID})
	case errors.As(err, &rl):
		writeError(w, http.StatusConflict, ErrorBody{Error: rl.Error(), RunID: rl.Lock.RunID})
	case errors.As(err, &fe):
		writeError(w, http.StatusBadRequest, ErrorBody{Error: err.Error(), Field: fe.Field})
	case errors.Is(err, runs.ErrNotFound):
		writeError(w, http.StatusNotFound, ErrorBody{Error: err.Error()})
	default:
		// The cluster (driver) or the state file failed.
		writeError(w, http.StatusBadGateway, ErrorBody{Error: err.Error()})
	}
}

func writeRunError(w http.ResponseWriter, err error) {
	if errors.Is(err, errAmbiguous) {
		writeError(w, http.StatusBadRequest, ErrorBody{Error: err.Error(), Field: "id"})
		return
	}
	writeFailure(w, err)
}

// decodeRequest reads and strictly decodes the body into v.
func decodeRequest(r *http.Request, v any) error {
	b, err := readBody(r)
	if err != nil {
		return err
	}
	return decodeStrict(b, v)
}

func (s *Server) clusterInfo(c *cluster) ClusterInfo {
	specs := c.cfg.WindowSpecs
	if specs == nil {
		specs = []policies.WindowSpec{}
	}
	return ClusterInfo{
		Name: c.cfg.Name, Driver: c.cfg.DriverName, Schedule: c.cfg.Schedule.String(),
		Paused: c.isPaused(), NextRun: c.nextRun(), Windows: specs,
		WindowOpen: c.cfg.Windows.Contains(time.Now()), ActiveRun: c.activeRun(), Policy: wire.PublicPolicy(c.cfg.Policy),
	}
}

func (s *Server) handleClusters(w http.ResponseWriter, _ *http.Request) {
	out := []ClusterInfo{}
	for _, name := range s.names {
		out = append(out, s.clusterInfo(s.clusters[name]))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) pathCluster(w http.ResponseWriter, r *http.Request) (*cluster, bool) {
	c, ok := s.clusters[r.PathValue("cluster")]
	if !ok {
		writeError(w, http.StatusNotFound, ErrorBody{Error: fmt.Sprintf("no cluster %q: use one of %v", r.PathValue("cluster"), s.names)})
	}
	return c, ok
}

func (s *Server) handleCluster(w http.ResponseWriter, r *http.Request) {
	if c, ok := s.pathCluster(w, r); ok {
		writeJSON(w, http.StatusOK, s.clusterInfo(c))
	}
}

// emptyRequest is the body of actions without parameters: {} or nothing.
type emptyRequest struct{}

func (s *Server) handlePause(paused bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, ok := s.pathCluster(w, r)
		if !ok {
			return
		}
		if err := decodeRequest(r, &emptyRequest{}); err != nil {
			writeFailure(w, err)
			return
		}
		if err := c.store.SetScheduleSwitch(c.cfg.Name, runs.ScheduleSwitch{Paused: paused, At: time.Now()}); err != nil {
			writeFailure(w, fmt.Errorf("persist the pause switch: %w", err))
			return
		}
		c.setPaused(paused)
		writeJSON(w, http.StatusOK, PauseState{Cluster: c.cfg.Name, Paused: paused, NextRun: c.nextRun()})
	}
}

// handlePreview answers what a new run would do now (`apply --dry-run --json`), with
// each node's predicted time and the window slot it would start in.
func (s *Server) handlePreview(w http.ResponseWriter, r *http.Request) {
	c, ok := s.pathCluster(w, r)
	if !ok {
		return
	}
	timings, err := s.cfg.Store.Timings(c.cfg.Name)
	if err != nil {
		writeFailure(w, err)
		return
	}
	prep, err := s.planRun(r.Context(), c, timings)
	if err != nil {
		writeFailure(w, err)
		return
	}
	unfinished := ""
	if r, ok, err := c.eng.Unfinished(); err == nil && ok {
		unfinished = r.ID
	}
	out := wire.NewPreview(c.cfg.Name, prep, unfinished)
	out.Predictions = map[string]NodeSlot{}
	plan, err := json.Marshal(prep.Plan)
	if err != nil {
		writeFailure(w, err)
		return
	}
	// Nodes follow one another: each slot starts where the previous node ends.
	at := time.Now()
	for _, rec := range prep.Records {
		if rec.State != orchestrator.NodeQueued {
			continue
		}
		pred := schedule.PredictNode(rec.Name, plan, timings)
		wall := c.eng.Clock().WallDuration(pred.Duration)
		slot := c.cfg.Windows.Fit(at, wall)
		out.Predictions[rec.Name] = NodeSlot{Prediction: pred, Slot: slot}
		if !slot.Never {
			at = slot.Start.Add(wall)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// handleAnalyze answers the readiness checks of the cluster (`drover analyze --json`);
// 200 whatever the verdict: "ready" says it.
func (s *Server) handleAnalyze(w http.ResponseWriter, r *http.Request) {
	c, ok := s.pathCluster(w, r)
	if !ok {
		return
	}
	a, _ := scanned(s, c, "analyze", func() (readiness.Analysis, error) {
		return readiness.Analyze(r.Context(), readiness.AnalyzeConfig{
			Cluster: c.cfg.Name, Policy: c.cfg.Policy,
			Driver: c.cfg.Driver, Updater: s.viewUpdater(c),
			Store: s.cfg.Store, Alive: s.cfg.Alive,
		}), nil
	})
	writeJSON(w, http.StatusOK, a)
}

// handlePlan answers the plan of a run started now (`drover plan --json`).
func (s *Server) handlePlan(w http.ResponseWriter, r *http.Request) {
	c, ok := s.pathCluster(w, r)
	if !ok {
		return
	}
	timings, err := s.cfg.Store.Timings(c.cfg.Name)
	if err != nil {
		writeFailure(w, err)
		return
	}
	prep, err := s.planRun(r.Context(), c, timings)
	if err != nil {
		writeFailure(w, err)
		return
	}
	writeJSON(w, http.StatusOK, prep.Plan)
}

func summary(r runs.Run) RunSummary {
	return RunSummary{ID: r.ID, Cluster: r.Cluster, State: r.State, StartedAt: r.StartedAt, FinishedAt: r.FinishedAt, Nodes: len(r.Order), Error: r.Error}
}

// handleRuns lists runs, newest first: ?cluster= filters, ?state= filters, ?limit=
// bounds the list.
func (s *Server) handleRuns(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	cluster := q.Get("cluster")
	if cluster != "" {
		if _, ok := s.clusters[cluster]; !ok {
			writeError(w, http.StatusBadRequest, ErrorBody{Error: fmt.Sprintf("no cluster %q: use one of %v", cluster, s.names), Field: "cluster"})
			return
		}
	}
	limit := 0
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, ErrorBody{Error: "limit: want a number of runs, 0 or more", Field: "limit"})
			return
		}
		limit = n
	}
	state := runs.State(q.Get("state"))
	rs, err := s.cfg.Store.Runs(cluster)
	if err != nil {
		writeFailure(w, err)
		return
	}
	out := []RunSummary{}
	for _, run := range rs {
		if state != "" && run.State != state {
			continue
		}
		out = append(out, summary(run))
		if limit > 0 && len(out) == limit {
			break
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// startBody is StartRequest as the server decodes it: the policy in a second,
// strict step, so errors name "policy.KEY".
type startBody struct {
	Cluster string          `json:"cluster"`
	Policy  json.RawMessage `json:"policy"`
}

// decodeStart decodes and checks the body of POST /api/v1/runs.
func decodeStart(b []byte) (StartRequest, error) {
	var body startBody
	if err := decodeStrict(b, &body); err != nil {
		return StartRequest{}, err
	}
	req := StartRequest{Cluster: body.Cluster}
	if len(body.Policy) > 0 && string(body.Policy) != "null" {
		req.Policy = &PolicyOverrides{}
		if err := decodeStrictAt(body.Policy, req.Policy, "policy"); err != nil {
			return StartRequest{}, err
		}
		if len(req.Policy.Nodes) == 0 {
			req.Policy.Nodes = nil // [] and no list both mean every node
		}
	}
	return req, nil
}

func (s *Server) handleStart(w http.ResponseWriter, r *http.Request) {
	b, err := readBody(r)
	if err != nil {
		writeFailure(w, err)
		return
	}
	req, err := decodeStart(b)
	if err != nil {
		writeFailure(w, err)
		return
	}
	c, err := s.cluster(req.Cluster)
	if err != nil {
		writeError(w, http.StatusBadRequest, ErrorBody{Error: err.Error(), Field: "cluster"})
		return
	}
	p := c.cfg.Policy
	if req.Policy != nil {
		if err := applyOverrides(*req.Policy, &p); err != nil {
			writeFailure(w, err)
			return
		}
	}
	if err := errors.Join(p.Validate(), limits.Policy(p)); err != nil {
		var fe *drivers.FieldError
		field := ""
		if errors.As(err, &fe) {
			field = fe.Field
		}
		writeError(w, http.StatusBadRequest, ErrorBody{Error: err.Error(), Field: field})
		return
	}
	// The run outlives the request: preparing it uses the request's context, the
	// run itself the daemon's.
	runID, err := s.start(r.Context(), c, p, "started through the API by token "+tokenName(r.Context()), false)
	if err != nil {
		writeFailure(w, err)
		return
	}
	writeJSON(w, http.StatusAccepted, RunAction{ID: runID, Cluster: c.cfg.Name, State: runs.StateRunning, Action: "started"})
}

func (s *Server) runOf(w http.ResponseWriter, r *http.Request) (runs.Run, *cluster, bool) {
	id, cl := r.PathValue("id"), r.URL.Query().Get("cluster")
	if id == "last" && cl == "" && len(s.names) > 1 && r.Method == http.MethodPost {
		// "last" of which cluster? A stop, resume or approval must not guess.
		writeError(w, http.StatusBadRequest, ErrorBody{Error: fmt.Sprintf("run \"last\" of which cluster? add ?cluster=NAME, one of %v", s.names), Field: "cluster"})
		return runs.Run{}, nil, false
	}
	run, err := s.resolveRun(id, cl)
	if err != nil {
		writeRunError(w, err)
		return run, nil, false
	}
	c, ok := s.clusters[run.Cluster]
	if !ok {
		writeError(w, http.StatusNotFound, ErrorBody{Error: fmt.Sprintf("run %s belongs to cluster %s, which this daemon does not run", run.ID, run.Cluster)})
	}
	return run, c, ok
}

func (s *Server) buildReport(run runs.Run) (report.Report, error) {
	nodes, err := s.cfg.Store.Nodes(run.ID)
	if err != nil {
		return report.Report{}, err
	}
	return report.Build(run, nodes), nil
}

// handleRun answers the run's report as JSON (the contract of `runs show --json`).
func (s *Server) handleRun(w http.ResponseWriter, r *http.Request) {
	run, _, ok := s.runOf(w, r)
	if !ok {
		return
	}
	rep, err := s.buildReport(run)
	if err != nil {
		writeFailure(w, err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

// handleReport renders the run's report: ?format=json (default), html, csv or md.
func (s *Server) handleReport(w http.ResponseWriter, r *http.Request) {
	format := r.URL.Query().Get("format")
	if format == "" {
		format = "json"
	}
	known := false
	for _, f := range report.Formats() {
		known = known || f == format
	}
	if !known {
		writeError(w, http.StatusBadRequest, ErrorBody{Error: fmt.Sprintf("format %q: use one of %s", format, strings.Join(report.Formats(), ", ")), Field: "format"})
		return
	}
	run, _, ok := s.runOf(w, r)
	if !ok {
		return
	}
	rep, err := s.buildReport(run)
	if err != nil {
		writeFailure(w, err)
		return
	}
	var buf bytes.Buffer
	if err := report.Render(&buf, rep, format); err != nil {
		writeFailure(w, err)
		return
	}
	w.Header().Set("Content-Type", report.ContentType(format))
	w.Header().Set("Cache-Control", "no-store")
	if format == "html" {
		// The page needs nothing from anywhere: say so to the browser.
		w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	}
	if format != "json" {
		w.Header().Set("Content-Disposition", fmt.Sprintf(`inline; filename="drover-run-%s.%s"`, run.ID, format))
	}
	_, _ = w.Write(buf.Bytes())
}
