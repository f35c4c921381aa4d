package vsphere

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/property"
	"github.com/vmware/govmomi/session"
	"github.com/vmware/govmomi/view"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/drivers"
)

// Driver is the vSphere driver. It is safe for concurrent use.
type Driver struct {
	cfg     Config
	c       *vim25.Client
	sm      *session.Manager
	dc      *object.Datacenter
	cluster *object.ClusterComputeResource
	log     *slog.Logger

	// flights are the relocations this driver runs, by VM name: a second Migrate of
	// the same VM to the same target joins the first.
	flights drivers.Flights
	// drsMu serialises holding and releasing DRS.
	drsMu sync.Mutex
}

var (
	_ drivers.Driver = (*Driver)(nil)
	_ drivers.Config = (*Config)(nil)
)

func newDriver(cfg Config, c *vim25.Client, sm *session.Manager, dc *object.Datacenter, cl *object.ClusterComputeResource, log *slog.Logger) *Driver {
	return &Driver{cfg: cfg, c: c, sm: sm, dc: dc, cluster: cl, log: log}
}

// Client is the driver's vCenter connection (the esxcli updater reuses it).
func (d *Driver) Client() *vim25.Client { return d.c }

// Capabilities: hosts report a boot time (BootID), the pause mark lives in a custom
// attribute on the host, VMs can be shut down and started (guest shutdown through
// VMware Tools). vCenter can drain a host itself (maintenance mode with DRS), but
// Drover places VMs itself: no NativeDrain.
func (d *Driver) Capabilities() drivers.Capabilities {
	return drivers.Capabilities{BootID: true, PauseOwner: true, PowerControl: true}
}

// Close logs out.
func (d *Driver) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = d.sm.Logout(ctx)
	return nil
}

func (d *Driver) pc() *property.Collector { return property.DefaultCollector(d.c) }

func (d *Driver) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, d.cfg.CallTimeout)
}

// unavailable wraps an API failure; faults vCenter answered stay as they are.
func unavailable(what string, err error) error {
	if err == nil {
		return nil
	}
	if methodFault(err) != nil || errors.Is(err, context.Canceled) {
		return fmt.Errorf("%s: %w", what, err)
	}
	return fmt.Errorf("%s: %w: %v", what, drivers.ErrUnavailable, err)
}

// Inventory reads the cluster's hosts and the VMs that run on them.
func (d *Driver) Inventory(ctx context.Context) (cluster.Inventory, error) {
	s, err := d.snapshot(ctx)
	if err != nil {
		return cluster.Inventory{}, err
	}
	return mapInventory(s), nil
}

func (d *Driver) snapshot(ctx context.Context) (snapshot, error) {
	ctx, cancel := d.callCtx(ctx)
	defer cancel()
	s := snapshot{datastores: map[string]mo.Datastore{}, networks: map[string]string{}}
	pc := d.pc()
	if err := pc.RetrieveOne(ctx, d.cluster.Reference(), []string{"name", "host", "summary", "configurationEx", "resourcePool", "network"}, &s.cluster); err != nil {
		return s, unavailable("read cluster", err)
	}
	if len(s.cluster.Host) > 0 {
		if err := pc.Retrieve(ctx, s.cluster.Host, []string{"name", "summary", "customValue", "network"}, &s.hosts); err != nil {
			return s, unavailable("read hosts", err)
		}
	}
	inCluster := map[string]bool{}
	for _, h := range s.hosts {
		inCluster[h.Self.Value] = true
	}
	vms, err := d.allVMs(ctx, []string{"name", "config.hardware", "config.template", "runtime", "network", "datastore", "customValue", "recentTask"})
	if err != nil {
		return s, err
	}
	dsRefs := map[types.ManagedObjectReference]bool{}
	netRefs := map[types.ManagedObjectReference]bool{}
	for _, vm := range vms {
		if vm.Runtime.Host == nil || !inCluster[vm.Runtime.Host.Value] {
			continue
		}
		s.vms = append(s.vms, vm)
		for _, ref := range vm.Datastore {
			dsRefs[ref] = true
		}
		for _, ref := range vm.Network {
			netRefs[ref] = true
		}
	}
	for _, h := range s.hosts {
		for _, ref := range h.Network {
			netRefs[ref] = true
		}
	}
	if len(dsRefs) > 0 {
		var dss []mo.Datastore
		if err := pc.Retrieve(ctx, keys(dsRefs), []string{"name", "host"}, &dss); err != nil {
			return s, unavailable("read datastores", err)
		}
		for _, ds := range dss {
			s.datastores[ds.Self.Value] = ds
		}
	}
	if len(netRefs) > 0 {
		var ocs []types.ObjectContent
		if err := pc.Retrieve(ctx, keys(netRefs), []string{"name"}, &ocs); err != nil {
			return s, unavailable("read networks", err)
		}
		for _, oc := range ocs {
			for _, p := range oc.PropSet {
				if name, ok := p.Val.(string); ok && p.Name == "name" {
					s.networks[oc.Obj.Value] = name
				}
			}
		}
	}
	key, err := d.fieldKey(ctx, pauseField, "HostSystem", false)
	if err != nil {
		return s, err
	}
	s.pauseKey = key
	if s.migrating, err = d.relocationsInFlight(ctx, s.vms); err != nil {
		return s, err
	}
	return s, nil
}

func keys(m map[types.ManagedObjectReference]bool) []types.ManagedObjectReference {
	out := make([]types.ManagedObjectReference, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Value < out[j].Value })
	return out
}

// allVMs reads every VM of the datacenter (placement comes from runtime.host).
func (d *Driver) allVMs(ctx context.Context, props []string) ([]mo.VirtualMachine, error) {
	folders, err := d.dc.Folders(ctx)
	if err != nil {
		return nil, unavailable("read datacenter folders", err)
	}
	v, err := view.NewManager(d.c).CreateContainerView(ctx, folders.VmFolder.Reference(), []string{"VirtualMachine"}, true)
	if err != nil {
		return nil, unavailable("list VMs", err)
	}
	defer func() { _ = v.Destroy(context.WithoutCancel(ctx)) }()
	var vms []mo.VirtualMachine
	if err := v.Retrieve(ctx, []string{"VirtualMachine"}, props, &vms); err != nil {
		return nil, unavailable("read VMs", err)
	}
	return vms, nil
}

// host finds a cluster host by name.
func (d *Driver) host(ctx context.Context, name string) (mo.HostSystem, error) {
	ctx, cancel := d.callCtx(ctx)
	defer cancel()
	var cl mo.ClusterComputeResource
	if err := d.pc().RetrieveOne(ctx, d.cluster.Reference(), []string{"host"}, &cl); err != nil {
		return mo.HostSystem{}, unavailable("read cluster", err)
	}
	var hosts []mo.HostSystem
	if len(cl.Host) > 0 {
		if err := d.pc().Retrieve(ctx, cl.Host, []string{"name", "summary", "customValue", "recentTask"}, &hosts); err != nil {
			return mo.HostSystem{}, unavailable("read hosts", err)
		}
	}
	var all []string
	for _, h := range hosts {
		if h.Name == name {
			return h, nil
		}
		all = append(all, h.Name)
	}
	sort.Strings(all)
	return mo.HostSystem{}, fmt.Errorf("host %q: %w (hosts of cluster %s: %s)", name, drivers.ErrNotFound, d.cfg.Cluster, strings.Join(all, ", "))
}

func runtimeOf(h mo.HostSystem) types.HostRuntimeInfo {
	if h.Summary.Runtime != nil {
		return *h.Summary.Runtime
	}
	return h.Runtime
}

// fieldKey returns the key of a custom attribute, defining it when create is set; noField
// when it is not defined (vCenter numbers keys from 0 in vcsim, so 0 is a key).
func (d *Driver) fieldKey(ctx context.Context, name, moType string, create bool) (int32, error) {
	m, err := object.GetCustomFieldsManager(d.c)
	if err != nil {
		return 0, fmt.Errorf("custom attributes: %w", err)
	}
	key, err := m.FindKey(ctx, name)
	if err == nil {
		return key, nil
	}
	if !errors.Is(err, object.ErrKeyNameNotFound) {
		return 0, unavailable("read custom attributes", err)
	}
	if !create {
		return noField, nil
	}
	def, err := m.Add(ctx, name, moType, nil, nil)
	if err != nil {
		if isFault[*types.DuplicateName](err) {
			return m.FindKey(ctx, name)
		}
		return 0, unavailable("define custom attribute "+name+" (the role needs Global.ManageCustomFields)", err)
	}
	return def.Key, nil
}

func (d *Driver) setField(ctx context.Context, ref types.ManagedObjectReference, key int32, value string) error {
	m, err := object.GetCustomFieldsManager(d.c)
	if err != nil {
		return err
	}
	if err := m.Set(ctx, ref, key, value); err != nil {
		return unavailable("set custom attribute (the role needs Global.SetCustomField)", err)
	}
	return nil
}

// taskFault is a task's error.
type taskFault struct {
	fault types.BaseMethodFault
	msg   string
}

func (e *taskFault) Error() string {
	name := strings.TrimPrefix(fmt.Sprintf("%T", e.fault), "*types.")
	if e.msg != "" && e.msg != name {
		return name + ": " + e.msg
	}
	return name
}

func (e *taskFault) Fault() types.BaseMethodFault { return e.fault }

// waitTask polls a task until it ends (the calling goroutine reports progress);
// on ctx's end it returns ctx's error and the last info read.
func (d *Driver) waitTask(ctx context.Context, ref types.ManagedObjectReference, progress func(types.TaskInfo)) (types.TaskInfo, error) {
	tick := time.NewTicker(d.cfg.PollInterval)
	defer tick.Stop()
	var last types.TaskInfo
	for {
		var t mo.Task
		err := d.pc().RetrieveOne(ctx, ref, []string{"info"}, &t)
		switch {
		case ctx.Err() != nil:
			return last, ctx.Err()
		case err != nil:
			return last, unavailable("read task", err)
		}
		last = t.Info
		switch last.State {
		case types.TaskInfoStateSuccess:
			return last, nil
		case types.TaskInfoStateError:
			if last.Error == nil {
				return last, &taskFault{fault: &types.SystemError{}, msg: "task failed without a fault"}
			}
			return last, &taskFault{fault: last.Error.Fault, msg: last.Error.LocalizedMessage}
		}
		if progress != nil {
			progress(last)
		}
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-tick.C:
		}
	}
}

// runningTask finds a queued or running task among refs whose descriptionId starts
// with prefix.
func (d *Driver) runningTask(ctx context.Context, refs []types.ManagedObjectReference, prefix string) (*types.ManagedObjectReference, error) {
	if len(refs) == 0 {
		return nil, nil
	}
	var tasks []mo.Task
	if err := d.pc().Retrieve(ctx, refs, []string{"info"}, &tasks); err != nil {
		if isFault[*types.ManagedObjectNotFound](err) {
			return nil, nil // a task vanished meanwhile: vCenter keeps recent tasks briefly
		}
		return nil, unavailable("read recent tasks", err)
	}
	for _, t := range tasks {
		if strings.HasPrefix(t.Info.DescriptionId, prefix) && (t.Info.State == types.TaskInfoStateRunning || t.Info.State == types.TaskInfoStateQueued) && !t.Info.Cancelled {
			ref := t.Self
			return &ref, nil
		}
	}
	return nil, nil
}

// relocationsInFlight finds the VMs Drover marked as moving whose relocation task
// still runs, with their target.
func (d *Driver) relocationsInFlight(ctx context.Context, vms []mo.VirtualMachine) (map[string]string, error) {
	out := map[string]string{}
	key, err := d.fieldKey(ctx, migrateField, "VirtualMachine", false)
	if err != nil || key == noField {
		return out, err
	}
	for _, vm := range vms {
		to := fieldValue(vm.CustomValue, key)
		if to == "" {
			continue
		}
		running, err := d.runningTask(ctx, vm.RecentTask, relocateTaskPrefix)
		if err != nil {
			return nil, err
		}
		if running != nil {
			out[vm.Self.Value] = to
		}
	}
	return out, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
