package proxmox

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/droverhq/drover/drivers"
)

// PauseNode puts node in HA maintenance (`ha-manager crm-command node-maintenance
// enable NODE` over SSH: PVE has no REST endpoint for it), waits until the node's LRM
// reports maintenance, then until HA has moved every HA-managed running guest off the
// node, logging each move. The guests HA does not manage are left to Drover's drain.
// owner's mark is written first (marks.go): a node in maintenance under another
// owner's mark is refused with drivers.ErrPausedByOther.
func (d *Driver) PauseNode(ctx context.Context, node, owner string) error {
	if _, ok := d.cfg.Nodes[node]; !ok {
		return fmt.Errorf("pause node %q: %w (configured nodes: %s)", node, drivers.ErrNotFound, strings.Join(d.nodeNames(), ", "))
	}
	ctx, cancel := context.WithTimeout(ctx, d.cfg.MaintenanceTimeout)
	defer cancel()
	lrm, services, err := d.haStatus(ctx)
	if err != nil {
		return fmt.Errorf("pause node %s: %w", node, err)
	}
	requested, err := d.maintenanceRequests(ctx)
	if err != nil {
		return fmt.Errorf("pause node %s: %w", node, err)
	}
	if err := d.claimMark(ctx, node, owner, lrm[node] == "maintenance mode" || requested[node]); err != nil {
		return err
	}
	if lrm[node] != "maintenance mode" {
		if _, err := d.sshRun(ctx, node, "ha-manager", "crm-command", "node-maintenance", "enable", node); err != nil {
			return fmt.Errorf("pause node %s: ha-manager crm-command node-maintenance enable: %w", node, err)
		}
	}
	if len(services) == 0 {
		// With no HA resource the CRM stays idle and never confirms; nothing of HA's
		// can be placed on the node anyway.
		d.log.Warn("no HA resources: maintenance requested, not confirmed by HA", "node", node)
		return nil
	}
	if err := d.poll(ctx, func(ctx context.Context) (bool, error) {
		lrm, _, err := d.haStatus(ctx)
		return err == nil && lrm[node] == "maintenance mode", nil
	}); err != nil {
		return fmt.Errorf("pause node %s: the LRM did not report maintenance within cluster.proxmox.maintenance_timeout (%s): %w", node, d.cfg.MaintenanceTimeout, err)
	}
	d.log.Info("node in HA maintenance", "node", node)
	return d.waitHAEvacuated(ctx, node)
}

// waitHAEvacuated waits until no HA-managed running guest is left on node and logs
// where HA put each one.
func (d *Driver) waitHAEvacuated(ctx context.Context, node string) error {
	started := map[int]string{}
	var left []string
	err := d.poll(ctx, func(ctx context.Context) (bool, error) {
		gs, err := d.guests(ctx)
		if err != nil {
			return false, nil
		}
		left = left[:0]
		for id, g := range gs {
			if g.HAState == "" {
				continue
			}
			if g.Node == node && g.Status == "running" {
				started[id] = node
				left = append(left, strconv.Itoa(id))
				continue
			}
			if from, ok := started[id]; ok && g.Node != from {
				d.log.Info("HA moved guest", "vm", id, "name", g.Name, "from", from, "to", g.Node)
				delete(started, id)
			}
		}
		return len(left) == 0, nil
	})
	if err != nil {
		sort.Strings(left)
		return fmt.Errorf("pause node %s: HA did not move %s off the node within cluster.proxmox.maintenance_timeout (%s; check that other nodes are online and out of maintenance): %w", node, strings.Join(left, ", "), d.cfg.MaintenanceTimeout, err)
	}
	return nil
}

// ResumeNode disables HA maintenance, then removes the node's pause mark; HA moves its
// guests back itself. Ceph noout is
// cleared here too when every node is back (a run that ends early must not leave it).
func (d *Driver) ResumeNode(ctx context.Context, node string) error {
	if _, ok := d.cfg.Nodes[node]; !ok {
		return fmt.Errorf("resume node %q: %w", node, drivers.ErrNotFound)
	}
	lrm, _, err := d.haStatus(ctx)
	if err != nil {
		return fmt.Errorf("resume node %s: %w", node, err)
	}
	// The request is sent even when the LRM does not report maintenance: a request
	// the CRM has not acted on yet must be withdrawn too.
	if _, err := d.sshRun(ctx, node, "ha-manager", "crm-command", "node-maintenance", "disable", node); err != nil {
		return fmt.Errorf("resume node %s: ha-manager crm-command node-maintenance disable: %w", node, err)
	}
	if lrm[node] == "maintenance mode" {
		// Confirmed like the pause: once the LRM has left maintenance, HA may place
		// guests on the node again.
		wctx, cancel := context.WithTimeout(ctx, d.cfg.MaintenanceTimeout)
		err := d.poll(wctx, func(ctx context.Context) (bool, error) {
			lrm, _, err := d.haStatus(ctx)
			return err == nil && lrm[node] != "maintenance mode", nil
		})
		cancel()
		if err != nil {
			return fmt.Errorf("resume node %s: the LRM still reports maintenance after cluster.proxmox.maintenance_timeout (%s): %w", node, d.cfg.MaintenanceTimeout, err)
		}
		d.log.Info("HA maintenance disabled", "node", node)
	}
	// The mark goes only after maintenance is off: until then it names the owner.
	if err := d.releaseMark(ctx, node); err != nil {
		return err
	}
	if err := d.clearNoout(ctx, node); err != nil {
		d.log.Warn("ceph noout not cleared yet", "node", node, "error", err)
	}
	return nil
}

// poll calls cond every poll_interval until it is true, returns an error, or ctx ends.
func (d *Driver) poll(ctx context.Context, cond func(context.Context) (bool, error)) error {
	t := time.NewTicker(d.cfg.PollInterval)
	defer t.Stop()
	for {
		ok, err := cond(ctx)
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
