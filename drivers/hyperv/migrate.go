package hyperv

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/droverhq/drover/drivers"
	"github.com/droverhq/drover/drivers/hyperv/scripts"
)

// migStatus is migstatus.ps1's answer.
type migStatus struct {
	Owner string `json:"owner"`
	State string `json:"state"`
	Job   *struct {
		State   string `json:"state"`
		Percent int    `json:"percent"`
		Target  string `json:"target"`
		Error   string `json:"error"`
	} `json:"job"`
}

func (s migStatus) running() bool {
	return s.Job != nil && (s.Job.State == "New" || s.Job.State == "Starting" || s.Job.State == "Running")
}

func (d *Driver) setSlots(n int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.slots == nil && n > 0 {
		d.slots = make(chan struct{}, n)
	}
}

// acquire takes one of the cluster's parallel migration slots.
func (d *Driver) acquire(ctx context.Context) (func(), error) {
	d.mu.Lock()
	s := d.slots
	d.mu.Unlock()
	if s == nil {
		var c clusterData
		if err := d.clusterCall(ctx, scripts.Cluster, nil, &c); err != nil {
			return nil, err
		}
		d.setSlots(snapshot{cluster: c}.maxParallel())
		d.mu.Lock()
		s = d.slots
		d.mu.Unlock()
	}
	select {
	case s <- struct{}{}:
		return func() { <-s }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Migrate live-migrates one VM role with Move-ClusterVirtualMachineRole -Wait 0, run
// locally on the VM's owner node, and polls it there until the role is online on the
// target. Cancelling ctx cancels the move on the cluster (-Cancel): ending the remote
// command alone would leave the move running.
func (d *Driver) Migrate(ctx context.Context, req drivers.MigrateRequest, progress func(drivers.MigrationProgress)) (drivers.MigrationResult, error) {
	return d.flights.Do(ctx, req, func() (drivers.MigrationResult, error) {
		return d.migrate(ctx, req, progress)
	})
}

func (d *Driver) migrate(ctx context.Context, req drivers.MigrateRequest, progress func(drivers.MigrationProgress)) (drivers.MigrationResult, error) {
	log := d.log.With("vm", req.VM, "to", req.To)
	// Ask the node the caller thinks the VM is on; any node can say where it is.
	src := req.From
	st, srcAddr, err := d.status(ctx, src, req.VM)
	if err != nil {
		return drivers.MigrationResult{}, fmt.Errorf("migrate %s: %w", req.VM, err)
	}
	if strings.EqualFold(st.Owner, req.To) && !st.running() {
		return drivers.MigrationResult{AlreadyThere: true}, nil
	}
	if !strings.EqualFold(st.Owner, src) {
		src = st.Owner
		if st, srcAddr, err = d.status(ctx, src, req.VM); err != nil {
			return drivers.MigrationResult{}, fmt.Errorf("migrate %s: %w", req.VM, err)
		}
	}
	release, err := d.acquire(ctx)
	if err != nil {
		return drivers.MigrationResult{}, fmt.Errorf("migrate %s: %w", req.VM, err)
	}
	defer release()
	start := time.Now()
	joined := st.running() && strings.EqualFold(st.Job.Target, req.To)
	if !joined {
		if st.running() {
			return drivers.MigrationResult{}, fmt.Errorf("migrate %s to %s: %w: a migration to %s is in flight", req.VM, req.To, drivers.ErrRejected, st.Job.Target)
		}
		if err := d.call(ctx, srcAddr, scripts.Migrate, map[string]string{"vm": req.VM, "node": req.To}, nil); err != nil {
			if ctx.Err() != nil {
				// Cancelled while the start was on the wire: the move may have
				// started on the cluster all the same.
				d.cancel(srcAddr, req.VM)
			}
			return drivers.MigrationResult{}, fmt.Errorf("migrate %s from %s to %s: %w", req.VM, src, req.To, err)
		}
		log.Info("live migration started", "from", src)
	} else {
		log.Info("joined live migration in flight", "from", src)
	}
	deadline := time.NewTimer(d.cfg.MigrationTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(d.cfg.PollInterval)
	defer tick.Stop()
	failures := 0
	for {
		select {
		case <-ctx.Done():
			d.cancel(srcAddr, req.VM)
			return drivers.MigrationResult{}, fmt.Errorf("migrate %s: %w", req.VM, ctx.Err())
		case <-deadline.C:
			d.cancel(srcAddr, req.VM)
			return drivers.MigrationResult{}, fmt.Errorf("migrate %s: not finished after cluster.hyperv.migration_timeout (%s), cancelled: %w", req.VM, d.cfg.MigrationTimeout, drivers.ErrNotConverged)
		case <-tick.C:
		}
		var s migStatus
		if err := d.call(ctx, srcAddr, scripts.MigStatus, map[string]string{"vm": req.VM}, &s); err != nil {
			// A node answering slowly is no reason to give the move up.
			if failures++; failures < 5 || ctx.Err() != nil {
				log.Warn("migration status unavailable", "error", err)
				continue
			}
			return drivers.MigrationResult{}, fmt.Errorf("migrate %s: %w", req.VM, err)
		}
		failures = 0
		if strings.EqualFold(s.Owner, req.To) && s.State == "Online" && !s.running() {
			return drivers.MigrationResult{Duration: time.Since(start)}, nil
		}
		if s.Job != nil && !s.running() && !strings.EqualFold(s.Owner, req.To) {
			return drivers.MigrationResult{}, fmt.Errorf("migrate %s to %s: job %s: %s: %w", req.VM, req.To, s.Job.State, s.Job.Error, drivers.ErrMigrationFailed)
		}
		if s.Job == nil && !strings.EqualFold(s.Owner, req.To) && time.Since(start) > 3*d.cfg.PollInterval {
			return drivers.MigrationResult{}, fmt.Errorf("migrate %s to %s: no migration job and the role is on %s: %w", req.VM, req.To, s.Owner, drivers.ErrMigrationFailed)
		}
		if progress != nil && s.Job != nil {
			d.mu.Lock()
			mem := float64(d.memMiB[req.VM])
			d.mu.Unlock()
			pct := float64(min(max(s.Job.Percent, 0), 100))
			progress(drivers.MigrationProgress{VM: req.VM, From: src, To: req.To, Phase: "precopy", Round: 1,
				TransferredMiB: mem * pct / 100, RemainingMiB: mem * (100 - pct) / 100, Elapsed: time.Since(start)})
		}
	}
}

// status reads where vm is, asking node's host (or any node when node is unknown).
func (d *Driver) status(ctx context.Context, node, vm string) (migStatus, string, error) {
	var s migStatus
	addr, err := d.addrOf(ctx, node)
	if err == nil {
		if err = d.call(ctx, addr, scripts.MigStatus, map[string]string{"vm": vm}, &s); err == nil {
			return s, addr, nil
		}
	}
	if !errors.Is(err, drivers.ErrNotFound) && !isTransport(err) {
		return s, "", err
	}
	if err := d.clusterCall(ctx, scripts.MigStatus, map[string]string{"vm": vm}, &s); err != nil {
		return s, "", err
	}
	if s.Owner != "" && !strings.EqualFold(s.Owner, node) {
		if a, aerr := d.addrOf(ctx, s.Owner); aerr == nil {
			return s, a, nil
		}
	}
	return s, addr, nil
}

// cancel asks the cluster to cancel the move, with a context of its own: the caller's
// is done already.
func (d *Driver) cancel(addr, vm string) {
	ctx, cancel := context.WithTimeout(context.Background(), d.cfg.CommandTimeout)
	defer cancel()
	if err := d.call(ctx, addr, scripts.Cancel, map[string]string{"vm": vm}, nil); err != nil {
		d.log.Warn("cancel of live migration failed", "vm", vm, "error", err)
		return
	}
	d.log.Info("live migration cancelled", "vm", vm)
}

// DrainNode is the cluster's own drain (drain: cluster): Suspend-ClusterNode -Drain,
// then DrainStatus polled until Completed.
func (d *Driver) DrainNode(ctx context.Context, node string, progress func(drivers.MigrationProgress)) error {
	if err := d.clusterCall(ctx, scripts.Drain, map[string]string{"node": node, "owner": ""}, nil); err != nil {
		return fmt.Errorf("drain node %s: %w", node, err)
	}
	start := time.Now()
	tick := time.NewTicker(d.cfg.PollInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("drain node %s: %w (the cluster's drain goes on; Resume-ClusterNode stops it)", node, ctx.Err())
		case <-tick.C:
		}
		var c clusterData
		if err := d.clusterCall(ctx, scripts.Cluster, nil, &c); err != nil {
			d.log.Warn("drain status unavailable", "node", node, "error", err)
			continue
		}
		for _, n := range c.Nodes {
			if !strings.EqualFold(n.Name, node) {
				continue
			}
			switch n.DrainStatus {
			case "Completed":
				return nil
			case "Failed":
				return fmt.Errorf("drain node %s: the cluster's drain failed (Get-ClusterNode %s | fl DrainStatus; see the cluster log): %w", node, node, drivers.ErrMigrationFailed)
			}
		}
		if progress != nil {
			left := 0
			for _, g := range c.Groups {
				if strings.EqualFold(g.Owner, node) {
					left++
				}
			}
			progress(drivers.MigrationProgress{From: node, Phase: "precopy", RemainingMiB: float64(left), Elapsed: time.Since(start)})
		}
	}
}
