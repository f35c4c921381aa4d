package vsphere

import (
	"context"
	"strings"
	"testing"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/droverhq/drover/drivers"
	"github.com/droverhq/drover/drivers/vsphere/vcsimstrict"
)

func readiness(t *testing.T, d *Driver) map[string]drivers.ReadinessCheck {
	t.Helper()
	checks, err := d.Readiness(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]drivers.ReadinessCheck{}
	for _, c := range checks {
		out[c.Name] = c
	}
	return out
}

func TestReadiness(t *testing.T) {
	sim := startSim(t, vcsimstrict.Options{})
	d := openSim(t, sim)
	got := readiness(t, d)
	for _, name := range []string{"vsphere-vcenter", "vsphere-cluster", "vsphere-drs", "vsphere-ha-admission", "vsphere-hosts-connected", "vsphere-vmotion", "vsphere-builds"} {
		if got[name].Status != "pass" {
			t.Errorf("%s: %+v, want pass on a healthy cluster", name, got[name])
		}
	}
	if _, ok := got["vsphere-privileges"]; !ok {
		t.Error("no privilege check")
	}

	// HA tolerating 3 failures of 4 hosts leaves nothing with one host out; a VM with
	// the host's CD drive connected cannot vMotion.
	m := sim.Model()
	cl := m.Map().Any("ClusterComputeResource").(*simulator.ClusterComputeResource)
	vm := m.Map().Any("VirtualMachine").(*simulator.VirtualMachine)
	m.Service.Context.WithLock(cl, func() {
		das := &cl.ConfigurationEx.(*types.ClusterConfigInfoEx).DasConfig
		das.Enabled, das.AdmissionControlEnabled = types.NewBool(true), types.NewBool(true)
		das.AdmissionControlPolicy = &types.ClusterFailoverLevelAdmissionControlPolicy{FailoverLevel: 3}
	})
	m.Service.Context.WithLock(vm, func() {
		for _, dev := range vm.Config.Hardware.Device {
			if cd, ok := dev.(*types.VirtualCdrom); ok {
				cd.Connectable.Connected = true
			}
		}
	})
	got = readiness(t, d)
	if c := got["vsphere-ha-admission"]; c.Status != "fail" || c.Remedy == "" {
		t.Errorf("HA with 3 of 4 hosts reserved: %+v", c)
	}
	if c := got["vsphere-vmotion"]; c.Status != "warn" || !strings.Contains(c.Message, vm.Name+" (CD/DVD drive of the host connected)") {
		t.Errorf("vmotion check: %+v", c)
	}
}
