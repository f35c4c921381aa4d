package orchestrator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/drivers"
	"github.com/droverhq/drover/policies"
	"github.com/droverhq/drover/runs"
)

// Errors of the engine.
var (
	// ErrInterrupted: the run was interrupted (context cancelled, e.g. SIGTERM) and
	// can be resumed; nodes may be left paused, which the run records.
	ErrInterrupted = errors.New("run interrupted")
)

// UnfinishedRunError: the cluster has a run that has not finished; it must be resumed
// (or stopped) before a new one starts.
type UnfinishedRunError struct {
	Run  runs.Run
	Live bool // its owner process still runs
}

func (e *UnfinishedRunError) Error() string {
	if e.Run.State == runs.StateWaitingApproval {
		return fmt.Sprintf("cluster %s has run %s waiting for approval of its canary node; continue it with `drover runs approve %s` or end it with `drover runs stop %s`", e.Run.Cluster, e.Run.ID, e.Run.ID, e.Run.ID)
	}
	if e.Live {
		return fmt.Sprintf("cluster %s has run %s in progress (%s); wait for it or stop it with `drover runs stop %s`", e.Run.Cluster, e.Run.ID, e.Run.Owner, e.Run.ID)
	}
	return fmt.Sprintf("cluster %s has an interrupted run %s (started %s); resume it with `drover runs resume %s` or end it with `drover runs stop %s`", e.Run.Cluster, e.Run.ID, e.Run.StartedAt.Format(time.RFC3339), e.Run.ID, e.Run.ID)
}

// Config wires an Engine.
type Config struct {
	// Cluster is the cluster's name (the run lock's key).
	Cluster string
	Driver  drivers.Driver
	Updater drivers.Updater
	Store   *runs.Store
	Logger  *slog.Logger
	// Observer receives live events; may be nil.
	Observer Observer
	// Owner is this process, recorded in run locks.
	Owner runs.Owner
	// Alive tells whether a lock owner still runs (default runs.CheckAlive).
	Alive func(runs.Owner) runs.Liveness
	// ForceRecovery takes over locks whose owner cannot be checked (another host).
	ForceRecovery bool
	// StartGate holds queued nodes until they may start (the daemon's maintenance
	// windows); nil lets every node start at once.
	StartGate StartGate
}

// Engine runs rolling maintenance runs of one cluster. It is the only place where
// decisions (policies) turn into actions (driver calls), each journaled first.
type Engine struct {
	cfg   Config
	clock drivers.Clock
	log   *slog.Logger

	mu    sync.Mutex
	stops map[string]chan struct{} // run ID -> closed when a stop is requested
}

// New returns an Engine.
func New(cfg Config) (*Engine, error) {
	if cfg.Driver == nil || cfg.Updater == nil || cfg.Store == nil {
		return nil, errors.New("orchestrator: Driver, Updater and Store are required")
	}
	if cfg.Cluster == "" {
		return nil, errors.New("orchestrator: Cluster name is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Observer == nil {
		cfg.Observer = ObserverFunc(func(Event) {})
	}
	if cfg.Alive == nil {
		cfg.Alive = runs.CheckAlive
	}
	return &Engine{
		cfg:   cfg,
		clock: drivers.ClockOf(cfg.Driver),
		log:   cfg.Logger.With("component", "engine", "cluster", cfg.Cluster),
		stops: map[string]chan struct{}{},
	}, nil
}

// Clock is the cluster's clock.
func (e *Engine) Clock() drivers.Clock { return e.clock }

// Unfinished returns the newest run of the cluster that has not finished, if any.
func (e *Engine) Unfinished() (runs.Run, bool, error) {
	rs, err := e.cfg.Store.Runs(e.cfg.Cluster)
	if err != nil {
		return runs.Run{}, false, err
	}
	for _, r := range rs {
		if !r.State.Terminal() {
			return r, true, nil
		}
	}
	return runs.Run{}, false, nil
}

// Prepared is a run as it would start: the node order and why nodes are left out.
type Prepared struct {
	Policy  Policy
	Order   []string
	Records []runs.NodeRecord
	// Plan is the whole run as predicted (Engine.Prepare, PlanRun); Start stores it
	// and the drain follows it.
	Plan *RunPlan
	// inv is the inventory the order was decided on.
	inv cluster.Inventory
}

// Prepare scans the cluster, decides the node order of a new run and plans it,
// without changing anything.
func (e *Engine) Prepare(ctx context.Context, p Policy) (Prepared, error) {
	prep, err := Prepare(ctx, e.cfg.Driver, e.cfg.Updater, p)
	if err != nil {
		return prep, err
	}
	return e.withPlan(prep)
}

// Prepare scans the cluster and decides the node order of a new run, without
// changing anything and without a state file.
func Prepare(ctx context.Context, d drivers.Driver, u drivers.Updater, p Policy) (Prepared, error) {
	if err := p.Validate(); err != nil {
		return Prepared{}, err
	}
	p, err := p.resolveLocalStorage(d.Capabilities())
	if err != nil {
		return Prepared{}, err
	}
	inv, err := d.Inventory(ctx)
	if err != nil {
		return Prepared{}, fmt.Errorf("read inventory: %w", err)
	}
	if err := requireOnline(inv, p); err != nil {
		return Prepared{}, err
	}
	known := map[string]bool{}
	for _, n := range inv.Nodes {
		known[n.Name] = true
	}
	for i, n := range p.Nodes {
		if !known[n] {
			return Prepared{}, drivers.Fieldf(fmt.Sprintf("policy.nodes[%d]", i), "use a node name from `drover inventory`", "unknown node %q", n)
		}
	}
	pending, err := scanAll(ctx, u, inv)
	if err != nil {
		return Prepared{}, err
	}
	order, skipped, err := orderNodes(inv, p, pending)
	if err != nil {
		return Prepared{}, err
	}
	var recs []runs.NodeRecord
	for _, name := range order {
		rec := runs.NodeRecord{Name: name, State: NodeQueued, Pending: toRunUpdates(pending[name])}
		if reason, ok := skipped[name]; ok {
			rec.State, rec.SkipReason = NodeSkipped, reason
		}
		recs = append(recs, rec)
	}
	return Prepared{Policy: p, Order: order, Records: recs, inv: inv}, nil
}

// scanAll asks the update plug-in for every ready node's pending updates, a few
// nodes at a time.
func scanAll(ctx context.Context, u drivers.Updater, inv cluster.Inventory) (map[string][]cluster.Update, error) {
	var (
		mu   sync.Mutex
		out  = map[string][]cluster.Update{}
		errs []error
		wg   sync.WaitGroup
		sem  = make(chan struct{}, 8)
	)
	for _, n := range inv.Nodes {
		if !n.Ready() {
			continue
		}
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			ups, err := u.Scan(ctx, n.Name)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("scan updates of node %s: %w", n.Name, err))
				return
			}
			out[n.Name] = ups
		})
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// orderNodes applies the order policy. Nodes the run leaves out (no pending update,
// down, paused by someone else) come last, as skipped, so the report shows them.
func orderNodes(inv cluster.Inventory, p Policy, pending map[string][]cluster.Update) ([]string, map[string]string, error) {
	strategy, err := policies.ParseOrderStrategy(p.NodeOrder)
	if err != nil {
		return nil, nil, drivers.Fieldf("policy.node_order", "use one of: "+strategyNames(), "unknown order %q", p.NodeOrder)
	}
	counts := map[string]int{}
	for name, ups := range pending {
		counts[name] = len(ups)
	}
	exclude := map[string]string{}
	for _, n := range inv.Nodes {
		switch {
		case !n.Ready():
			exclude[n.Name] = fmt.Sprintf("node is %s", n.State)
		case n.Paused:
			exclude[n.Name] = "node was paused before the run (drover leaves it alone; resume it to include it)"
		}
	}
	opts := policies.OrderOptions{Strategy: strategy, Pending: counts, Force: p.Force, Exclude: exclude}
	if len(p.Nodes) > 0 {
		opts.Nodes = p.Nodes
		if strategy != policies.OrderExplicit {
			// A node list with another strategy limits the run to those nodes.
			for _, n := range inv.Nodes {
				if !slices.Contains(p.Nodes, n.Name) {
					opts.Exclude[n.Name] = "not in policy.nodes"
				}
			}
		}
	}
	opts.Label = p.OrderLabel
	order, skippedList, err := policies.OrderNodes(inv, opts)
	if err != nil {
		return nil, nil, policyField(err)
	}
	sort.Slice(skippedList, func(i, j int) bool { return skippedList[i].Node < skippedList[j].Node })
	skipped := map[string]string{}
	for _, s := range skippedList {
		if s.Reason == "not in policy.nodes" || (strategy == policies.OrderExplicit && !slices.Contains(p.Nodes, s.Node)) {
			continue // outside the run altogether
		}
		if strings.HasPrefix(s.Reason, "no pending updates") {
			s.Reason = "no pending updates (use --force to patch and reboot anyway)"
		}
		skipped[s.Node] = s.Reason
		order = append(order, s.Node)
	}
	return order, skipped, nil
}

// policyField renames the fields of the order policy's errors to config keys.
func policyField(err error) error {
	var fe *drivers.FieldError
	if !errors.As(err, &fe) {
		return err
	}
	field := fe.Field
	for from, to := range map[string]string{"order.nodes": "policy.nodes", "order.strategy": "policy.node_order", "order.label": "policy.order_label"} {
		if strings.HasPrefix(field, from) {
			field = to + strings.TrimPrefix(field, from)
		}
	}
	return &drivers.FieldError{Field: field, Problem: fe.Problem, Fix: fe.Fix}
}

func strategyNames() string {
	var s []string
	for _, o := range policies.OrderStrategies() {
		s = append(s, string(o))
	}
	return strings.Join(s, ", ")
}

// Start records a new run and takes the cluster's run lock. It refuses when the
// cluster has an unfinished run.
func (e *Engine) Start(ctx context.Context, prep Prepared) (string, error) {
	if r, ok, err := e.Unfinished(); err != nil {
		return "", err
	} else if ok {
		return "", &UnfinishedRunError{Run: r, Live: e.cfg.Alive(r.Owner) == runs.Alive}
	}
	opts, err := json.Marshal(prep.Policy)
	if err != nil {
		return "", fmt.Errorf("encode policy: %w", err)
	}
	plan, err := encodePlan(prep.Plan)
	if err != nil {
		return "", err
	}
	now := time.Now()
	run := runs.Run{
		ID:        runs.NewRunID(now),
		Cluster:   e.cfg.Cluster,
		State:     runs.StateRunning,
		StartedAt: now,
		Order:     prep.Order,
		Options:   opts,
		Plan:      plan,
		Owner:     e.cfg.Owner,
	}
	err = e.cfg.Store.Update(func(tx *runs.Tx) error {
		if _, err := tx.AcquireLock(runs.Lock{Cluster: e.cfg.Cluster, RunID: run.ID, Owner: e.cfg.Owner, Acquired: now}, e.cfg.Alive, e.cfg.ForceRecovery); err != nil {
			return err
		}
		if err := tx.CreateRun(run, prep.Records); err != nil {
			return err
		}
		_, err := tx.Append(run.ID, runs.Entry{At: e.clock.Now(), Op: runs.OpRunStart, Status: runs.StatusEvent, Detail: fmt.Sprintf("order %v", prep.Order)})
		return err
	})
	if err != nil {
		return "", fmt.Errorf("start run: %w", err)
	}
	return run.ID, nil
}

// Stop asks the run to stop: the drain in progress is aborted and its node resumed; a
// node already patching finishes; no further node starts.
func (e *Engine) Stop(runID string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ch, ok := e.stops[runID]
	if !ok {
		ch = make(chan struct{})
		e.stops[runID] = ch
	}
	select {
	case <-ch:
	default:
		close(ch)
	}
}

func (e *Engine) stopChan(runID string) chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	ch, ok := e.stops[runID]
	if !ok {
		ch = make(chan struct{})
		e.stops[runID] = ch
	}
	return ch
}

// runState is the in-memory state of a run in progress. Records are the store's,
// kept in sync: every change goes through Engine.persist.
type runState struct {
	id      string
	policy  Policy
	order   []string
	stop    chan struct{}
	limiter *limiter
	// placer is the placement model the run's drains share.
	placer runPlacer

	mu    sync.Mutex
	nodes map[string]runs.NodeRecord

	// pol holds the run policies' own state (plan, deadlines, stop reason).
	pol policyState
}

func (rs *runState) node(name string) runs.NodeRecord {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.nodes[name]
}

func (rs *runState) stopped() bool {
	select {
	case <-rs.stop:
		return true
	default:
		return false
	}
}

// Execute runs a started or interrupted run until it finishes, is stopped, or ctx
// is done (ErrInterrupted: resume it later).
func (e *Engine) Execute(ctx context.Context, runID string) (runs.Run, error) {
	if r, err := e.checkApproval(runID); err != nil {
		return r, err
	}
	rs, resumed, err := e.claim(runID)
	if err != nil {
		return runs.Run{}, err
	}
	if rs == nil { // already finished
		return e.cfg.Store.Run(runID)
	}
	log := e.log.With("run_id", runID)
	kind := EventRunStarted
	if resumed {
		kind = EventRunResumed
		log.Info("resuming run")
	} else {
		log.Info("starting run", "order", rs.order)
	}
	e.emit(Event{Kind: kind, RunID: runID, State: string(runs.StateRunning), Total: len(rs.order)})

	final, runErr := e.loop(ctx, rs)
	if err := e.noteDeadlines(rs); err != nil && final != "" {
		final, runErr = "", err
	}
	if final == evRunWait {
		return e.awaitApproval(rs)
	}
	if errors.Is(runErr, ErrInterrupted) {
		log.Warn("run interrupted", "error", runErr)
		r, _ := e.cfg.Store.Run(runID)
		return r, runErr
	}
	if final == "" {
		// The run cannot go on (its journal cannot be written, or its record is
		// inconsistent): end it as failed if the store still takes the write.
		log.Error("run aborted", "error", runErr)
		r, ferr := e.finish(rs, evRunFail, runErr)
		if ferr != nil {
			return r, e.stranded(rs, fmt.Errorf("%w; and recording the failure failed too: %v", runErr, ferr), true)
		}
		return r, e.stranded(rs, runErr, false)
	}
	return e.finish(rs, final, runErr)
}

// stranded completes the error of an aborted run: it names the nodes the run leaves
// in maintenance (paused), which the engine does not resume because it does not act
// without a journal, and says how to go on. resumable: the run is still recorded as
// unfinished (its end could not be written), so `drover runs resume` continues it.
func (e *Engine) stranded(rs *runState, err error, resumable bool) error {
	var left []string
	for _, name := range rs.order {
		if st := rs.node(name).State; !NodeTerminal(st) && st != NodeQueued {
			left = append(left, fmt.Sprintf("%s (%s)", name, st))
			e.log.Error("node left paused by an aborted run", "run_id", rs.id, "node", name, "state", st)
			e.emit(Event{Kind: EventWarning, RunID: rs.id, Node: name, Message: "node left paused: the run stopped without acting further"})
		}
	}
	msg := fmt.Sprintf("run %s stopped without acting further", rs.id)
	if len(left) > 0 {
		msg += "; nodes left paused: " + strings.Join(left, ", ")
	}
	if resumable {
		return fmt.Errorf("%w; %s; once the state file can be written again, `drover runs resume %s` continues the run where it stopped", err, msg, rs.id)
	}
	if len(left) > 0 {
		msg += " (resume them on the platform)"
	}
	return fmt.Errorf("%w; %s", err, msg)
}

// claim takes the run lock for this process and loads the run state. It returns nil
// state for a run that has already finished.
func (e *Engine) claim(runID string) (*runState, bool, error) {
	var (
		run     runs.Run
		nodes   []runs.NodeRecord
		resumed bool
	)
	now := time.Now()
	err := e.cfg.Store.Update(func(tx *runs.Tx) error {
		var err error
		if run, err = tx.Run(runID); err != nil {
			return err
		}
		if run.Cluster != e.cfg.Cluster {
			return fmt.Errorf("run %s belongs to cluster %s, not %s: use the config of that cluster", runID, run.Cluster, e.cfg.Cluster)
		}
		if run.State.Terminal() {
			return nil
		}
		prev, err := tx.AcquireLock(runs.Lock{Cluster: e.cfg.Cluster, RunID: runID, Owner: e.cfg.Owner, Acquired: now}, e.cfg.Alive, e.cfg.ForceRecovery)
		if err != nil {
			return err
		}
		if prev != nil && !sameOwner(prev.Owner, e.cfg.Owner) {
			detail := fmt.Sprintf("took over the lock of run %s from %s, which is no longer running", prev.RunID, prev.Owner)
			e.log.Warn("took over stale run lock", "run_id", runID, "previous_run", prev.RunID, "previous_owner", prev.Owner.String())
			if _, err := tx.Append(runID, runs.Entry{At: e.clock.Now(), Op: runs.OpLock, Status: runs.StatusEvent, Detail: detail}); err != nil {
				return err
			}
		}
		if !sameOwner(run.Owner, e.cfg.Owner) {
			resumed = true
			if err := tx.UpdateRun(runID, func(r *runs.Run) error {
				r.Owner = e.cfg.Owner
				r.Resumes++
				return nil
			}); err != nil {
				return err
			}
		}
		nodes, err = tx.Nodes(runID)
		return err
	})
	if err != nil {
		return nil, false, fmt.Errorf("claim run %s: %w", runID, err)
	}
	if run.State.Terminal() {
		return nil, false, nil
	}
	p := DefaultPolicy()
	if len(run.Options) > 0 {
		if err := json.Unmarshal(run.Options, &p); err != nil {
			return nil, false, fmt.Errorf("run %s: decode its policy: %w", runID, err)
		}
	}
	rs := &runState{
		id:      runID,
		policy:  p,
		order:   run.Order,
		stop:    e.stopChan(runID),
		limiter: newLimiter(p.DrainOptions()),
		nodes:   map[string]runs.NodeRecord{},
	}
	for _, n := range nodes {
		rs.nodes[n.Name] = n
	}
	return rs, resumed, nil
}

func sameOwner(a, b runs.Owner) bool {
	return a.PID == b.PID && a.Host == b.Host && a.StartTicks == b.StartTicks
}

// loop processes the nodes in order, up to policy.max_parallel_nodes at once: a
// queued node joins the nodes in maintenance only when the reserve (or, with
// reserve_nodes 0, the capacity) holds with all of them out. Nodes in progress share
// the run's placer and migration limits. It returns the run event that ends the run.
func (e *Engine) loop(ctx context.Context, rs *runState) (string, error) {
	budget := rs.policy.MaxFailedNodes
	if budget < 0 {
		budget = len(rs.order) / 3
	}
	defer e.watchDeadlines(rs)()
	w := newNodeWorkers(e, rs)
	ev, err := e.startNodes(ctx, rs, w, budget)
	if werr := w.wait(); werr != nil {
		return "", werr
	}
	if ev != "" || err != nil {
		return ev, err
	}
	if rs.stopped() {
		return evRunStop, rs.pol.stopError()
	}
	failed := rs.countFailed()
	switch {
	case failed > budget:
		return evRunFail, fmt.Errorf("%d nodes failed, more than the budget of %d (policy.max_failed_nodes)", failed, budget)
	case failed > 0:
		return evRunPartial, fmt.Errorf("%d of %d nodes failed", failed, len(rs.order))
	}
	return evRunSucceed, nil
}

// startNodes starts the nodes in order, each when it may (see loop). It returns a
// run event when the run ends early; the nodes in progress then still finish.
func (e *Engine) startNodes(ctx context.Context, rs *runState, w *nodeWorkers, budget int) (string, error) {
	overBudget := func() (string, error) {
		if failed := rs.countFailed(); failed > budget {
			return evRunFail, fmt.Errorf("%d nodes failed, more than the budget of %d (policy.max_failed_nodes)", failed, budget)
		}
		return "", nil
	}
	for i, name := range rs.order {
		if w.failure() != nil {
			return "", nil // wait reports it
		}
		if ev, err := overBudget(); ev != "" {
			return ev, err
		}
		if NodeTerminal(rs.node(name).State) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return "", fmt.Errorf("%w: %v", ErrInterrupted, err)
		}
		queued := rs.node(name).State == NodeQueued
		if rs.stopped() && queued {
			return evRunStop, rs.pol.stopError()
		}
		// A node in progress (a resumed run) goes on at once: it is out already.
		if queued && !w.slot(ctx, name) {
			if w.failure() != nil {
				return "", nil
			}
			if err := ctx.Err(); err != nil {
				return "", fmt.Errorf("%w: %v", ErrInterrupted, err)
			}
			return evRunStop, rs.pol.stopError()
		}
		if ev, err := overBudget(); ev != "" {
			return ev, err
		}
		if err := e.waitStartGate(ctx, rs, name); err != nil {
			return "", err
		}
		if rs.stopped() && rs.node(name).State == NodeQueued {
			return evRunStop, rs.pol.stopError()
		}
		if ev, err := e.beforeNode(ctx, rs, name); ev != "" || err != nil {
			return ev, err
		}
		if err := w.claim(ctx, name); err != nil {
			return "", err
		}
		w.start(ctx, name, i+1)
	}
	return "", nil
}

func (rs *runState) countFailed() int {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	n := 0
	for _, r := range rs.nodes {
		if r.State == NodeFailed {
			n++
		}
	}
	return n
}

// finish records the run's end, its timings, and releases the lock.
func (e *Engine) finish(rs *runState, event string, runErr error) (runs.Run, error) {
	var final runs.Run
	err := e.cfg.Store.Update(func(tx *runs.Tx) error {
		err := tx.UpdateRun(rs.id, func(r *runs.Run) error {
			st, err := nextRunState(r.State, event)
			if err != nil {
				return err
			}
			r.State = st
			r.FinishedAt = time.Now()
			if runErr != nil {
				r.Error = runErr.Error()
			}
			final = *r
			return nil
		})
		if err != nil {
			return err
		}
		if _, err := tx.Append(rs.id, runs.Entry{At: e.clock.Now(), Op: runs.OpRunEnd, Status: runs.StatusEvent, Detail: string(final.State)}); err != nil {
			return err
		}
		if err := tx.AddTimings(e.cfg.Cluster, timingsOf(rs)); err != nil {
			return err
		}
		return tx.ReleaseLock(e.cfg.Cluster, rs.id)
	})
	if err != nil {
		return final, fmt.Errorf("finish run %s: %w", rs.id, err)
	}
	e.log.Info("run finished", "run_id", rs.id, "state", final.State, "error", final.Error)
	e.emit(Event{Kind: EventRunFinished, RunID: rs.id, State: string(final.State), Message: final.Error})
	return final, nil
}

// timingsOf extracts the measurements of a run for future estimates.
func timingsOf(rs *runState) []runs.Timing {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	var out []runs.Timing
	names := make([]string, 0, len(rs.nodes))
	for n := range rs.nodes {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		rec := rs.nodes[name]
		for _, ph := range rec.Phases {
			var kind string
			switch ph.Name {
			case NodeDraining:
				kind = "drain"
			case NodePatching:
				kind = "install"
			case NodeRebooting:
				kind = "reboot"
			default:
				continue
			}
			out = append(out, runs.Timing{Node: name, Kind: kind, Seconds: ph.Seconds, At: ph.Start})
		}
		for _, m := range rec.Migrations {
			if m.OK && m.Seconds > 0 {
				out = append(out, runs.Timing{Node: m.From, Kind: "migration", Seconds: m.Seconds, MiB: m.TransferredMiB, At: m.StartedAt})
			}
		}
	}
	return out
}

func (e *Engine) emit(ev Event) {
	if ev.Time.IsZero() {
		ev.Time = e.clock.Now()
	}
	e.cfg.Observer.Observe(ev)
}

// persist applies fn to a node's record and writes it, with optional journal
// entries, in one transaction; the in-memory copy changes only if the write succeeds.
func (e *Engine) persist(rs *runState, node string, fn func(*runs.NodeRecord), entries ...runs.Entry) ([]uint64, error) {
	var seqs []uint64
	var updated runs.NodeRecord
	err := e.cfg.Store.Update(func(tx *runs.Tx) error {
		for _, en := range entries {
			if en.At.IsZero() {
				en.At = e.clock.Now()
			}
			seq, err := tx.Append(rs.id, en)
			if err != nil {
				return err
			}
			seqs = append(seqs, seq)
		}
		return tx.UpdateNode(rs.id, node, func(r *runs.NodeRecord) error {
			if fn != nil {
				fn(r)
			}
			updated = *r
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("write state of node %s: %w", node, err)
	}
	rs.mu.Lock()
	rs.nodes[node] = updated
	rs.mu.Unlock()
	return seqs, nil
}

// journal writes entries without changing a node record.
func (e *Engine) journal(rs *runState, entries ...runs.Entry) ([]uint64, error) {
	var seqs []uint64
	err := e.cfg.Store.Update(func(tx *runs.Tx) error {
		for _, en := range entries {
			if en.At.IsZero() {
				en.At = e.clock.Now()
			}
			seq, err := tx.Append(rs.id, en)
			if err != nil {
				return err
			}
			seqs = append(seqs, seq)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("write journal: %w", err)
	}
	return seqs, nil
}

// transition moves a node to its next state, closing the phase it leaves and
// opening the next one, in one write.
func (e *Engine) transition(rs *runState, node, event string, fn func(*runs.NodeRecord)) error {
	cur := rs.node(node)
	next, err := nextNodeState(cur.State, event)
	if err != nil {
		return err
	}
	now := e.clock.Now()
	_, err = e.persist(rs, node, func(r *runs.NodeRecord) {
		if k := len(r.Phases); k > 0 && r.Phases[k-1].Name == r.State {
			// The start comes back from the state file without its monotonic
			// reading: a stepped wall clock can make the span negative, which
			// readers of timings take as "not measured".
			r.Phases[k-1].Seconds = max(0, now.Sub(r.Phases[k-1].Start).Seconds())
		}
		if r.State == NodeQueued && r.StartedAt.IsZero() && !NodeTerminal(next) {
			r.StartedAt = now
		}
		r.State = next
		if NodeTerminal(next) {
			r.FinishedAt = now
		} else {
			r.Phases = append(r.Phases, runs.Phase{Name: next, Start: now})
		}
		if fn != nil {
			fn(r)
		}
	}, runs.Entry{Op: runs.OpState, Status: runs.StatusEvent, Node: node, Detail: cur.State + " -> " + next})
	if err != nil {
		return err
	}
	e.log.Info("node state", "run_id", rs.id, "node", node, "from", cur.State, "to", next)
	e.emit(Event{Kind: EventNodeState, RunID: rs.id, Node: node, State: next, Message: rs.node(node).Failure})
	return nil
}

func toRunUpdates(us []cluster.Update) []runs.Update {
	out := make([]runs.Update, 0, len(us))
	for _, u := range us {
		out = append(out, runs.Update{Name: u.Name, Version: u.Version})
	}
	return out
}
