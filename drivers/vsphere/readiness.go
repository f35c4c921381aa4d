package vsphere

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/droverhq/drover/drivers"
)

var _ drivers.ReadinessChecker = (*Driver)(nil)

// requiredPrivileges are what the driver and the esxcli plug-in call, on the cluster.
var requiredPrivileges = []string{
	"Host.Config.Maintenance",    // Enter/ExitMaintenanceMode, RebootHost
	"Host.Config.Patch",          // esxcli software profile update
	"Host.Inventory.EditCluster", // hold DRS at manual
	"Resource.HotMigrate",        // vMotion of powered-on VMs
	"Resource.AssignVMToPool",    // RelocateVM_Task with the VM's pool
	"Global.ManageCustomFields",  // define drover.* attributes
	"Global.SetCustomField",      // pause and relocation marks
}

func check(name, status, msg, remedy string) drivers.ReadinessCheck {
	return drivers.ReadinessCheck{Name: name, Status: status, Message: msg, Remedy: remedy}
}

// Readiness checks what a vSphere admin expects before a rolling patch.
func (d *Driver) Readiness(ctx context.Context) ([]drivers.ReadinessCheck, error) {
	ctx, cancel := d.callCtx(ctx)
	defer cancel()
	about := d.c.ServiceContent.About
	out := []drivers.ReadinessCheck{check("vsphere-vcenter", "pass", fmt.Sprintf("%s (API %s) reachable as %s", about.FullName, about.ApiVersion, d.cfg.Username), "")}
	if about.ApiType != "VirtualCenter" {
		out[0] = check("vsphere-vcenter", "fail", "the URL reaches "+about.ApiType+", not vCenter", "point cluster.vsphere.url at vCenter: maintenance mode, DRS and vMotion need it")
	}
	out = append(out, d.privilegeCheck(ctx))
	s, err := d.snapshot(ctx)
	if err != nil {
		return out, err
	}
	out = append(out, check("vsphere-cluster", "pass", fmt.Sprintf("cluster %s in %s with %d hosts", d.cfg.Cluster, d.cfg.Datacenter, len(s.hosts)), ""))
	ex, _ := s.cluster.ConfigurationEx.(*types.ClusterConfigInfoEx)
	if ex == nil {
		ex = &types.ClusterConfigInfoEx{}
	}
	out = append(out, drsCheck(ex.DrsConfig, d.cfg.HoldDRS), haCheck(ex.DasConfig, len(s.hosts)))
	inv := mapInventory(s)
	var down, builds []string
	byBuild := map[string][]string{}
	for _, n := range inv.Nodes {
		if !n.Ready() {
			down = append(down, n.Name+" ("+string(n.State)+")")
		}
		byBuild[n.Labels["vsphere.build"]] = append(byBuild[n.Labels["vsphere.build"]], n.Name)
	}
	if len(down) > 0 {
		out = append(out, check("vsphere-hosts-connected", "fail", "not connected: "+strings.Join(down, ", "), "reconnect the hosts in vCenter, or leave them out with policy.nodes"))
	} else {
		out = append(out, check("vsphere-hosts-connected", "pass", fmt.Sprintf("all %d hosts connected", len(inv.Nodes)), ""))
	}
	var stuck []string
	for _, v := range inv.VMs {
		if v.Running() && !v.Migratable {
			stuck = append(stuck, v.Name+" ("+v.NotMigratableReason+")")
		}
	}
	if len(stuck) > 0 {
		out = append(out, check("vsphere-vmotion", "warn", fmt.Sprintf("%d running VMs cannot vMotion: %s", len(stuck), strings.Join(stuck, "; ")),
			"disconnect host devices, move disks to shared datastores, or choose policy.non_migratable (shutdown or skip)"))
	} else {
		out = append(out, check("vsphere-vmotion", "pass", "every running VM can vMotion", ""))
	}
	for b, hs := range byBuild {
		sort.Strings(hs)
		builds = append(builds, fmt.Sprintf("build %s: %s", b, strings.Join(hs, ", ")))
	}
	sort.Strings(builds)
	if len(byBuild) > 1 {
		out = append(out, check("vsphere-builds", "warn", "hosts run different ESXi builds: "+strings.Join(builds, "; "), "expected mid-upgrade; otherwise check why hosts differ before patching"))
	} else {
		out = append(out, check("vsphere-builds", "pass", strings.Join(builds, ""), ""))
	}
	return out, nil
}

func (d *Driver) privilegeCheck(ctx context.Context) drivers.ReadinessCheck {
	us, err := d.sm.UserSession(ctx)
	if err != nil || us == nil {
		return check("vsphere-privileges", "warn", fmt.Sprintf("cannot read the session: %v", err), "check the login's role by hand: "+strings.Join(requiredPrivileges, ", "))
	}
	has, err := object.NewAuthorizationManager(d.c).HasPrivilegeOnEntity(ctx, d.cluster.Reference(), us.Key, requiredPrivileges)
	if err != nil || len(has) != len(requiredPrivileges) {
		return check("vsphere-privileges", "warn", fmt.Sprintf("cannot read the privileges: %v", err), "check the login's role by hand: "+strings.Join(requiredPrivileges, ", "))
	}
	var missing []string
	for i, ok := range has {
		if !ok {
			missing = append(missing, requiredPrivileges[i])
		}
	}
	if len(missing) > 0 {
		return check("vsphere-privileges", "fail", fmt.Sprintf("%s lacks on cluster %s: %s", d.cfg.Username, d.cfg.Cluster, strings.Join(missing, ", ")), "add them to the login's role on the cluster (see drivers/vsphere/README.md)")
	}
	return check("vsphere-privileges", "pass", fmt.Sprintf("%s holds the %d privileges drover needs on the cluster", d.cfg.Username, len(requiredPrivileges)), "")
}

func drsCheck(drs types.ClusterDrsConfigInfo, hold bool) drivers.ReadinessCheck {
	enabled := drs.Enabled != nil && *drs.Enabled
	switch {
	case !enabled:
		return check("vsphere-drs", "pass", "DRS is off: nothing moves VMs but drover", "")
	case drs.DefaultVmBehavior == types.DrsBehaviorManual:
		return check("vsphere-drs", "pass", "DRS is manual: it recommends, drover moves", "")
	case hold:
		return check("vsphere-drs", "pass", fmt.Sprintf("DRS is %s: drover holds it at manual while it has hosts paused and restores it after", drs.DefaultVmBehavior), "")
	}
	return check("vsphere-drs", "warn", fmt.Sprintf("DRS is %s and cluster.vsphere.hold_drs is false: DRS may move VMs while drover drains", drs.DefaultVmBehavior),
		"set hold_drs: true, or set DRS to manual for the run")
}

// haCheck compares HA admission control with one host in maintenance at a time:
// vSphere counts a host in maintenance as capacity that is gone.
func haCheck(das types.ClusterDasConfigInfo, hosts int) drivers.ReadinessCheck {
	if das.Enabled == nil || !*das.Enabled || das.AdmissionControlEnabled == nil || !*das.AdmissionControlEnabled {
		return check("vsphere-ha-admission", "pass", "HA admission control is off", "")
	}
	switch p := das.AdmissionControlPolicy.(type) {
	case *types.ClusterFailoverLevelAdmissionControlPolicy:
		if left := hosts - 1 - int(p.FailoverLevel); left < 1 {
			return check("vsphere-ha-admission", "fail", fmt.Sprintf("HA tolerates %d host failure(s) in %d hosts: with one host in maintenance no capacity is left for VMs", p.FailoverLevel, hosts),
				"lower the failures to tolerate for the run, or add hosts")
		}
		return check("vsphere-ha-admission", "warn", fmt.Sprintf("HA reserves capacity for %d host failure(s); with one host in maintenance %d host(s) must carry every VM plus that reserve", p.FailoverLevel, hosts-1),
			fmt.Sprintf("set policy.reserve_nodes to at least %d so that drover's plan keeps the same reserve", p.FailoverLevel))
	case *types.ClusterFailoverResourcesAdmissionControlPolicy:
		return check("vsphere-ha-admission", "warn", fmt.Sprintf("HA reserves %d%% CPU and %d%% memory: a host in maintenance lowers the capacity that reserve is taken from", p.CpuFailoverResourcesPercent, p.MemoryFailoverResourcesPercent),
			"check the cluster holds every VM on one host fewer plus that reserve (policy.memory_headroom_mib)")
	case *types.ClusterFailoverHostAdmissionControlPolicy:
		return check("vsphere-ha-admission", "warn", fmt.Sprintf("HA keeps %d dedicated failover host(s) free: drover's placements onto them are refused", len(p.FailoverHosts)),
			"leave the failover hosts out of the drain targets, or disable admission control for the run")
	}
	return check("vsphere-ha-admission", "warn", "HA admission control is on with a policy drover does not know", "check capacity by hand")
}
