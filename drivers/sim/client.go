// Long file, one reason: the HTTP client of every sim endpoint, whose retry and long-poll rules must be read together.

package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/drivers"
)

// maxAnswerBytes bounds what the client reads of one answer (the stats of a
// long chaos run are the biggest, well under it).
const maxAnswerBytes = 64 << 20

// ErrBadRequest is returned (wrapped) when the server refused a request as
// malformed: a bug on the calling side, not a platform condition.
var ErrBadRequest = errors.New("bad request")

// ClientOptions tune the HTTP client of the driver.
type ClientOptions struct {
	// Timeout bounds one request attempt (default 10 s). Long-polls wait at most
	// half of it.
	Timeout time.Duration
	// Retries is how often a request is retried after a 5xx or a transport
	// error (0 = 4, negative = never).
	Retries int
	// RetryWaitMin and RetryWaitMax bound the backoff (defaults 50 ms and 1 s).
	RetryWaitMin, RetryWaitMax time.Duration
	// Logger receives the client's logs (nil = discard).
	Logger *slog.Logger
}

func (o ClientOptions) withDefaults() ClientOptions {
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	switch {
	case o.Retries == 0:
		o.Retries = 4
	case o.Retries < 0:
		o.Retries = 0
	}
	if o.RetryWaitMin <= 0 {
		o.RetryWaitMin = 50 * time.Millisecond
	}
	if o.RetryWaitMax < o.RetryWaitMin {
		o.RetryWaitMax = max(time.Second, o.RetryWaitMin)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// APIError is an error answer of the sim server. It unwraps to the matching
// driver sentinel: drivers.ErrNotFound (404), drivers.ErrRejected (409),
// drivers.ErrUnavailable (5xx) or ErrBadRequest (400).
type APIError struct {
	Method, Path string
	Status       int
	Kind         ErrorKind
	// Reason says why a request was rejected (e.g. target_paused).
	Reason  string
	Message string
}

func (e *APIError) Error() string {
	msg := fmt.Sprintf("%s: %s", e.Unwrap(), e.Message)
	if e.Reason != "" {
		msg += " (" + e.Reason + ")"
	}
	return msg
}

// Unwrap returns the driver sentinel of the status.
func (e *APIError) Unwrap() error {
	switch {
	case e.Status == http.StatusNotFound:
		return drivers.ErrNotFound
	case e.Status == http.StatusConflict && e.Reason == ReasonPausedByOther:
		return drivers.ErrPausedByOther
	case e.Status == http.StatusConflict:
		return drivers.ErrRejected
	case e.Status >= 500:
		return drivers.ErrUnavailable
	}
	return ErrBadRequest
}

// Driver is the "sim" driver: a client of a sim server, remote (Dial) or
// in-process (NewEmbedded). It is safe for concurrent use.
type Driver struct {
	base     string
	client   *retryablehttp.Client
	logger   *slog.Logger
	pollWait time.Duration
	clock    *simClock
	// stop and done end the embedded server's event loop.
	stop      context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once
}

var (
	_ drivers.Driver          = (*Driver)(nil)
	_ drivers.Updater         = (*Driver)(nil)
	_ drivers.Clocked         = (*Driver)(nil)
	_ drivers.PowerController = (*Driver)(nil)
)

func newDriver(base string, transport http.RoundTripper, opts ClientOptions) *Driver {
	opts = opts.withDefaults()
	// The caller's logger already names the driver (drivers.Env.Logger).
	logger := opts.Logger
	rc := &retryablehttp.Client{
		HTTPClient:   &http.Client{Transport: transport, Timeout: opts.Timeout},
		Logger:       leveled{logger},
		RetryWaitMin: opts.RetryWaitMin,
		RetryWaitMax: opts.RetryWaitMax,
		RetryMax:     opts.Retries,
		CheckRetry:   checkRetry,
		Backoff:      retryablehttp.DefaultBackoff,
		ErrorHandler: retryablehttp.PassthroughErrorHandler,
	}
	return &Driver{
		base: strings.TrimRight(base, "/"), client: rc, logger: logger,
		pollWait: min(opts.Timeout/2, 10*time.Second),
	}
}

// leveled adapts slog to retryablehttp's LeveledLogger; its per-request lines
// are debug noise, its failure lines are worth a warning, not an error (the
// caller decides what an error is).
type leveled struct{ l *slog.Logger }

func (l leveled) Error(msg string, kv ...any) { l.l.Warn("sim api: "+msg, kv...) }
func (l leveled) Warn(msg string, kv ...any)  { l.l.Warn("sim api: "+msg, kv...) }
func (l leveled) Info(msg string, kv ...any)  { l.l.Debug("sim api: "+msg, kv...) }
func (l leveled) Debug(msg string, kv ...any) { l.l.Debug("sim api: "+msg, kv...) }

// checkRetry retries transport errors and 5xx, never 4xx: every route is
// idempotent, so a retried POST is safe, but a refused request stays refused.
func checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	if err != nil {
		// Bad URLs, TLS trust and redirect loops do not heal by retrying.
		return retryablehttp.DefaultRetryPolicy(ctx, resp, err)
	}
	return resp.StatusCode >= 500 && resp.StatusCode != http.StatusNotImplemented, nil
}

// Dial connects to a running sim server at url (e.g. http://127.0.0.1:8090).
func Dial(ctx context.Context, serverURL string, opts ClientOptions) (*Driver, error) {
	u, err := url.Parse(serverURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("dial sim server: url %q: want http://host:port", serverURL)
	}
	d := newDriver(serverURL, nil, opts)
	if err := d.syncClock(ctx, nil); err != nil {
		return nil, err
	}
	return d, nil
}

// EmbeddedOptions configure NewEmbedded.
type EmbeddedOptions struct {
	// Cluster is the cluster to simulate; ClusterFile is read when it is nil.
	Cluster     *Cluster
	ClusterFile string
	// TimeScale is model seconds per wall second (0 = 1).
	TimeScale float64
	ClientOptions
}

// NewEmbedded runs a sim server in-process and returns a driver talking to it
// through an in-memory transport (no socket), so a test can run everything
// inside a testing/synctest bubble. Close stops the server. ctx bounds only
// the start.
func NewEmbedded(ctx context.Context, opts EmbeddedOptions) (*Driver, error) {
	c := opts.Cluster
	if c == nil {
		var err error
		if c, err = LoadCluster(opts.ClusterFile); err != nil {
			return nil, fmt.Errorf("start embedded sim: %w", err)
		}
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	srv, err := NewServer(c, ServerOptions{TimeScale: opts.TimeScale, Logger: logger.With("component", "sim_server")})
	if err != nil {
		return nil, fmt.Errorf("start embedded sim: %w", err)
	}
	d := newDriver("http://sim.embedded", handlerTransport{srv.Handler()}, opts.ClientOptions)
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	d.stop, d.done = stop, make(chan struct{})
	go func() {
		defer close(d.done)
		srv.Run(runCtx)
	}()
	if err := d.syncClock(ctx, srv); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

func (d *Driver) syncClock(ctx context.Context, srv *Server) error {
	var c ClockResponse
	if err := d.call(ctx, http.MethodGet, "/v1/clock", nil, &c); err != nil {
		return fmt.Errorf("read sim clock: %w", err)
	}
	if !finite(c.Scale) || c.Scale <= 0 || c.Now.IsZero() {
		return fmt.Errorf("read sim clock: %w: invalid answer (scale %v, now %v)", drivers.ErrUnavailable, c.Scale, c.Now)
	}
	d.clock = &simClock{scale: c.Scale, server: srv, anchorModel: c.Now, anchorWall: time.Now()}
	return nil
}

// Close stops an embedded server and releases connections.
func (d *Driver) Close() error {
	d.closeOnce.Do(func() {
		if d.stop != nil {
			d.stop()
			<-d.done
		}
		d.client.HTTPClient.CloseIdleConnections()
	})
	return nil
}

// call sends one request (with retries) and decodes a 2xx answer into out.
func (d *Driver) call(ctx context.Context, method, path string, body, out any) error {
	var raw any
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		raw = b
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, method, d.base+path, raw)
	if err != nil {
		return fmt.Errorf("build request %s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := d.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%s %s: %w: %v", method, path, drivers.ErrUnavailable, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%s %s: read answer: %w: %v", method, path, drivers.ErrUnavailable, err)
	}
	if d.clock != nil {
		d.clock.observe(resp.Header.Get(timeHeader))
	}
	if resp.StatusCode/100 == 2 {
		if out == nil {
			return nil
		}
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: %w: undecodable answer: %v", method, path, drivers.ErrUnavailable, err)
		}
		return nil
	}
	var e ErrorResponse
	if json.Unmarshal(data, &e) != nil || e.Error == "" {
		e.Error = strings.TrimSpace(string(data[:min(len(data), 200)]))
	}
	return &APIError{Method: method, Path: path, Status: resp.StatusCode, Kind: e.Kind, Reason: e.Reason, Message: e.Error}
}

func nodePath(node, suffix string) string { return "/v1/nodes/" + url.PathEscape(node) + suffix }
func vmPath(vm, suffix string) string     { return "/v1/vms/" + url.PathEscape(vm) + suffix }

// Inventory returns a snapshot of nodes and VMs.
func (d *Driver) Inventory(ctx context.Context) (cluster.Inventory, error) {
	var inv cluster.Inventory
	if err := d.call(ctx, http.MethodGet, "/v1/inventory", nil, &inv); err != nil {
		return cluster.Inventory{}, fmt.Errorf("inventory: %w", err)
	}
	if err := checkInventory(inv); err != nil {
		return cluster.Inventory{}, fmt.Errorf("inventory: %w: %v", drivers.ErrUnavailable, err)
	}
	return inv, nil
}

// checkInventory validates an answer before the orchestrator trusts it.
func checkInventory(inv cluster.Inventory) error {
	nodes := map[string]bool{}
	for i, n := range inv.Nodes {
		if n.Name == "" || nodes[n.Name] {
			return fmt.Errorf("node %d: empty or duplicate name %q", i, n.Name)
		}
		switch n.State {
		case cluster.NodeUp, cluster.NodePaused, cluster.NodeRebooting, cluster.NodeDown:
		default:
			return fmt.Errorf("node %s: unknown state %q", n.Name, n.State)
		}
		if n.StorageMiB < 0 {
			return fmt.Errorf("node %s: negative storage_mib %d", n.Name, n.StorageMiB)
		}
		nodes[n.Name] = true
	}
	vms := map[string]bool{}
	for i, v := range inv.VMs {
		if v.Name == "" || vms[v.Name] {
			return fmt.Errorf("vm %d: empty or duplicate name %q", i, v.Name)
		}
		if !nodes[v.Node] {
			return fmt.Errorf("vm %s: on unknown node %q", v.Name, v.Node)
		}
		if v.MigratingTo != "" && !nodes[v.MigratingTo] {
			return fmt.Errorf("vm %s: migrating to unknown node %q", v.Name, v.MigratingTo)
		}
		for _, dk := range v.Disks {
			if dk.SizeMiB < 0 {
				return fmt.Errorf("vm %s: disk %q has negative size_mib %d", v.Name, dk.Name, dk.SizeMiB)
			}
		}
		vms[v.Name] = true
	}
	return nil
}

func (d *Driver) nodeOp(ctx context.Context, op, node, suffix string) error {
	if err := d.call(ctx, http.MethodPost, nodePath(node, suffix), nil, nil); err != nil {
		return fmt.Errorf("%s node %s: %w", op, node, err)
	}
	return nil
}

// PauseNode stops placements on node under owner's mark.
func (d *Driver) PauseNode(ctx context.Context, node, owner string) error {
	if err := d.call(ctx, http.MethodPost, nodePath(node, "/pause"), PauseRequest{Owner: owner}, nil); err != nil {
		return fmt.Errorf("pause node %s: %w", node, err)
	}
	return nil
}

// ResumeNode allows placements on node again.
func (d *Driver) ResumeNode(ctx context.Context, node string) error {
	return d.nodeOp(ctx, "resume", node, "/resume")
}

// RebootNode starts a reboot of node; a node already rebooting is left alone.
func (d *Driver) RebootNode(ctx context.Context, node string) error {
	return d.nodeOp(ctx, "reboot", node, "/reboot")
}

// NodeReady reports whether node is up or paused.
func (d *Driver) NodeReady(ctx context.Context, node string) (bool, error) {
	var r ReadyResponse
	if err := d.call(ctx, http.MethodGet, nodePath(node, "/ready"), nil, &r); err != nil {
		return false, fmt.Errorf("check node %s ready: %w", node, err)
	}
	return r.Ready, nil
}

// Node returns one node, with its boot ID.
func (d *Driver) Node(ctx context.Context, node string) (cluster.Node, error) {
	var n cluster.Node
	if err := d.call(ctx, http.MethodGet, nodePath(node, ""), nil, &n); err != nil {
		return cluster.Node{}, fmt.Errorf("get node %s: %w", node, err)
	}
	return n, nil
}

// Capabilities of the simulator.
func (d *Driver) Capabilities() drivers.Capabilities {
	return drivers.Capabilities{BootID: true, PowerControl: true, NativeDrain: false, MigrateSuspended: true, PauseOwner: true, StorageMigration: true}
}

// Clock is the model's time, as seen from this process.
func (d *Driver) Clock() drivers.Clock { return d.clock }

// Migrate live-migrates req.VM to req.To (a suspended VM moves as saved state
// and stays suspended) and waits (long-polling) until the
// migration ends. On ctx's end it cancels the migration on the server (best
// effort) and returns ctx's error.
func (d *Driver) Migrate(ctx context.Context, req drivers.MigrateRequest, progress func(drivers.MigrationProgress)) (drivers.MigrationResult, error) {
	op := fmt.Sprintf("migrate vm %s to %s", req.VM, req.To)
	var start StartMigrationResponse
	err := d.call(ctx, http.MethodPost, "/v1/migrations", StartMigrationRequest{VM: req.VM, From: req.From, To: req.To}, &start)
	if err != nil {
		if ctx.Err() != nil {
			// The start may have taken effect with its answer lost.
			d.cancelVM(ctx, req)
			return drivers.MigrationResult{}, fmt.Errorf("%s: %w", op, ctx.Err())
		}
		return drivers.MigrationResult{}, fmt.Errorf("%s: %w", op, err)
	}
	if start.Outcome == OutcomeAlreadyThere {
		return drivers.MigrationResult{AlreadyThere: true}, nil
	}
	st := start.Migration
	if st.ID == "" || st.VM != req.VM || st.To != req.To {
		return drivers.MigrationResult{}, fmt.Errorf("%s: %w: answer describes migration %q of vm %q to %q", op, drivers.ErrUnavailable, st.ID, st.VM, st.To)
	}
	if start.Outcome == OutcomeJoined {
		d.logger.Info("joined migration in flight", "vm", req.VM, "to", req.To, "migration_id", st.ID)
	}
	path := "/v1/migrations/" + url.PathEscape(st.ID)
	failures := 0
	for !st.Done() {
		if progress != nil {
			// Figures from the server feed the drain scheduler's rates: nonsense
			// (negative, NaN) is reported as 0, i.e. unknown.
			progress(drivers.MigrationProgress{
				VM: st.VM, From: st.From, To: st.To, Phase: string(st.Phase), Round: st.Round,
				TransferredMiB: nonNegative(st.TransferredMiB), RemainingMiB: nonNegative(st.RemainingMiB), Elapsed: max(st.Elapsed, 0),
			})
		}
		var next MigrationStatus
		q := fmt.Sprintf("?wait=%s&version=%d", d.pollWait, st.Version)
		err := d.call(ctx, http.MethodGet, path+q, nil, &next)
		switch {
		case ctx.Err() != nil:
			d.cancel(ctx, path)
			return drivers.MigrationResult{}, fmt.Errorf("%s: %w", op, ctx.Err())
		case errors.Is(err, drivers.ErrUnavailable) && failures < 3:
			// The migration goes on on the server; a flaky API must not fail it.
			failures++
			continue
		case err != nil:
			return drivers.MigrationResult{}, fmt.Errorf("%s: %w", op, err)
		case next.ID != st.ID:
			return drivers.MigrationResult{}, fmt.Errorf("%s: %w: status of migration %q instead of %q", op, drivers.ErrUnavailable, next.ID, st.ID)
		}
		failures = 0
		st = next
	}
	switch st.Phase {
	case PhaseCompleted:
		if st.Elapsed < 0 || st.Downtime < 0 || !finite(st.TransferredMiB) || st.TransferredMiB < 0 ||
			!finite(st.DiskMiB) || st.DiskMiB < 0 || st.DiskMiB > st.TransferredMiB {
			// The move happened; its figures are nonsense: report them as unknown
			// rather than feed them to reports and estimates.
			d.logger.Warn("completed migration with invalid figures; ignoring them", "vm", req.VM, "elapsed", st.Elapsed, "transferred_mib", st.TransferredMiB, "disk_mib", st.DiskMiB, "downtime", st.Downtime)
			return drivers.MigrationResult{}, nil
		}
		return drivers.MigrationResult{Duration: st.Elapsed, TransferredMiB: st.TransferredMiB, DiskMiB: st.DiskMiB, Downtime: st.Downtime}, nil
	case PhaseFailed:
		if st.ErrorKind == KindNotConverged {
			return drivers.MigrationResult{}, fmt.Errorf("%s: %w: %s", op, drivers.ErrNotConverged, st.Error)
		}
		return drivers.MigrationResult{}, fmt.Errorf("%s: %w: %s", op, drivers.ErrMigrationFailed, st.Error)
	default:
		return drivers.MigrationResult{}, fmt.Errorf("%s: %w: %s", op, drivers.ErrMigrationFailed, st.Error)
	}
}

// nonNegative returns v, or 0 when v is negative or not finite.
func nonNegative(v float64) float64 {
	if !finite(v) || v < 0 {
		return 0
	}
	return v
}

// cancel aborts a migration with a fresh short context, because ctx is done.
func (d *Driver) cancel(ctx context.Context, path string) {
	cctx, done := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer done()
	if err := d.call(cctx, http.MethodPost, path+"/cancel", nil, nil); err != nil {
		d.logger.Warn("cancel migration failed", "path", path, "error", err)
	}
}

// cancelVM cancels the migration of req.VM to req.To in flight, if any.
func (d *Driver) cancelVM(ctx context.Context, req drivers.MigrateRequest) {
	cctx, done := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer done()
	var list []MigrationStatus
	if err := d.call(cctx, http.MethodGet, "/v1/migrations?vm="+url.QueryEscape(req.VM), nil, &list); err != nil {
		d.logger.Warn("list migrations to cancel failed", "vm", req.VM, "error", err)
		return
	}
	for _, st := range list {
		if !st.Done() && st.To == req.To && st.ID != "" {
			d.cancel(ctx, "/v1/migrations/"+url.PathEscape(st.ID))
		}
	}
}

// Migrations lists the migrations of vm ("" = all) known to the server.
func (d *Driver) Migrations(ctx context.Context, vm string) ([]MigrationStatus, error) {
	var list []MigrationStatus
	if err := d.call(ctx, http.MethodGet, "/v1/migrations?vm="+url.QueryEscape(vm), nil, &list); err != nil {
		return nil, fmt.Errorf("list migrations: %w", err)
	}
	return list, nil
}

// Scan lists the updates pending on node.
func (d *Driver) Scan(ctx context.Context, node string) ([]cluster.Update, error) {
	var r UpdatesResponse
	if err := d.call(ctx, http.MethodGet, nodePath(node, "/updates"), nil, &r); err != nil {
		return nil, fmt.Errorf("scan updates of node %s: %w", node, err)
	}
	return r.Pending, nil
}

// Install installs the pending updates of node.
func (d *Driver) Install(ctx context.Context, node string) (drivers.InstallResult, error) {
	var r drivers.InstallResult
	if err := d.call(ctx, http.MethodPost, nodePath(node, "/updates/install"), nil, &r); err != nil {
		return drivers.InstallResult{}, fmt.Errorf("install updates on node %s: %w", node, err)
	}
	return r, nil
}

// ShutdownVM stops vm.
func (d *Driver) ShutdownVM(ctx context.Context, vm string) error {
	if err := d.call(ctx, http.MethodPost, vmPath(vm, "/shutdown"), nil, nil); err != nil {
		return fmt.Errorf("shut down vm %s: %w", vm, err)
	}
	return nil
}

// StartVM starts vm on its node.
func (d *Driver) StartVM(ctx context.Context, vm string) error {
	if err := d.call(ctx, http.MethodPost, vmPath(vm, "/start"), nil, nil); err != nil {
		return fmt.Errorf("start vm %s: %w", vm, err)
	}
	return nil
}

// Stats returns the model's statistics (migration log, killed VMs, ...).
func (d *Driver) Stats(ctx context.Context) (Stats, error) {
	var s Stats
	if err := d.call(ctx, http.MethodGet, "/v1/stats", nil, &s); err != nil {
		return Stats{}, fmt.Errorf("read sim stats: %w", err)
	}
	return s, nil
}

// InjectFault adds a fault at run time (see Fault).
func (d *Driver) InjectFault(ctx context.Context, f Fault) error {
	if err := d.call(ctx, http.MethodPost, "/v1/admin/faults", f, nil); err != nil {
		return fmt.Errorf("inject %s fault: %w", f.Kind, err)
	}
	return nil
}

// CrashNode makes node fail at once (its running VMs stop).
func (d *Driver) CrashNode(ctx context.Context, node string) error {
	if err := d.call(ctx, http.MethodPost, "/v1/admin/nodes/"+url.PathEscape(node)+"/crash", nil, nil); err != nil {
		return fmt.Errorf("crash node %s: %w", node, err)
	}
	return nil
}

// RecoverNode power-cycles a down node; it is back after its reboot time.
func (d *Driver) RecoverNode(ctx context.Context, node string) error {
	if err := d.call(ctx, http.MethodPost, "/v1/admin/nodes/"+url.PathEscape(node)+"/recover", nil, nil); err != nil {
		return fmt.Errorf("recover node %s: %w", node, err)
	}
	return nil
}

// simClock is the model's time in this process: exact for an embedded server,
// else extrapolated from the time stamp of the latest answer.
type simClock struct {
	scale  float64
	server *Server

	mu          sync.Mutex
	anchorModel time.Time
	anchorWall  time.Time
	last        time.Time
}

var _ drivers.Clock = (*simClock)(nil)

func (c *simClock) Now() time.Time {
	if c.server != nil {
		return c.server.ModelTime(time.Now())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.anchorModel.Add(time.Duration(float64(time.Since(c.anchorWall)) * c.scale))
	if t.Before(c.last) {
		t = c.last // never run backwards when a late answer re-anchors
	}
	c.last = t
	return t
}

func (c *simClock) WallDuration(d time.Duration) time.Duration {
	return time.Duration(float64(d) / c.scale)
}

func (c *simClock) observe(stamp string) {
	if c.server != nil || stamp == "" {
		return
	}
	t, err := time.Parse(time.RFC3339Nano, stamp)
	if err != nil {
		return
	}
	c.mu.Lock()
	c.anchorModel, c.anchorWall = t, time.Now()
	c.mu.Unlock()
}

// handlerTransport serves requests by calling a handler in the calling
// goroutine: no socket, so it works inside a synctest bubble.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	if r.Body == nil {
		r.Body = http.NoBody
	}
	r.RequestURI = req.URL.RequestURI()
	r.RemoteAddr = "127.0.0.1:0"
	w := &memResponse{header: http.Header{}}
	t.h.ServeHTTP(w, r)
	if req.Body != nil {
		req.Body.Close()
	}
	if err := req.Context().Err(); err != nil {
		return nil, err
	}
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return &http.Response{
		Status: fmt.Sprintf("%d %s", w.code, http.StatusText(w.code)), StatusCode: w.code,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: w.header,
		Body: io.NopCloser(bytes.NewReader(w.body.Bytes())), ContentLength: int64(w.body.Len()), Request: req,
	}, nil
}

type memResponse struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (w *memResponse) Header() http.Header { return w.header }

func (w *memResponse) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}

func (w *memResponse) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.body.Write(b)
}
