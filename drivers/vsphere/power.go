package vsphere

import (
	"context"
	"fmt"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/droverhq/drover/drivers"
)

var _ drivers.PowerController = (*Driver)(nil)

// ShutdownVM shuts the guest down through VMware Tools (never a hard power-off) and
// waits until the VM is off.
func (d *Driver) ShutdownVM(ctx context.Context, name string) error {
	where, _, err := d.findVM(ctx, name)
	if err != nil {
		return fmt.Errorf("shut down: %w", err)
	}
	if where.vm.Runtime.PowerState == types.VirtualMachinePowerStatePoweredOff {
		return nil
	}
	if err := object.NewVirtualMachine(d.c, where.vm.Self).ShutdownGuest(ctx); err != nil {
		if isFault[*types.ToolsUnavailable](err) {
			return fmt.Errorf("shut down %s: VMware Tools do not run in the guest; drover does not power VMs off hard: %w", name, drivers.ErrRejected)
		}
		return unavailable("shut down "+name, err)
	}
	return d.awaitPower(ctx, where.vm.Self, types.VirtualMachinePowerStatePoweredOff)
}

// StartVM powers the VM on (vCenter places it when its host is in maintenance) and
// waits until it runs.
func (d *Driver) StartVM(ctx context.Context, name string) error {
	where, _, err := d.findVM(ctx, name)
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	if where.vm.Runtime.PowerState == types.VirtualMachinePowerStatePoweredOn {
		return nil
	}
	task, err := object.NewVirtualMachine(d.c, where.vm.Self).PowerOn(ctx)
	if err != nil {
		return unavailable("start "+name, err)
	}
	if _, err := d.waitTask(ctx, task.Reference(), nil); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	return d.awaitPower(ctx, where.vm.Self, types.VirtualMachinePowerStatePoweredOn)
}

func (d *Driver) awaitPower(ctx context.Context, ref types.ManagedObjectReference, want types.VirtualMachinePowerState) error {
	for {
		var vm mo.VirtualMachine
		if err := d.pc().RetrieveOne(ctx, ref, []string{"runtime.powerState"}, &vm); err != nil {
			return unavailable("read power state", err)
		}
		if vm.Runtime.PowerState == want {
			return nil
		}
		if err := sleepCtx(ctx, d.cfg.PollInterval); err != nil {
			return err
		}
	}
}
