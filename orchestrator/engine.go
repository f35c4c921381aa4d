package orchestrator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
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
	// HealthGateURL is the config's policy.health_gate.url in full: the state file
	// stores it with its secrets masked (secrets.go), and a run gets it back from here.
	HealthGateURL string
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

// Start records a new run and takes the cluster's run lock. It refuses when the
// cluster has an unfinished run.
func (e *Engine) Start(ctx context.Context, prep Prepared) (string, error) {
	// A run prepared for viewing (PlanRun, as `drover apply` plans before it opens
	// the state file) has not been checked for other runs' pauses yet.
	if err := e.refuseForeignPauses(prep); err != nil {
		return "", err
	}
	opts, err := json.Marshal(storedPolicy(prep.Policy))
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
		// Both clocks: wall time to show when, the cluster's for durations.
		ClusterStartedAt: e.clock.Now(),
		Order:            prep.Order,
		Options:          opts,
		Plan:             plan,
		Owner:            e.cfg.Owner,
	}
	var unfinished *UnfinishedRunError
	err = e.cfg.Store.Update(func(tx *runs.Tx) error {
		// The check and the lock in one transaction: no other process of this
		// state file can start a run in between.
		rs, err := tx.Runs(e.cfg.Cluster)
		if err != nil {
			return err
		}
		for _, r := range rs {
			if !r.State.Terminal() {
				unfinished = &UnfinishedRunError{Run: r, Live: e.cfg.Alive(r.Owner) == runs.Alive}
				return unfinished
			}
		}
		if _, err := tx.AcquireLock(runs.Lock{Cluster: e.cfg.Cluster, RunID: run.ID, Owner: e.cfg.Owner, Acquired: now}, e.cfg.Alive, e.cfg.ForceRecovery); err != nil {
			return err
		}
		if err := tx.CreateRun(run, prep.Records); err != nil {
			return err
		}
		_, err = tx.Append(run.ID, runs.Entry{At: e.clock.Now(), Op: runs.OpRunStart, Status: runs.StatusEvent, Detail: fmt.Sprintf("order %v", prep.Order)})
		return err
	})
	if unfinished != nil {
		return "", unfinished
	}
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
		if r, err := e.cfg.Store.Run(runID); err == nil && r.State.Terminal() {
			return // nothing to stop, and nothing to remember
		}
		ch = make(chan struct{})
		e.stops[runID] = ch
	}
	select {
	case <-ch:
	default:
		close(ch)
	}
}

func (e *Engine) forgetStop(runID string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.stops, runID)
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
	// machines hold each node's state and transition table (fsm.go).
	machines map[string]*nodeMachine

	// pol holds the run policies' own state (plan, deadlines, stop reason).
	pol policyState
}

func (rs *runState) node(name string) runs.NodeRecord {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.nodes[name]
}

func (rs *runState) machine(name string) *nodeMachine {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	m, ok := rs.machines[name]
	if !ok {
		m = newNodeMachine(rs.nodes[name].State)
		rs.machines[name] = m
	}
	return m
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
	// The stop switch lives as long as the run executes here.
	defer e.forgetStop(runID)
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
	if err := e.skipUntouched(rs, runErr); err != nil {
		log.Warn("cannot mark the nodes the run did not start as skipped", "error", err)
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
	p = e.withSecrets(p)
	rs := &runState{
		id:       runID,
		policy:   p,
		order:    run.Order,
		stop:     e.stopChan(runID),
		limiter:  newLimiter(p.DrainOptions(), e.linkHistory()),
		nodes:    map[string]runs.NodeRecord{},
		machines: map[string]*nodeMachine{},
	}
	for _, n := range nodes {
		rs.nodes[n.Name] = n
		rs.machines[n.Name] = newNodeMachine(n.State)
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
	budget := policies.NewFailureBudget(rs.policy.MaxFailedNodes, len(rs.order))
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
	if err := budget.Exceeded(failed); err != nil {
		return evRunFail, err
	}
	switch {
	case failed > 0:
		return evRunPartial, fmt.Errorf("%d of %d nodes failed", failed, len(rs.order))
	}
	return evRunSucceed, nil
}

// startNodes starts the nodes in order, each when it may (see loop). It returns a
// run event when the run ends early; the nodes in progress then still finish.
func (e *Engine) startNodes(ctx context.Context, rs *runState, w *nodeWorkers, budget policies.FailureBudget) (string, error) {
	overBudget := func() (string, error) {
		if err := budget.Exceeded(rs.countFailed()); err != nil {
			return evRunFail, err
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
			r.ClusterFinishedAt = e.clock.Now()
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
				out = append(out, runs.Timing{Node: m.From, To: m.To, Streams: m.Streams, Kind: "migration", Seconds: m.Seconds, MiB: m.TransferredMiB, At: m.StartedAt})
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

func toRunUpdates(us []cluster.Update) []runs.Update {
	out := make([]runs.Update, 0, len(us))
	for _, u := range us {
		out = append(out, runs.Update{Name: u.Name, Version: u.Version})
	}
	return out
}
