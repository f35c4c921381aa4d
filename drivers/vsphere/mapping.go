package vsphere

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/droverhq/drover/cluster"
)

// Custom attributes the driver keeps on vCenter objects: they survive Drover's
// restarts and are visible to vCenter admins.
const (
	// pauseField on a host holds the owner mark of Drover's pause.
	pauseField = "drover.pause"
	// drsField on the cluster holds the DRS automation level Drover replaced while
	// it holds hosts paused ("" when Drover holds nothing).
	drsField = "drover.drs-saved"
	// migrateField on a VM names the target host of Drover's relocation in flight,
	// so that a Drover restarted after a crash finds it (vCenter's task does not say).
	migrateField = "drover.migrating-to"
	// noField is the key of an attribute that is not defined.
	noField int32 = -1
)

// snapshot is what one inventory read fetched.
type snapshot struct {
	cluster    mo.ClusterComputeResource
	hosts      []mo.HostSystem
	vms        []mo.VirtualMachine
	datastores map[string]mo.Datastore // by moid
	networks   map[string]string       // network moid -> name
	pauseKey   int32                   // key of pauseField, noField when undefined
	migrating  map[string]string       // vm moid -> target host of a relocation in flight
}

// fieldValue is the value of the custom attribute key among values.
func fieldValue(values []types.BaseCustomFieldValue, key int32) string {
	if key == noField {
		return ""
	}
	for _, v := range values {
		if s, ok := v.(*types.CustomFieldStringValue); ok && s.Key == key {
			return s.Value
		}
	}
	return ""
}

// mapHost turns a host into a node.
func mapHost(h mo.HostSystem, evc string, networks map[string]string, pauseKey int32) cluster.Node {
	n := cluster.Node{Name: h.Name, State: cluster.NodeDown}
	mark := fieldValue(h.CustomValue, pauseKey)
	rt := h.Runtime
	if h.Summary.Runtime != nil {
		rt = *h.Summary.Runtime
	}
	if rt.ConnectionState == types.HostSystemConnectionStateConnected && rt.PowerState != types.HostSystemPowerStateStandBy && rt.PowerState != types.HostSystemPowerStatePoweredOff {
		n.State = cluster.NodeUp
	}
	n.Paused = rt.InMaintenanceMode || mark != ""
	n.PausedBy = mark
	if n.Paused && n.State == cluster.NodeUp {
		n.State = cluster.NodePaused
	}
	if rt.BootTime != nil {
		n.BootID = rt.BootTime.UTC().Format(time.RFC3339Nano)
	}
	if hw := h.Summary.Hardware; hw != nil {
		n.MemoryMiB = hw.MemorySize >> 20
		n.CPUs = int(hw.NumCpuThreads)
		if evc == "" {
			n.CPUGroup = "cpu:" + hw.CpuModel
		}
	}
	if evc != "" {
		n.CPUGroup = "evc:" + evc
	}
	if p := h.Summary.Config.Product; p != nil {
		n.Labels = map[string]string{"vsphere.build": p.Build, "vsphere.version": p.Version}
	}
	for _, ref := range h.Network {
		if name, ok := networks[ref.Value]; ok {
			n.Networks = append(n.Networks, cluster.Network{Name: name})
		}
	}
	return n
}

// rules are what DRS rules say about each VM (by moid).
type rules struct {
	antiAffinity map[string]string // vm -> rule name
	hard         map[string]bool
	pinned       map[string]string // vm -> reason
}

func mapRules(cfg types.BaseComputeResourceConfigInfo) rules {
	r := rules{antiAffinity: map[string]string{}, hard: map[string]bool{}, pinned: map[string]string{}}
	ex, ok := cfg.(*types.ClusterConfigInfoEx)
	if !ok {
		return r
	}
	vmGroups := map[string][]types.ManagedObjectReference{}
	for _, g := range ex.Group {
		if vg, ok := g.(*types.ClusterVmGroup); ok {
			vmGroups[vg.Name] = vg.Vm
		}
	}
	all := append([]types.BaseClusterRuleInfo(nil), ex.Rule...)
	sort.SliceStable(all, func(i, j int) bool { return all[i].GetClusterRuleInfo().Name < all[j].GetClusterRuleInfo().Name })
	for _, base := range all {
		info := base.GetClusterRuleInfo()
		if info.Enabled != nil && !*info.Enabled {
			continue
		}
		mandatory := info.Mandatory != nil && *info.Mandatory
		switch rule := base.(type) {
		case *types.ClusterAntiAffinityRuleSpec:
			for _, vm := range rule.Vm {
				if _, seen := r.antiAffinity[vm.Value]; !seen {
					r.antiAffinity[vm.Value] = info.Name
					r.hard[vm.Value] = mandatory
				}
			}
		case *types.ClusterVmHostRuleInfo:
			if !mandatory {
				continue // a "should" rule: DRS may break it, so may Drover
			}
			var reason string
			switch {
			case rule.AffineHostGroupName != "":
				reason = fmt.Sprintf("pinned by DRS rule %q: must run on host group %s", info.Name, rule.AffineHostGroupName)
			case rule.AntiAffineHostGroupName != "":
				reason = fmt.Sprintf("pinned by DRS rule %q: must not run on host group %s", info.Name, rule.AntiAffineHostGroupName)
			default:
				continue
			}
			for _, vm := range vmGroups[rule.VmGroupName] {
				if _, seen := r.pinned[vm.Value]; !seen {
					r.pinned[vm.Value] = reason
				}
			}
		}
	}
	return r
}

// notMigratable says why a VM cannot vMotion ("" when it can): a disk or ISO on a
// datastore only its host mounts, a device backed by the host (USB, serial port,
// CD/DVD drive) while connected, a passthrough device.
func notMigratable(vm mo.VirtualMachine, datastores map[string]mo.Datastore) string {
	if vm.Config == nil {
		return "no configuration readable"
	}
	var reasons []string
	local := func(b types.BaseVirtualDeviceBackingInfo) string {
		fb, ok := b.(types.BaseVirtualDeviceFileBackingInfo)
		if !ok {
			return ""
		}
		f := fb.GetVirtualDeviceFileBackingInfo()
		if f.Datastore == nil {
			return ""
		}
		ds, ok := datastores[f.Datastore.Value]
		if ok && len(ds.Host) <= 1 {
			return ds.Name
		}
		return ""
	}
	for _, dev := range vm.Config.Hardware.Device {
		d := dev.GetVirtualDevice()
		connected := d.Connectable == nil || d.Connectable.Connected
		switch dev := dev.(type) {
		case *types.VirtualDisk:
			if ds := local(dev.Backing); ds != "" {
				reasons = append(reasons, "disk on local datastore "+ds)
			}
			if _, ok := dev.Backing.(*types.VirtualDiskRawDiskVer2BackingInfo); ok {
				reasons = append(reasons, "raw disk of the host")
			}
		case *types.VirtualCdrom:
			if !connected {
				continue
			}
			switch dev.Backing.(type) {
			case *types.VirtualCdromAtapiBackingInfo, *types.VirtualCdromPassthroughBackingInfo:
				reasons = append(reasons, "CD/DVD drive of the host connected")
			default:
				if ds := local(dev.Backing); ds != "" {
					reasons = append(reasons, "ISO on local datastore "+ds)
				}
			}
		case *types.VirtualUSB:
			if _, ok := dev.Backing.(*types.VirtualUSBUSBBackingInfo); ok && connected {
				reasons = append(reasons, "USB device of the host connected")
			}
		case *types.VirtualSerialPort:
			if _, ok := dev.Backing.(*types.VirtualSerialPortDeviceBackingInfo); ok && connected {
				reasons = append(reasons, "serial port of the host connected")
			}
		case *types.VirtualPCIPassthrough:
			reasons = append(reasons, "PCI passthrough device")
		}
	}
	return strings.Join(reasons, "; ")
}

func mapPower(p types.VirtualMachinePowerState) cluster.PowerState {
	switch p {
	case types.VirtualMachinePowerStatePoweredOn:
		return cluster.PowerRunning
	case types.VirtualMachinePowerStatePoweredOff:
		return cluster.PowerStopped
	case types.VirtualMachinePowerStateSuspended:
		return cluster.PowerSuspended
	}
	return cluster.PowerUnknown
}

// mapInventory turns a snapshot into Drover's inventory. VMs are placed by their
// runtime.host (a host's vm list can be stale); VMs on hosts outside the cluster and
// templates are left out.
func mapInventory(s snapshot) cluster.Inventory {
	var inv cluster.Inventory
	evc := ""
	if s.cluster.Summary != nil {
		if cs, ok := s.cluster.Summary.(*types.ClusterComputeResourceSummary); ok {
			evc = cs.CurrentEVCModeKey
		}
	}
	hostNames := map[string]string{}
	for _, h := range s.hosts {
		inv.Nodes = append(inv.Nodes, mapHost(h, evc, s.networks, s.pauseKey))
		hostNames[h.Self.Value] = h.Name
	}
	r := mapRules(s.cluster.ConfigurationEx)
	for _, vm := range s.vms {
		if vm.Config != nil && vm.Config.Template {
			continue
		}
		if vm.Runtime.Host == nil {
			continue
		}
		node, ok := hostNames[vm.Runtime.Host.Value]
		if !ok {
			continue
		}
		v := cluster.VM{Name: vm.Name, Node: node, Power: mapPower(vm.Runtime.PowerState)}
		if vm.Config != nil {
			v.MemoryMiB = int64(vm.Config.Hardware.MemoryMB)
			v.VCPUs = int(vm.Config.Hardware.NumCPU)
		}
		reason := notMigratable(vm, s.datastores)
		if pin := r.pinned[vm.Self.Value]; pin != "" {
			reason = strings.TrimPrefix(reason+"; "+pin, "; ")
		}
		v.Migratable = reason == ""
		v.NotMigratableReason = reason
		v.AntiAffinity = r.antiAffinity[vm.Self.Value]
		v.AntiAffinityHard = r.hard[vm.Self.Value]
		if to := s.migrating[vm.Self.Value]; to != node {
			v.MigratingTo = to
		}
		for _, ref := range vm.Network {
			if name, ok := s.networks[ref.Value]; ok {
				v.Networks = append(v.Networks, cluster.Network{Name: name})
			}
		}
		inv.VMs = append(inv.VMs, v)
	}
	sort.Slice(inv.Nodes, func(i, j int) bool { return inv.Nodes[i].Name < inv.Nodes[j].Name })
	sort.Slice(inv.VMs, func(i, j int) bool { return inv.VMs[i].Name < inv.VMs[j].Name })
	return inv
}
