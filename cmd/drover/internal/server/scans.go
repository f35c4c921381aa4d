package server

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	domain "github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/drivers"
	"github.com/droverhq/drover/orchestrator"
	"github.com/droverhq/drover/runs"
)

// scanCache keeps the answers of viewers' plan, preview and analyze requests for a
// while: each one scans every node (with apt: an SSH session and an update of the
// package lists per node), and a dashboard polling them must not turn into a scan
// storm. One scan runs at a time per cluster and kind; requests in between wait
// for it and share its answer.
type scanCache struct {
	ttl time.Duration
	mu  sync.Mutex
	m   map[string]*scanEntry
}

type scanEntry struct {
	mu  sync.Mutex // held while the scan runs
	at  time.Time
	val any
	err error
}

func newScanCache(ttl time.Duration) *scanCache {
	return &scanCache{ttl: ttl, m: map[string]*scanEntry{}}
}

// get returns the cached answer of cluster's kind when it is fresh, else computes
// it. Errors are not kept.
func (sc *scanCache) get(cluster, kind string, compute func() (any, error)) (any, error) {
	if sc.ttl < 0 {
		return compute()
	}
	key := cluster + "\x00" + kind
	sc.mu.Lock()
	e := sc.m[key]
	if e == nil {
		e = &scanEntry{}
		sc.m[key] = e
	}
	sc.mu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.at.IsZero() && time.Since(e.at) < sc.ttl && e.err == nil {
		return e.val, nil
	}
	val, err := compute()
	e.val, e.err = val, err
	if err == nil {
		e.at = time.Now()
	} else {
		e.at = time.Time{}
	}
	return val, err
}

// forget drops a cluster's answers: a run started or ended, so the cluster changed.
func (sc *scanCache) forget(cluster string) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	for k, e := range sc.m {
		if len(k) > len(cluster) && k[:len(cluster)] == cluster && k[len(cluster)] == 0 {
			e.mu.Lock()
			e.at = time.Time{}
			e.mu.Unlock()
		}
	}
}

// errNoInstallInPreview: a preview's updater never installs.
var errNoInstallInPreview = errors.New("a preview installs nothing")

// runAwareUpdater is the updater a viewer's scan uses: a node that the cluster's
// unfinished run has in maintenance (pausing, draining, patching, rebooting, ...)
// is not scanned (a scan could fight the run's own install, e.g. apt's lock); its
// pending updates come from the run's record instead.
type runAwareUpdater struct {
	drivers.Updater
	store *runs.Store
	eng   interface {
		Unfinished() (runs.Run, bool, error)
	}
}

func (u runAwareUpdater) Scan(ctx context.Context, node string) ([]domain.Update, error) {
	if r, ok, err := u.eng.Unfinished(); err == nil && ok {
		var rec runs.NodeRecord
		verr := u.store.View(func(tx *runs.Tx) error {
			var err error
			rec, err = tx.Node(r.ID, node)
			return err
		})
		if verr == nil && rec.State != orchestrator.NodeQueued && !orchestrator.NodeTerminal(rec.State) {
			out := make([]domain.Update, 0, len(rec.Pending))
			for _, p := range rec.Pending {
				out = append(out, domain.Update{Name: p.Name, Version: p.Version})
			}
			return out, nil
		}
	}
	return u.Updater.Scan(ctx, node)
}

func (u runAwareUpdater) Install(context.Context, string) (drivers.InstallResult, error) {
	return drivers.InstallResult{}, errNoInstallInPreview
}

// viewUpdater is the updater of c for viewers' scans.
func (s *Server) viewUpdater(c *cluster) drivers.Updater {
	return runAwareUpdater{Updater: c.cfg.Updater, store: s.cfg.Store, eng: c.eng}
}

// scanned answers a viewer's request of kind from the cache or a new scan.
func scanned[T any](s *Server, c *cluster, kind string, compute func() (T, error)) (T, error) {
	v, err := s.scans.get(c.cfg.Name, kind, func() (any, error) { return compute() })
	if err != nil {
		var zero T
		return zero, err
	}
	out, ok := v.(T)
	if !ok {
		var zero T
		return zero, fmt.Errorf("scan cache: %s holds %T", kind, v)
	}
	return out, nil
}

// planRun plans a run of c for a viewer (preview, plan), cached, without scanning
// the nodes a run has in maintenance.
func (s *Server) planRun(ctx context.Context, c *cluster, timings []runs.Timing) (orchestrator.Prepared, error) {
	return scanned(s, c, "plan", func() (orchestrator.Prepared, error) {
		return orchestrator.PlanRun(ctx, c.cfg.Driver, s.viewUpdater(c), c.cfg.Policy, timings)
	})
}
