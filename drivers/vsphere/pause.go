package vsphere

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/droverhq/drover/drivers"
)

const enterTaskPrefix = "HostSystem.enterMaintenanceMode"

// PauseNode marks the host with owner, holds DRS at manual (once, for the cluster)
// and starts EnterMaintenanceMode_Task without waiting: from then on vCenter places
// nothing on the host, and the task completes once Drover's own vMotions have
// emptied it. The mark and the saved DRS level are written before the action they
// record, so that a crash in between is repaired by repeating the call.
func (d *Driver) PauseNode(ctx context.Context, node, owner string) error {
	h, err := d.host(ctx, node)
	if err != nil {
		return fmt.Errorf("pause node: %w", err)
	}
	ctx, cancel := d.callCtx(ctx)
	defer cancel()
	key, err := d.fieldKey(ctx, pauseField, "HostSystem", true)
	if err != nil {
		return fmt.Errorf("pause node %s: %w", node, err)
	}
	mark := fieldValue(h.CustomValue, key)
	if mark != "" && owner != "" && mark != owner {
		return fmt.Errorf("pause node %s: %w: %s", node, drivers.ErrPausedByOther, mark)
	}
	if rt := runtimeOf(h); rt.ConnectionState != types.HostSystemConnectionStateConnected {
		return fmt.Errorf("pause node %s: host is %s: %w", node, rt.ConnectionState, drivers.ErrRejected)
	}
	if d.cfg.HoldDRS {
		if err := d.holdDRS(ctx); err != nil {
			return fmt.Errorf("pause node %s: %w", node, err)
		}
	}
	if owner != "" && mark != owner {
		if err := d.setField(ctx, h.Self, key, owner); err != nil {
			return fmt.Errorf("pause node %s: %w", node, err)
		}
	}
	if err := d.enterMaintenance(ctx, h); err != nil {
		return fmt.Errorf("pause node %s: %w", node, err)
	}
	d.log.Info("node paused: entering maintenance mode", "node", node)
	return nil
}

// enterMaintenance starts EnterMaintenanceMode_Task unless the host is in
// maintenance or a task is already taking it there.
func (d *Driver) enterMaintenance(ctx context.Context, h mo.HostSystem) error {
	if runtimeOf(h).InMaintenanceMode {
		return nil
	}
	running, err := d.runningTask(ctx, h.RecentTask, enterTaskPrefix)
	if err != nil || running != nil {
		return err
	}
	_, err = object.NewHostSystem(d.c, h.Self).EnterMaintenanceMode(ctx, 0, false, nil)
	return unavailable("start EnterMaintenanceMode_Task", err)
}

// ResumeNode ends maintenance mode (or cancels the way there), clears the mark and,
// when no host carries Drover's mark any more, gives DRS its level back.
func (d *Driver) ResumeNode(ctx context.Context, node string) error {
	h, err := d.host(ctx, node)
	if err != nil {
		return fmt.Errorf("resume node: %w", err)
	}
	ctx, cancel := d.callCtx(ctx)
	defer cancel()
	if running, err := d.runningTask(ctx, h.RecentTask, enterTaskPrefix); err != nil {
		return fmt.Errorf("resume node %s: %w", node, err)
	} else if running != nil {
		if err := object.NewTask(d.c, *running).Cancel(ctx); err != nil && !isFault[*types.InvalidState](err) {
			return unavailable("resume node "+node+": cancel EnterMaintenanceMode_Task", err)
		}
	}
	if runtimeOf(h).InMaintenanceMode {
		task, err := object.NewHostSystem(d.c, h.Self).ExitMaintenanceMode(ctx, 0)
		if err != nil {
			return unavailable("resume node "+node+": ExitMaintenanceMode_Task", err)
		}
		if _, err := d.waitTask(ctx, task.Reference(), nil); err != nil {
			return fmt.Errorf("resume node %s: exit maintenance mode: %w", node, err)
		}
	}
	key, err := d.fieldKey(ctx, pauseField, "HostSystem", false)
	if err != nil {
		return fmt.Errorf("resume node %s: %w", node, err)
	}
	if key != noField && fieldValue(h.CustomValue, key) != "" {
		if err := d.setField(ctx, h.Self, key, ""); err != nil {
			return fmt.Errorf("resume node %s: %w", node, err)
		}
	}
	if d.cfg.HoldDRS {
		if err := d.releaseDRS(ctx); err != nil {
			return fmt.Errorf("resume node %s: %w", node, err)
		}
	}
	d.log.Info("node resumed: out of maintenance mode", "node", node)
	return nil
}

// drsConfig reads the cluster's DRS settings and the level Drover saved.
func (d *Driver) drsConfig(ctx context.Context) (types.ClusterDrsConfigInfo, string, int32, error) {
	var cl mo.ClusterComputeResource
	if err := d.pc().RetrieveOne(ctx, d.cluster.Reference(), []string{"configurationEx", "customValue"}, &cl); err != nil {
		return types.ClusterDrsConfigInfo{}, "", 0, unavailable("read cluster DRS settings", err)
	}
	key, err := d.fieldKey(ctx, drsField, "ClusterComputeResource", true)
	if err != nil {
		return types.ClusterDrsConfigInfo{}, "", 0, err
	}
	var drs types.ClusterDrsConfigInfo
	if ex, ok := cl.ConfigurationEx.(*types.ClusterConfigInfoEx); ok {
		drs = ex.DrsConfig
	}
	return drs, fieldValue(cl.CustomValue, key), key, nil
}

func (d *Driver) setDRSBehavior(ctx context.Context, b types.DrsBehavior) error {
	spec := &types.ClusterConfigSpecEx{DrsConfig: &types.ClusterDrsConfigInfo{DefaultVmBehavior: b}}
	task, err := d.cluster.Reconfigure(ctx, spec, true)
	if err != nil {
		return unavailable("set DRS automation to "+string(b)+" (the role needs Host.Inventory.EditCluster)", err)
	}
	if _, err := d.waitTask(ctx, task.Reference(), nil); err != nil {
		return fmt.Errorf("set DRS automation to %s: %w", b, err)
	}
	return nil
}

// holdDRS sets DRS to manual while Drover works, so that DRS neither moves VMs
// back onto a host Drover is emptying nor fights Drover's placement; the level it
// had is saved on the cluster first.
func (d *Driver) holdDRS(ctx context.Context) error {
	d.drsMu.Lock()
	defer d.drsMu.Unlock()
	drs, saved, key, err := d.drsConfig(ctx)
	if err != nil {
		return err
	}
	enabled := drs.Enabled != nil && *drs.Enabled
	if !enabled || drs.DefaultVmBehavior == types.DrsBehaviorManual || drs.DefaultVmBehavior == "" {
		return nil
	}
	if saved == "" {
		if err := d.setField(ctx, d.cluster.Reference(), key, string(drs.DefaultVmBehavior)); err != nil {
			return err
		}
	}
	if err := d.setDRSBehavior(ctx, types.DrsBehaviorManual); err != nil {
		return err
	}
	d.log.Info("DRS held at manual while drover works", "cluster", d.cfg.Cluster, "was", string(drs.DefaultVmBehavior))
	return nil
}

// releaseDRS restores the saved DRS level once no host carries Drover's mark.
func (d *Driver) releaseDRS(ctx context.Context) error {
	d.drsMu.Lock()
	defer d.drsMu.Unlock()
	_, saved, key, err := d.drsConfig(ctx)
	if err != nil || saved == "" {
		return err
	}
	s, err := d.snapshot(ctx)
	if err != nil {
		return err
	}
	for _, h := range s.hosts {
		if fieldValue(h.CustomValue, s.pauseKey) != "" {
			return nil // another host is still Drover's
		}
	}
	if err := d.setDRSBehavior(ctx, types.DrsBehavior(saved)); err != nil {
		return err
	}
	if err := d.setField(ctx, d.cluster.Reference(), key, ""); err != nil {
		return err
	}
	d.log.Info("DRS automation restored", "cluster", d.cfg.Cluster, "level", saved)
	return nil
}

// RebootNode waits (up to maintenance_timeout) for the host to reach maintenance
// mode, then starts RebootHost_Task and returns once vCenter accepted it.
func (d *Driver) RebootNode(ctx context.Context, node string) error {
	h, err := d.host(ctx, node)
	if err != nil {
		return fmt.Errorf("reboot node: %w", err)
	}
	if rt := runtimeOf(h); rt.ConnectionState != types.HostSystemConnectionStateConnected {
		return fmt.Errorf("reboot node %s: host is %s: %w", node, rt.ConnectionState, drivers.ErrRejected)
	}
	if !runtimeOf(h).InMaintenanceMode {
		if h, err = d.awaitMaintenance(ctx, h); err != nil {
			return fmt.Errorf("reboot node %s: %w", node, err)
		}
	}
	ctx, cancel := d.callCtx(ctx)
	defer cancel()
	res, err := methods.RebootHost_Task(ctx, d.c, &types.RebootHost_Task{This: h.Self, Force: false})
	if err != nil {
		return unavailable("reboot node "+node+": RebootHost_Task (the role needs Host.Config.Maintenance)", err)
	}
	if _, err := d.waitTask(ctx, res.Returnval, nil); err != nil {
		return fmt.Errorf("reboot node %s: %w", node, err)
	}
	d.log.Info("node rebooting", "node", node)
	return nil
}

// awaitMaintenance makes sure a task takes the host to maintenance mode and polls
// until it is there.
func (d *Driver) awaitMaintenance(ctx context.Context, h mo.HostSystem) (mo.HostSystem, error) {
	if err := d.enterMaintenance(ctx, h); err != nil {
		return h, err
	}
	deadline := time.Now().Add(d.cfg.MaintenanceTimeout)
	tick := time.NewTicker(d.cfg.PollInterval)
	defer tick.Stop()
	for {
		var err error
		if h, err = d.host(ctx, h.Name); err != nil {
			return h, err
		}
		if runtimeOf(h).InMaintenanceMode {
			return h, nil
		}
		if time.Now().After(deadline) {
			inv, _ := d.Inventory(ctx)
			var on []string
			for _, vm := range inv.VMsOn(h.Name) {
				if vm.Running() {
					on = append(on, vm.Name)
				}
			}
			return h, fmt.Errorf("host did not reach maintenance mode within cluster.vsphere.maintenance_timeout (%s); powered on there: %s: %w",
				d.cfg.MaintenanceTimeout, strings.Join(on, ", "), drivers.ErrRejected)
		}
		select {
		case <-ctx.Done():
			return h, ctx.Err()
		case <-tick.C:
		}
	}
}

// NodeReady: connected to vCenter and powered on. The caller compares boot IDs to
// tell a host that came back from one that has not gone down yet.
func (d *Driver) NodeReady(ctx context.Context, node string) (bool, error) {
	h, err := d.host(ctx, node)
	if err != nil {
		return false, err
	}
	rt := runtimeOf(h)
	return rt.ConnectionState == types.HostSystemConnectionStateConnected && rt.PowerState != types.HostSystemPowerStateStandBy && rt.PowerState != types.HostSystemPowerStatePoweredOff, nil
}
