package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/droverhq/drover/cmd/drover/internal/limits"
	"github.com/droverhq/drover/orchestrator"
	"github.com/droverhq/drover/orchestrator/schedule"
	"github.com/droverhq/drover/runs"
)

// cluster is one cluster at run time: its engine, its live events, the run it
// executes (at most one) and its schedule's state.
type cluster struct {
	cfg   ClusterConfig
	eng   *orchestrator.Engine
	obs   *orchestrator.Observers
	store *runs.Store
	log   *slog.Logger

	mu sync.Mutex
	// active is the run this daemon executes now ("" none); starting is set while a
	// new run is being prepared, so two starts cannot race.
	active   string
	starting bool
	paused   bool
	next     time.Time
	// wake makes the schedule loop recompute its next due time (pause switch).
	wake chan struct{}
}

// ErrBusy: the cluster already has a run in progress in this daemon.
var ErrBusy = errors.New("cluster has a run in progress")

// BusyError says which run is in the way.
type BusyError struct {
	Cluster string
	RunID   string // "" while a run is being started
}

func (e *BusyError) Error() string {
	if e.RunID == "" {
		return fmt.Sprintf("cluster %s: a run is being started", e.Cluster)
	}
	return fmt.Sprintf("cluster %s has run %s in progress", e.Cluster, e.RunID)
}

func (e *BusyError) Unwrap() error { return ErrBusy }

func (s *Server) newCluster(cc ClusterConfig) (*cluster, error) {
	if cc.Driver == nil || cc.Updater == nil {
		return nil, fmt.Errorf("server: cluster %s: driver and updater must be open", cc.Name)
	}
	if cc.Schedule == nil {
		cc.Schedule = &schedule.Schedule{}
	}
	c := &cluster{
		cfg:    cc,
		obs:    &orchestrator.Observers{},
		store:  s.cfg.Store,
		log:    s.cfg.Logger.With("cluster", cc.Name),
		paused: cc.Paused,
		wake:   make(chan struct{}, 1),
	}
	// The switch set through the API outlives a restart: it wins over the config.
	if sw, ok, err := s.cfg.Store.ScheduleSwitch(cc.Name); err != nil {
		return nil, fmt.Errorf("server: cluster %s: %w", cc.Name, err)
	} else if ok {
		c.paused = sw.Paused
	}
	eng, err := orchestrator.New(orchestrator.Config{
		Cluster:   cc.Name,
		Driver:    cc.Driver,
		Updater:   cc.Updater,
		Store:     s.cfg.Store,
		Logger:    s.cfg.Logger,
		Observer:  c.obs,
		Owner:     s.cfg.Owner,
		Alive:     s.cfg.Alive,
		StartGate: c,
		// The state file keeps the gate's URL without its secrets; runs get it here.
		HealthGateURL: cc.Policy.HealthGate.URL,
	})
	if err != nil {
		return nil, fmt.Errorf("server: cluster %s: %w", cc.Name, err)
	}
	c.eng = eng
	c.obs.Add(s.metrics.observer(cc.Name, s.cfg.Store))
	c.obs.Add(s.notifier.observer(cc.Name))
	return c, nil
}

func (c *cluster) activeRun() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.active
}

// execute runs (or resumes) runID in the background; it refuses when another run of
// the cluster is executing here.
func (s *Server) execute(c *cluster, runID string) error {
	c.mu.Lock()
	if c.active != "" || c.starting {
		c.mu.Unlock()
		return &BusyError{Cluster: c.cfg.Name, RunID: c.active}
	}
	if s.runCtx.Err() != nil {
		c.mu.Unlock()
		return errors.New("the daemon is shutting down")
	}
	if err := s.stateOK(); err != nil {
		c.mu.Unlock()
		return err
	}
	c.active = runID
	c.mu.Unlock()
	if err := s.checkStoredPolicy(c, runID); err != nil {
		c.mu.Lock()
		c.active = ""
		c.mu.Unlock()
		return err
	}
	s.runs.Go(func() { s.executeActive(c, runID) })
	return nil
}

// executeActive executes the run marked active and clears the mark when it returns.
func (s *Server) executeActive(c *cluster, runID string) {
	s.scans.forget(c.cfg.Name)
	defer func() {
		c.mu.Lock()
		c.active = ""
		c.mu.Unlock()
		s.scans.forget(c.cfg.Name) // the run changed the cluster
	}()
	r, err := c.eng.Execute(s.runCtx, runID)
	switch {
	case errors.Is(err, orchestrator.ErrInterrupted):
		c.log.Info("run interrupted; it resumes at the next start", "run_id", runID)
	case err != nil && r.State == "":
		c.log.Error("run could not execute", "run_id", runID, "error", err)
	default:
		c.log.Info("run ended", "run_id", runID, "state", r.State, "error", r.Error)
	}
}

// ErrNothingToDo: a scheduled run would maintain no node (none has pending updates
// or all are left out); it is not started, so the history holds real runs only.
var ErrNothingToDo = errors.New("nothing to do: no node of the cluster needs maintenance")

// start prepares and starts a new run with policy p and executes it in the
// background. It refuses when the cluster has a run in progress or unfinished, and,
// when scheduled, when the run would do nothing.
func (s *Server) start(ctx context.Context, c *cluster, p orchestrator.Policy, why string, scheduled bool) (string, error) {
	c.mu.Lock()
	if c.active != "" || c.starting {
		c.mu.Unlock()
		return "", &BusyError{Cluster: c.cfg.Name, RunID: c.active}
	}
	c.starting = true
	c.mu.Unlock()
	started := false
	defer func() {
		if !started {
			c.mu.Lock()
			c.starting = false
			c.mu.Unlock()
		}
	}()
	if s.runCtx.Err() != nil {
		return "", errors.New("the daemon is shutting down")
	}
	if err := s.stateOK(); err != nil {
		return "", err
	}
	prep, err := c.eng.Prepare(ctx, p)
	if err != nil {
		return "", err
	}
	if scheduled && !anyQueued(prep) {
		return "", ErrNothingToDo
	}
	runID, err := c.eng.Start(ctx, prep)
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	c.starting, c.active = false, runID
	c.mu.Unlock()
	started = true
	c.log.Info("run started", "run_id", runID, "why", why)
	s.runs.Go(func() { s.executeActive(c, runID) })
	return runID, nil
}

// anyQueued reports whether a prepared run would maintain at least one node.
func anyQueued(prep orchestrator.Prepared) bool {
	for _, r := range prep.Records {
		if r.State == orchestrator.NodeQueued {
			return true
		}
	}
	return false
}

// decideDue is what a due time of the schedule does: start a run, or skip with a
// reason (paused, a run in progress, outside every maintenance window).
func decideDue(paused bool, active string, windowOpen bool) (start bool, reason string) {
	switch {
	case paused:
		return false, "the schedule is paused"
	case active != "":
		return false, "run " + active + " is in progress"
	case !windowOpen:
		return false, "outside the maintenance windows"
	}
	return true, ""
}

// scheduleLoop starts runs when they are due, until ctx is done or the daemon shuts
// down. Due times missed while the daemon was down are not caught up.
func (s *Server) scheduleLoop(ctx context.Context, c *cluster) {
	if !c.cfg.Schedule.Enabled() {
		c.log.Info("no schedule: runs start on demand")
		return
	}
	c.log.Info("schedule", "schedule", c.cfg.Schedule.String(), "paused", c.isPaused())
	for {
		next := c.cfg.Schedule.Next(time.Now())
		c.setNext(next)
		var fire <-chan time.Time
		var timer *time.Timer
		if !next.IsZero() {
			timer = time.NewTimer(time.Until(next))
			fire = timer.C
		} else {
			c.log.Warn("the schedule is never due again")
		}
		select {
		case <-ctx.Done():
			stopTimer(timer)
			return
		case <-s.closing:
			stopTimer(timer)
			return
		case <-c.wake:
			stopTimer(timer)
			continue
		case <-fire:
		}
		s.due(ctx, c, next)
	}
}

func stopTimer(t *time.Timer) {
	if t != nil {
		t.Stop()
	}
}

// due handles one due time of the schedule.
func (s *Server) due(ctx context.Context, c *cluster, at time.Time) {
	c.mu.Lock()
	active := c.active
	if c.starting {
		active = "(being started)"
	}
	paused := c.paused
	c.mu.Unlock()
	ok, reason := decideDue(paused, active, c.cfg.Windows.Contains(at))
	if !ok {
		c.log.Info("scheduled run skipped", "due", at, "reason", reason)
		return
	}
	runID, err := s.start(ctx, c, c.cfg.Policy, "scheduled at "+at.Format(time.RFC3339), true)
	if err != nil {
		c.log.Warn("scheduled run skipped", "due", at, "reason", err.Error())
		return
	}
	c.log.Info("scheduled run started", "run_id", runID, "due", at)
}

func (c *cluster) isPaused() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.paused
}

func (c *cluster) setNext(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.next = t
}

// nextRun is the next due time, zero when paused or never.
func (c *cluster) nextRun() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.paused {
		return time.Time{}
	}
	return c.next
}

// setPaused flips the pause switch and wakes the schedule loop.
func (c *cluster) setPaused(p bool) {
	c.mu.Lock()
	changed := c.paused != p
	c.paused = p
	c.mu.Unlock()
	if changed {
		c.log.Info("schedule pause switch", "paused", p)
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
}

// Hold implements orchestrator.StartGate with the cluster's maintenance windows: a
// node starts only when its predicted time (the run's plan, else measured medians,
// else defaults; converted to wall time by the cluster's clock) ends before the
// open window closes; otherwise it waits for the next window in which it fits.
func (c *cluster) Hold(_ context.Context, runID, node string) (time.Time, string, error) {
	if len(c.cfg.Windows) == 0 {
		return time.Time{}, "", nil
	}
	r, err := c.store.Run(runID)
	if err != nil {
		return time.Time{}, "", fmt.Errorf("read run %s: %w", runID, err)
	}
	timings, err := c.store.Timings(c.cfg.Name)
	if err != nil {
		return time.Time{}, "", fmt.Errorf("read timings of cluster %s: %w", c.cfg.Name, err)
	}
	pred := schedule.PredictNode(node, r.Plan, timings)
	wall := c.eng.Clock().WallDuration(pred.Duration)
	now := time.Now()
	until, reason := holdDecision(c.cfg.Windows, now, wall, pred.Source)
	if reason != "" && until.IsZero() {
		c.log.Warn("node starts although it does not fit any window", "run_id", runID, "node", node, "reason", reason)
	}
	return until, reason, nil
}

// holdDecision is the pure part of Hold: until when a node predicted to take d (wall
// time) waits at now, and why. A zero time with a reason means "start now, although".
func holdDecision(ws schedule.Windows, now time.Time, d time.Duration, source string) (time.Time, string) {
	slot := ws.Fit(now, d)
	switch {
	case slot.Never:
		// Fail closed: no window opens again; ask again tomorrow.
		return now.Add(24 * time.Hour), "no maintenance window opens again"
	case !slot.Fits && !slot.Start.After(now):
		return time.Time{}, fmt.Sprintf("predicted %s (%s) is longer than every maintenance window; starting while one is open", d.Round(time.Second), source)
	case !slot.Fits:
		return slot.Start, fmt.Sprintf("predicted %s (%s) is longer than every maintenance window; it starts when the next one opens", d.Round(time.Second), source)
	case slot.Start.After(now) && ws.Contains(now):
		return slot.Start, fmt.Sprintf("predicted %s (%s) would end after the window closes", d.Round(time.Second), source)
	case slot.Start.After(now):
		return slot.Start, "outside the maintenance windows"
	}
	return time.Time{}, ""
}

// checkStoredPolicy refuses to execute a run whose stored hook or health-gate
// commands are not the config's, unless serve --accept-stored-policy: the run
// executes what the state file says.
func (s *Server) checkStoredPolicy(c *cluster, runID string) error {
	if s.cfg.AcceptStoredPolicy {
		return nil
	}
	r, err := s.cfg.Store.Run(runID)
	if err != nil {
		return err
	}
	return limits.CheckStoredPolicy(r, c.cfg.Policy)
}
