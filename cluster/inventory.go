package cluster

import "strings"

// NodeState is what a hypervisor node is doing, as far as placement is concerned.
type NodeState string

const (
	// NodeUp is a ready node that accepts placements.
	NodeUp NodeState = "up"
	// NodePaused is a ready node that accepts no new placements (maintenance).
	NodePaused NodeState = "paused"
	// NodeRebooting is a node that is restarting; it runs no VMs meanwhile.
	NodeRebooting NodeState = "rebooting"
	// NodeDown is a node that does not answer or is not ready.
	NodeDown NodeState = "down"
)

// PowerState is the power state of a VM.
type PowerState string

const (
	PowerRunning   PowerState = "running"
	PowerStopped   PowerState = "stopped"
	PowerSuspended PowerState = "suspended" // saved state / paused by the platform
	PowerUnknown   PowerState = "unknown"
)

// Network is a virtual network a node offers or a VM is attached to. Two networks are the
// same when their names match case-insensitively and their VLAN tags are equal.
type Network struct {
	Name string `json:"name"`
	VLAN int    `json:"vlan,omitempty"`
}

// SameAs reports whether n and o are the same virtual network.
func (n Network) SameAs(o Network) bool {
	return n.VLAN == o.VLAN && strings.EqualFold(n.Name, o.Name)
}

// Node is one hypervisor host as a driver reports it.
type Node struct {
	Name  string    `json:"name"`
	State NodeState `json:"state"`
	// Paused is true while the node accepts no placements, also while it reboots
	// (platforms keep the pause across a restart).
	Paused    bool  `json:"paused"`
	MemoryMiB int64 `json:"memory_mib"`
	CPUs      int   `json:"cpus"`
	// CPUGroup is the CPU compatibility group: a running VM only moves between nodes of
	// the same group. Empty means the platform does not tell; all such nodes are alike.
	CPUGroup    string            `json:"cpu_group,omitempty"`
	Networks    []Network         `json:"networks,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	FaultDomain string            `json:"fault_domain,omitempty"`
	// NICMbps is the bandwidth of the node's migration network (0 = unknown); all
	// migrations into and out of the node share it.
	NICMbps float64 `json:"nic_mbps,omitempty"`
	// StreamMbps caps one migration stream from or to this node (0 = unknown).
	StreamMbps float64 `json:"stream_mbps,omitempty"`
	// NICSource says where NICMbps comes from when not from the platform:
	// "configured" (the driver's config). Empty: reported by the platform.
	NICSource string `json:"nic_source,omitempty"`
	// PausedBy is the owner mark of the pause (drivers.PauseMark of the run that paused
	// it); "" when the node is not paused, was paused without a mark, or the platform
	// cannot hold one.
	PausedBy string `json:"paused_by,omitempty"`
	// BootID changes each time the node boots; "" when the platform cannot tell.
	BootID string `json:"boot_id,omitempty"`
	// Problem says why a down node is down as the driver saw it (its connection's
	// error, never a secret), so that checks can name it; "" when the driver cannot
	// tell or the node answers.
	Problem string `json:"problem,omitempty"`
	// StorageMiB is the free space for local disks (the storage pool or path that
	// receives disks moved with their VMs), 0 when the node has none or cannot tell.
	StorageMiB int64 `json:"storage_mib,omitempty"`
}

// Ready reports whether the node is up or paused (answering, able to run VMs).
func (n Node) Ready() bool { return n.State == NodeUp || n.State == NodePaused }

// VM is one virtual machine as a driver reports it.
type VM struct {
	Name      string     `json:"name"`
	Node      string     `json:"node"`
	MemoryMiB int64      `json:"memory_mib"`
	VCPUs     int        `json:"vcpus"`
	Power     PowerState `json:"power"`
	// Migratable is false for VMs that cannot live-migrate (local or pass-through
	// disks, devices, pinning); NotMigratableReason says why.
	Migratable          bool   `json:"migratable"`
	NotMigratableReason string `json:"not_migratable_reason,omitempty"`
	// AntiAffinity names the group of VMs that should run on different nodes; with
	// AntiAffinityHard they must.
	AntiAffinity     string    `json:"anti_affinity,omitempty"`
	AntiAffinityHard bool      `json:"anti_affinity_hard,omitempty"`
	Networks         []Network `json:"networks,omitempty"`
	// DirtyMiBs is the page-dirtying rate in MiB/s when the platform knows it (0 = unknown).
	DirtyMiBs float64 `json:"dirty_mib_s,omitempty"`
	// DirtySource is "measured" when the platform measured DirtyMiBs (0 included);
	// empty: a rate above 0 is the platform's, 0 is unknown.
	DirtySource string `json:"dirty_source,omitempty"`
	// PreferredNode is the node the VM prefers to run on (policy failback).
	PreferredNode string `json:"preferred_node,omitempty"`
	// MigratingTo is the target of a live migration in flight, "" when none.
	MigratingTo string `json:"migrating_to,omitempty"`
	// Disks are the VM's virtual disks. Local ones live on the node's own storage and
	// move with the VM (storage migration); shared ones stay where they are.
	Disks []Disk `json:"disks,omitempty"`
}

// Disk is one virtual disk of a VM.
type Disk struct {
	Name    string `json:"name"`
	SizeMiB int64  `json:"size_mib"`
	// Local is true for a disk on the node's own storage, which only moves together
	// with the VM by copying it; false for a disk on storage every node sees.
	Local bool `json:"local,omitempty"`
}

// LocalDiskMiB is the size of the VM's local disks: what a storage migration copies
// and what the target needs free.
func (v VM) LocalDiskMiB() int64 {
	var n int64
	for _, d := range v.Disks {
		if d.Local {
			n += max(d.SizeMiB, 0)
		}
	}
	return n
}

// HasLocalDisks reports whether the VM has a disk that must move with it.
func (v VM) HasLocalDisks() bool {
	for _, d := range v.Disks {
		if d.Local {
			return true
		}
	}
	return false
}

// Running reports whether the VM is running (and so must be moved before a reboot).
func (v VM) Running() bool { return v.Power == PowerRunning }

// Inventory is a snapshot of a cluster.
type Inventory struct {
	Nodes []Node `json:"nodes"`
	VMs   []VM   `json:"vms"`
}

// Node returns the node called name.
func (inv Inventory) Node(name string) (Node, bool) {
	for _, n := range inv.Nodes {
		if n.Name == name {
			return n, true
		}
	}
	return Node{}, false
}

// VM returns the VM called name.
func (inv Inventory) VM(name string) (VM, bool) {
	for _, v := range inv.VMs {
		if v.Name == name {
			return v, true
		}
	}
	return VM{}, false
}

// VMsOn returns the VMs that live on node, in inventory order.
func (inv Inventory) VMsOn(node string) []VM {
	var out []VM
	for _, v := range inv.VMs {
		if v.Node == node {
			out = append(out, v)
		}
	}
	return out
}

// Update is one pending or installed update of a node.
type Update struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
}
