package proxmox

import (
	"context"
	"fmt"
	"net/url"

	"github.com/droverhq/drover/drivers"
)

// ShutdownVM shuts a guest down cleanly (qemu or lxc) and waits until it is stopped.
// With policy non_migratable: shutdown this is how an LXC container leaves a node
// that reboots; StartVM starts it again afterwards.
func (d *Driver) ShutdownVM(ctx context.Context, vm string) error {
	return d.power(ctx, vm, "shutdown", "stopped")
}

// StartVM starts a stopped guest and waits until it runs.
func (d *Driver) StartVM(ctx context.Context, vm string) error {
	return d.power(ctx, vm, "start", "running")
}

func (d *Driver) power(ctx context.Context, vm, action, want string) error {
	id, err := vmid(vm)
	if err != nil {
		return err
	}
	gs, err := d.guests(ctx)
	if err != nil {
		return err
	}
	g, ok := gs[id]
	if !ok {
		return fmt.Errorf("%s %s: %w", action, vm, drivers.ErrNotFound)
	}
	if g.Status == want {
		return nil
	}
	var upid string
	if err := d.api.post(ctx, fmt.Sprintf("/nodes/%s/%s/%d/status/%s", url.PathEscape(g.Node), g.Type, id, action), map[string]any{}, &upid); err != nil {
		return fmt.Errorf("%s %s: %w", action, vm, err)
	}
	if _, err := ParseUPID(upid); err != nil {
		return fmt.Errorf("%s %s: the API answered %w", action, vm, err)
	}
	return d.poll(ctx, func(ctx context.Context) (bool, error) {
		gs, err := d.guests(ctx)
		return err == nil && gs[id].Status == want, nil
	})
}
