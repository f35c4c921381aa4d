package vcsimstrict

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/vmware/govmomi"
	esxcli "github.com/vmware/govmomi/cli/esx"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/property"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

type lab struct {
	sim   *Sim
	c     *govmomi.Client
	hosts []*object.HostSystem
	names map[string]string // host moid -> name
}

func startLab(t *testing.T, opts Options) *lab {
	t.Helper()
	sim, err := Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	u := *sim.URL
	u.User = url.UserPassword(sim.Options().Username, sim.Options().Password)
	ctx := context.Background()
	c, err := govmomi.NewClient(ctx, &u, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Logout(context.Background()) })
	l := &lab{sim: sim, c: c, names: map[string]string{}}
	for _, h := range sim.hostObjs() {
		l.hosts = append(l.hosts, object.NewHostSystem(c.Client, h.Self))
		l.names[h.Self.Value] = h.Name
	}
	return l
}

func (l *lab) vmsOn(t *testing.T, host *object.HostSystem) []*object.VirtualMachine {
	t.Helper()
	var out []*object.VirtualMachine
	for _, v := range l.sim.vmObjs() {
		var vm mo.VirtualMachine
		if err := property.DefaultCollector(l.c.Client).RetrieveOne(context.Background(), v.Self, []string{"runtime"}, &vm); err != nil {
			t.Fatal(err)
		}
		if vm.Runtime.Host.Value == host.Reference().Value && vm.Runtime.PowerState == types.VirtualMachinePowerStatePoweredOn {
			out = append(out, object.NewVirtualMachine(l.c.Client, v.Self))
		}
	}
	return out
}

func (l *lab) host(t *testing.T, h *object.HostSystem) mo.HostSystem {
	t.Helper()
	var out mo.HostSystem
	if err := property.DefaultCollector(l.c.Client).RetrieveOne(context.Background(), h.Reference(), []string{"runtime", "config.product"}, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func relocate(t *testing.T, vm *object.VirtualMachine, to *object.HostSystem) error {
	t.Helper()
	task, err := vm.Relocate(context.Background(), types.VirtualMachineRelocateSpec{Host: types.NewReference(to.Reference())}, types.VirtualMachineMovePriorityDefaultPriority)
	if err != nil {
		t.Fatal(err)
	}
	return task.Wait(context.Background())
}

func faultOf(err error) types.BaseMethodFault {
	var te taskError
	if errors.As(err, &te) {
		return te.Fault()
	}
	return nil
}

type taskError interface{ Fault() types.BaseMethodFault }

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestArrangement(t *testing.T) {
	l := startLab(t, Options{RelocateDuration: 50 * time.Millisecond})
	if len(l.hosts) != 4 {
		t.Fatalf("%d hosts, want 4", len(l.hosts))
	}
	total := 0
	for _, h := range l.hosts {
		n := len(l.vmsOn(t, h))
		if n != 4 {
			t.Errorf("host %s runs %d VMs, want 4", l.names[h.Reference().Value], n)
		}
		total += n
	}
	if total != 16 {
		t.Errorf("%d VMs powered on, want 16", total)
	}
}

func TestMaintenanceWaitsAndRefusesPlacements(t *testing.T) {
	l := startLab(t, Options{RelocateDuration: 50 * time.Millisecond})
	ctx := context.Background()
	h0, h1 := l.hosts[0], l.hosts[1]
	enter, err := h0.EnterMaintenanceMode(ctx, 0, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A host entering maintenance takes no VM.
	incoming := l.vmsOn(t, h1)[0]
	err = relocate(t, incoming, h0)
	if _, ok := faultOf(err).(*types.InvalidHostState); !ok {
		t.Fatalf("relocation onto a host entering maintenance: %v, want InvalidHostState", err)
	}
	// The task waits while VMs run there.
	time.Sleep(100 * time.Millisecond)
	if l.host(t, h0).Runtime.InMaintenanceMode {
		t.Fatal("host entered maintenance with powered-on VMs on it")
	}
	for i, vm := range l.vmsOn(t, h0) {
		if err := relocate(t, vm, l.hosts[1+i%3]); err != nil {
			t.Fatalf("drain: %v", err)
		}
	}
	if err := enter.Wait(ctx); err != nil {
		t.Fatalf("enter maintenance: %v", err)
	}
	if !l.host(t, h0).Runtime.InMaintenanceMode {
		t.Fatal("host not in maintenance after it emptied")
	}
	// A host in maintenance takes no VM either.
	err = relocate(t, l.vmsOn(t, h1)[0], h0)
	if _, ok := faultOf(err).(*types.InvalidHostState); !ok {
		t.Fatalf("relocation onto a host in maintenance: %v, want InvalidHostState", err)
	}
	st := l.sim.Stats()
	if len(st.Refused) != 2 || len(st.DrainSeconds[l.names[h0.Reference().Value]]) != 1 {
		t.Errorf("stats: %+v", st)
	}
	if st.Relocations[l.sim.vmObjs()[0].Name] > 1 {
		t.Errorf("relocations: %v", st.Relocations)
	}
}

func TestRelocationWithoutMemoryIsRefused(t *testing.T) {
	l := startLab(t, Options{RelocateDuration: 20 * time.Millisecond, VMMemoryMiB: 1024})
	// Each host: 4 GiB, 4 VMs of 1 GiB: full.
	err := relocate(t, l.vmsOn(t, l.hosts[0])[0], l.hosts[1])
	if _, ok := faultOf(err).(*types.InsufficientMemoryResourcesFault); !ok {
		t.Fatalf("relocation onto a full host: %v, want InsufficientMemoryResourcesFault", err)
	}
}

func TestRelocationTakesTimeAndCancels(t *testing.T) {
	l := startLab(t, Options{RelocateDuration: 10 * time.Second})
	ctx := context.Background()
	vm := l.vmsOn(t, l.hosts[0])[0]
	task, err := vm.Relocate(ctx, types.VirtualMachineRelocateSpec{Host: types.NewReference(l.hosts[1].Reference())}, types.VirtualMachineMovePriorityDefaultPriority)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "one relocation in flight", 30*time.Second, func() bool { return l.sim.Stats().MaxInFlightTotal == 1 })
	if err := task.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
	err = task.Wait(ctx)
	if _, ok := faultOf(err).(*types.RequestCanceled); !ok {
		t.Fatalf("cancelled relocation: %v", err)
	}
	waitFor(t, "the cancelled relocation to stop", 30*time.Second, func() bool { return l.sim.Stats().InFlight == 0 })
	if got := l.vmsOn(t, l.hosts[0]); len(got) != 4 {
		t.Fatalf("after a cancelled relocation the source runs %d VMs, want 4", len(got))
	}
	if l.sim.Stats().Relocations[l.sim.vmObjs()[0].Name] != 0 {
		t.Fatal("a cancelled relocation was counted")
	}
}

func TestReboot(t *testing.T) {
	// The reboot lasts long enough for the checks made while the host is down, also
	// under the race detector on a loaded machine.
	l := startLab(t, Options{RelocateDuration: 20 * time.Millisecond, RebootDuration: 5 * time.Second})
	ctx := context.Background()
	h := l.hosts[2]
	rebootTask := func(force bool) error {
		res, err := methods.RebootHost_Task(ctx, l.c.Client, &types.RebootHost_Task{This: h.Reference(), Force: force})
		if err != nil {
			t.Fatal(err)
		}
		return object.NewTask(l.c.Client, res.Returnval).Wait(ctx)
	}
	if _, ok := faultOf(rebootTask(false)).(*types.InvalidState); !ok {
		t.Fatal("reboot outside maintenance mode was not refused")
	}
	before := l.host(t, h).Runtime.BootTime
	// Forced, with its 4 VMs still on: they are lost and counted.
	if err := rebootTask(true); err != nil {
		t.Fatal(err)
	}
	if st := l.host(t, h).Runtime.ConnectionState; st != types.HostSystemConnectionStateNotResponding {
		t.Fatalf("rebooting host is %s", st)
	}
	if err := relocate(t, l.vmsOn(t, l.hosts[0])[0], h); err == nil {
		t.Fatal("relocation onto a rebooting host succeeded")
	}
	waitFor(t, "host back", 60*time.Second, func() bool {
		return l.host(t, h).Runtime.ConnectionState == types.HostSystemConnectionStateConnected
	})
	if after := l.host(t, h).Runtime.BootTime; after == nil || !after.After(*before) {
		t.Fatalf("boot time %v -> %v", before, after)
	}
	st := l.sim.Stats()
	if len(st.LostVMs) != 4 || st.Reboots[l.names[h.Reference().Value]] != 1 {
		t.Fatalf("lost %v, reboots %v", st.LostVMs, st.Reboots)
	}
}

func TestEsxcliProfileUpdate(t *testing.T) {
	l := startLab(t, Options{RelocateDuration: 20 * time.Millisecond, RebootDuration: 100 * time.Millisecond})
	ctx := context.Background()
	h := l.hosts[3]
	opts := l.sim.Options()
	x, err := esxcli.NewExecutor(ctx, l.c.Client, h)
	if err != nil {
		t.Fatal(err)
	}
	run := func(extra ...string) (*esxcli.Response, error) {
		return x.Run(ctx, append([]string{"software", "profile", "update", "-d", opts.Depot, "-p", opts.Profile}, extra...))
	}
	res, err := run("--dry-run=true")
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Values) != 1 || len(res.Values[0]["VIBsInstalled"]) != 3 {
		t.Fatalf("dry run: %+v", res.Values)
	}
	if _, err := run(); err == nil || !strings.Contains(err.Error(), "MaintenanceMode") {
		t.Fatalf("install outside maintenance: %v", err)
	}
	if _, err := x.Run(ctx, []string{"software", "profile", "update", "-d", opts.Depot, "-p", "nope", "--dry-run=true"}); err == nil {
		t.Fatal("unknown profile accepted")
	}
	for i, vm := range l.vmsOn(t, h) {
		if err := relocate(t, vm, l.hosts[i%3]); err != nil {
			t.Fatal(err)
		}
	}
	enter, _ := h.EnterMaintenanceMode(ctx, 0, false, nil)
	if err := enter.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if res, err = run(); err != nil || res.Values[0].Value("RebootRequired") != "true" {
		t.Fatalf("install: %v %+v", err, res)
	}
	if got := l.host(t, h).Config.Product.Build; got != opts.Build {
		t.Fatalf("build %s before the reboot, want %s", got, opts.Build)
	}
	reb, err := methods.RebootHost_Task(ctx, l.c.Client, &types.RebootHost_Task{This: h.Reference()})
	if err != nil {
		t.Fatal(err)
	}
	if err := object.NewTask(l.c.Client, reb.Returnval).Wait(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "new build", 60*time.Second, func() bool { return l.host(t, h).Config.Product.Build == opts.TargetBuild })
	if res, err = run("--dry-run=true"); err != nil || len(res.Values[0]["VIBsInstalled"]) != 0 {
		t.Fatalf("dry run after the reboot: %v %+v", err, res)
	}
}
