package proxmox

import (
	"context"
	"errors"
	"fmt"

	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/drivers"
	"github.com/droverhq/drover/drivers/proxmox/pvemark"
	"github.com/droverhq/drover/drivers/updaters"
)

// Pause marks. HA maintenance carries no owner, and PVE's places that could (node
// notes, datacenter notes) need Sys.Modify, which also allows network, DNS and time
// changes. Drover already logs in to the nodes as root to set maintenance, so it keeps
// the mark next to HA's own state: a file per node in the cluster filesystem
// (pvemark.Dir, /etc/pve), written with the same SSH session that sets maintenance.
// pmxcfs replicates it to every node (it can be read while the marked node reboots),
// it survives reboots, and it is read-only without quorum, like HA's state.
//
// A mark counts only while its node is in maintenance: a mark left by a crash between
// disabling maintenance and removing it names nobody, and the next pause replaces it.

// readMarks reads every node's mark over SSH from the first node of up that answers;
// when none does it returns the marks read last (nil before the first read).
func (d *Driver) readMarks(ctx context.Context, up []string) (map[string]string, error) {
	var errs []error
	for _, node := range up {
		out, err := d.sshRun(ctx, node, pvemark.Get()...)
		if err == nil {
			var marks map[string]string
			if marks, err = pvemark.ParseGet(out.Stdout); err == nil {
				d.mu.Lock()
				d.marks = marks
				d.mu.Unlock()
				return marks, nil
			}
		}
		errs = append(errs, fmt.Errorf("node %s: %w", node, err))
	}
	d.mu.Lock()
	last := d.marks
	d.mu.Unlock()
	return last, fmt.Errorf("read pause marks (%s): %w", pvemark.Dir, errors.Join(errs...))
}

// fillMarks sets PausedBy on the paused nodes of inv.
func (d *Driver) fillMarks(ctx context.Context, inv *cluster.Inventory) {
	var up []string
	paused := false
	for _, n := range inv.Nodes {
		paused = paused || n.Paused
		if n.Ready() {
			up = append(up, n.Name)
		}
	}
	if !paused {
		return
	}
	marks, err := d.readMarks(ctx, up)
	if err != nil {
		d.log.Warn("pause marks not read; using the last ones read", "error", err)
	}
	for i := range inv.Nodes {
		if inv.Nodes[i].Paused {
			inv.Nodes[i].PausedBy = marks[inv.Nodes[i].Name]
		}
	}
}

// claimMark marks node as paused by owner before maintenance is requested: a node in
// maintenance under another owner's mark is refused with drivers.ErrPausedByOther; a
// mark of a node not in maintenance is stale and replaced. Of two claims at once only
// one wins (the script creates the file exclusively).
func (d *Driver) claimMark(ctx context.Context, node, owner string, inMaintenance bool) error {
	if owner == "" {
		return nil
	}
	if !pvemark.ValidMark(owner) {
		return fmt.Errorf("pause node %s: owner mark %q: want printable characters without spaces", node, owner)
	}
	marks, err := d.readMarks(ctx, []string{node})
	if err != nil {
		return fmt.Errorf("pause node %s: %w", node, err)
	}
	cur := marks[node]
	switch {
	case cur == owner:
		return nil
	case cur != "" && inMaintenance:
		return fmt.Errorf("pause node %s: %w: %s", node, drivers.ErrPausedByOther, cur)
	}
	out, err := d.sshRun(ctx, node, pvemark.Claim(node, owner, cur)...)
	if code, ok := updaters.ExitCode(err); ok && code == 3 {
		held := pvemark.Held(out.Stdout)
		if held == owner {
			return nil
		}
		return fmt.Errorf("pause node %s: %w: %s (claimed at the same time)", node, drivers.ErrPausedByOther, held)
	}
	if err != nil {
		return fmt.Errorf("pause node %s: write the pause mark in %s (the cluster filesystem is read-only without quorum): %w", node, pvemark.Dir, err)
	}
	d.log.Info("pause mark set", "node", node, "mark", owner)
	return nil
}

// releaseMark removes node's mark once maintenance is off.
func (d *Driver) releaseMark(ctx context.Context, node string) error {
	if _, err := d.sshRun(ctx, node, pvemark.Release(node)...); err != nil {
		return fmt.Errorf("resume node %s: remove the pause mark in %s: %w", node, pvemark.Dir, err)
	}
	return nil
}
