package vsphere

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/droverhq/drover/drivers"
)

const relocateTaskPrefix = "VirtualMachine.relocate"

// Migrate vMotions one VM with RelocateVM_Task (host and the VM's resource pool).
// A relocation of the VM already in flight on vCenter (started by an earlier Drover
// process) is waited for first, then the VM's host is read again.
func (d *Driver) Migrate(ctx context.Context, req drivers.MigrateRequest, progress func(drivers.MigrationProgress)) (drivers.MigrationResult, error) {
	return d.flights.Do(ctx, req, func() (drivers.MigrationResult, error) {
		return d.migrate(ctx, req, progress)
	})
}

// vmHere is a VM with where it runs.
type vmHere struct {
	vm   mo.VirtualMachine
	host string // host name
}

func (d *Driver) findVM(ctx context.Context, name string) (vmHere, map[string]types.ManagedObjectReference, error) {
	ctx, cancel := d.callCtx(ctx)
	defer cancel()
	vms, err := d.allVMs(ctx, []string{"name", "runtime", "resourcePool", "recentTask", "config.hardware.memoryMB"})
	if err != nil {
		return vmHere{}, nil, err
	}
	var cl mo.ClusterComputeResource
	if err := d.pc().RetrieveOne(ctx, d.cluster.Reference(), []string{"host"}, &cl); err != nil {
		return vmHere{}, nil, unavailable("read cluster", err)
	}
	var hosts []mo.HostSystem
	if len(cl.Host) > 0 {
		if err := d.pc().Retrieve(ctx, cl.Host, []string{"name"}, &hosts); err != nil {
			return vmHere{}, nil, unavailable("read hosts", err)
		}
	}
	byName := map[string]types.ManagedObjectReference{}
	byRef := map[string]string{}
	for _, h := range hosts {
		byName[h.Name] = h.Self
		byRef[h.Self.Value] = h.Name
	}
	for _, vm := range vms {
		if vm.Name == name && vm.Runtime.Host != nil {
			if h, ok := byRef[vm.Runtime.Host.Value]; ok {
				return vmHere{vm: vm, host: h}, byName, nil
			}
		}
	}
	return vmHere{}, byName, fmt.Errorf("vm %q: %w in cluster %s", name, drivers.ErrNotFound, d.cfg.Cluster)
}

func (d *Driver) migrate(ctx context.Context, req drivers.MigrateRequest, progress func(drivers.MigrationProgress)) (drivers.MigrationResult, error) {
	where, hosts, err := d.findVM(ctx, req.VM)
	if err != nil {
		return drivers.MigrationResult{}, fmt.Errorf("migrate: %w", err)
	}
	target, ok := hosts[req.To]
	if !ok {
		return drivers.MigrationResult{}, fmt.Errorf("migrate %s: target host %q: %w", req.VM, req.To, drivers.ErrNotFound)
	}
	// A relocation left in flight by an earlier process: wait for it, then look again.
	if running, err := d.runningTask(ctx, where.vm.RecentTask, relocateTaskPrefix); err != nil {
		return drivers.MigrationResult{}, fmt.Errorf("migrate %s: %w", req.VM, err)
	} else if running != nil {
		d.log.Info("joining a relocation already in flight", "vm", req.VM)
		_, _ = d.waitTask(ctx, *running, nil)
		if ctx.Err() != nil {
			return drivers.MigrationResult{}, ctx.Err()
		}
		if where, _, err = d.findVM(ctx, req.VM); err != nil {
			return drivers.MigrationResult{}, fmt.Errorf("migrate: %w", err)
		}
		// The process that started it is gone: its mark is ours to clear.
		if key, err := d.fieldKey(ctx, migrateField, "VirtualMachine", false); err == nil && key != noField {
			if err := d.setField(ctx, where.vm.Self, key, ""); err != nil {
				d.log.Warn("clear the relocation mark", "vm", req.VM, "error", err)
			}
		}
	}
	if where.host == req.To {
		return drivers.MigrationResult{AlreadyThere: true}, nil
	}
	// Note the target on the VM before the relocation starts: a Drover restarted after
	// a crash finds the relocation in flight and where it goes.
	key, err := d.fieldKey(ctx, migrateField, "VirtualMachine", true)
	if err != nil {
		return drivers.MigrationResult{}, fmt.Errorf("migrate %s: %w", req.VM, err)
	}
	if err := d.setField(ctx, where.vm.Self, key, req.To); err != nil {
		return drivers.MigrationResult{}, fmt.Errorf("migrate %s: %w", req.VM, err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.cfg.CallTimeout)
		defer cancel()
		if err := d.setField(cctx, where.vm.Self, key, ""); err != nil {
			d.log.Warn("clear the relocation mark", "vm", req.VM, "error", err)
		}
	}()
	spec := types.VirtualMachineRelocateSpec{Host: &target, Pool: where.vm.ResourcePool}
	vm := object.NewVirtualMachine(d.c, where.vm.Self)
	mctx, cancel := context.WithTimeout(ctx, d.cfg.MigrationTimeout)
	defer cancel()
	task, err := vm.Relocate(mctx, spec, types.VirtualMachineMovePriorityHighPriority)
	if err != nil {
		return drivers.MigrationResult{}, relocateError(req, err)
	}
	memMiB := 0.0
	if where.vm.Config != nil {
		memMiB = float64(where.vm.Config.Hardware.MemoryMB)
	}
	started := time.Now()
	info, err := d.waitTask(mctx, task.Reference(), func(ti types.TaskInfo) {
		if progress == nil {
			return
		}
		p := drivers.MigrationProgress{VM: req.VM, From: where.host, To: req.To, Phase: "precopy", Elapsed: time.Since(started)}
		if ti.Progress > 0 && memMiB > 0 {
			p.TransferredMiB = memMiB * float64(ti.Progress) / 100
			p.RemainingMiB = memMiB - p.TransferredMiB
		}
		progress(p)
	})
	if mctx.Err() != nil {
		return drivers.MigrationResult{}, d.abort(ctx, req, task, where.host)
	}
	if err != nil {
		return drivers.MigrationResult{}, relocateError(req, err)
	}
	// Trust where the VM is, not the task alone.
	now, _, err := d.findVM(ctx, req.VM)
	if err != nil {
		return drivers.MigrationResult{}, fmt.Errorf("migrate %s: read it back: %w", req.VM, err)
	}
	if now.host != req.To {
		return drivers.MigrationResult{}, fmt.Errorf("migrate %s: the task succeeded but the vm is on %s: %w", req.VM, now.host, drivers.ErrMigrationFailed)
	}
	res := drivers.MigrationResult{Duration: time.Since(started)}
	if info.StartTime != nil && info.CompleteTime != nil {
		res.Duration = info.CompleteTime.Sub(*info.StartTime)
	}
	return res, nil
}

// abort cancels a relocation whose context ended (cancel is best effort on vCenter)
// and reads where the VM is.
func (d *Driver) abort(ctx context.Context, req drivers.MigrateRequest, task *object.Task, from string) error {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.cfg.CallTimeout)
	defer cancel()
	if err := task.Cancel(cctx); err != nil && !isFault[*types.InvalidState](err) {
		d.log.Warn("cancel relocation failed", "vm", req.VM, "error", err)
	}
	info, _ := d.waitTask(cctx, task.Reference(), nil)
	where, _, err := d.findVM(cctx, req.VM)
	cause := ctx.Err()
	if cause == nil {
		cause = fmt.Errorf("cluster.vsphere.migration_timeout (%s) passed: %w", d.cfg.MigrationTimeout, drivers.ErrNotConverged)
	}
	switch {
	case err != nil:
		return fmt.Errorf("migrate %s: cancelled (%w); where it is now is unknown: %v", req.VM, cause, err)
	case where.host == req.To:
		return fmt.Errorf("migrate %s: cancelled too late, it moved to %s (task %s): %w", req.VM, where.host, info.State, cause)
	}
	return fmt.Errorf("migrate %s: cancelled, it stays on %s: %w", req.VM, where.host, cause)
}

// relocateError sorts vCenter's refusals (the request cannot succeed as given) from
// failures of the vMotion itself.
func relocateError(req drivers.MigrateRequest, err error) error {
	f := methodFault(err)
	kind := drivers.ErrMigrationFailed
	switch f.(type) {
	case types.BaseInsufficientResourcesFault, types.BaseInvalidState, *types.HostNotConnected, types.BaseMigrationFault,
		*types.TaskInProgress, types.BaseVmConfigFault, *types.NoPermission, *types.InvalidArgument:
		kind = drivers.ErrRejected
	}
	if f == nil {
		// No answer from vCenter: where the VM is is unknown, not "failed on its source".
		if errors.Is(err, drivers.ErrUnavailable) {
			return fmt.Errorf("migrate %s %s -> %s: %w", req.VM, req.From, req.To, err)
		}
		return fmt.Errorf("migrate %s %s -> %s: %w: %v", req.VM, req.From, req.To, drivers.ErrUnavailable, err)
	}
	msg := err.Error()
	if f != nil && !strings.Contains(msg, typeName(f)) {
		msg = typeName(f) + ": " + msg
	}
	return fmt.Errorf("migrate %s %s -> %s: %w: %s", req.VM, req.From, req.To, kind, msg)
}

func typeName(v any) string { return strings.TrimPrefix(fmt.Sprintf("%T", v), "*types.") }
