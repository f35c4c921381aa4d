package hyperv

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/drivers"
	"github.com/droverhq/drover/drivers/hyperv/scripts"
)

// clusterData is cluster.ps1's answer.
type clusterData struct {
	Name                  string `json:"name"`
	MaxParallelMigrations int    `json:"max_parallel_migrations"`
	EnforcedAntiAffinity  bool   `json:"enforced_anti_affinity"`
	Quorum                string `json:"quorum"`
	Nodes                 []struct {
		Name        string `json:"name"`
		State       string `json:"state"`
		DrainStatus string `json:"drain_status"`
		Mark        string `json:"mark"`
	} `json:"nodes"`
	Groups []struct {
		Name         string   `json:"name"`
		Owner        string   `json:"owner"`
		State        string   `json:"state"`
		Preferred    []string `json:"preferred"`
		Possible     []string `json:"possible"`
		AntiAffinity []string `json:"anti_affinity"`
	} `json:"groups"`
	CSVs []struct {
		Name  string `json:"name"`
		State string `json:"state"`
		Owner string `json:"owner"`
	} `json:"csvs"`
	Failed []struct {
		Name  string `json:"name"`
		Group string `json:"group"`
		Owner string `json:"owner"`
	} `json:"failed"`
}

// hostData is host.ps1's answer.
type hostData struct {
	Computer         string   `json:"computer"`
	Boot             string   `json:"boot"`
	ClusterService   string   `json:"cluster_service"`
	MemoryMiB        int64    `json:"memory_mib"`
	CPUs             int      `json:"cpus"`
	MigrationEnabled bool     `json:"migration_enabled"`
	MigrationAuth    string   `json:"migration_auth"`
	MaxVMMigrations  int      `json:"max_vm_migrations"`
	RebootPending    bool     `json:"reboot_pending"`
	VMs              []hostVM `json:"vms"`
}

type hostVM struct {
	Name         string   `json:"name"`
	State        string   `json:"state"`
	Clustered    bool     `json:"clustered"`
	CPUs         int      `json:"cpus"`
	Dynamic      bool     `json:"dynamic"`
	MemoryMiB    int64    `json:"memory_mib"`
	MemoryMaxMiB int64    `json:"memory_max_mib"`
	LocalDisks   []string `json:"local_disks"`
	Passthrough  bool     `json:"passthrough"`
	Devices      bool     `json:"devices"`
}

// snapshot is one read of the whole cluster: the cluster's view and each host's.
type snapshot struct {
	cluster clusterData
	hosts   map[string]hostData // by lower-case computer name
	errs    map[string]error    // by address, hosts that did not answer
}

func (d *Driver) read(ctx context.Context) (snapshot, error) {
	s := snapshot{hosts: map[string]hostData{}, errs: map[string]error{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	var cerr error
	wg.Go(func() { cerr = d.clusterCall(ctx, scripts.Cluster, nil, &s.cluster) })
	for _, a := range d.addrs {
		wg.Go(func() {
			var h hostData
			err := d.call(ctx, a, scripts.Host, nil, &h)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				s.errs[a] = err
				return
			}
			s.hosts[strings.ToLower(h.Computer)] = h
			d.learn(h.Computer, a)
		})
	}
	wg.Wait()
	if cerr != nil {
		return s, fmt.Errorf("inventory: %w", cerr)
	}
	if d.cfg.Cluster != "" && !strings.EqualFold(d.cfg.Cluster, s.cluster.Name) {
		return s, fmt.Errorf("inventory: %w", drivers.Fieldf("cluster.hyperv.cluster", "set cluster to the failover cluster these nodes belong to, or list its nodes", "the nodes belong to cluster %q, not %q", s.cluster.Name, d.cfg.Cluster))
	}
	d.setSlots(s.maxParallel())
	return s, nil
}

// maxParallel is the cluster's live migration limit: MaximumParallelMigrations, or
// without it (before the 2022-09 update) the hosts' smallest
// MaximumVirtualMachineMigrations, or 1.
func (s snapshot) maxParallel() int {
	if s.cluster.MaxParallelMigrations > 0 {
		return s.cluster.MaxParallelMigrations
	}
	m := 0
	for _, h := range s.hosts {
		if h.MaxVMMigrations > 0 && (m == 0 || h.MaxVMMigrations < m) {
			m = h.MaxVMMigrations
		}
	}
	return max(m, 1)
}

// Inventory reads the cluster from any node and every host from itself.
func (d *Driver) Inventory(ctx context.Context) (cluster.Inventory, error) {
	s, err := d.read(ctx)
	if err != nil {
		return cluster.Inventory{}, err
	}
	return d.inventory(s), nil
}

func (d *Driver) inventory(s snapshot) cluster.Inventory {
	var inv cluster.Inventory
	d.mu.Lock()
	rebooting := map[string]bool{}
	for n := range d.bootBefore {
		rebooting[n] = true
	}
	d.mu.Unlock()
	for _, cn := range s.cluster.Nodes {
		h, reached := s.hosts[strings.ToLower(cn.Name)]
		st, paused := nodeState(cn.State, rebooting[strings.ToLower(cn.Name)])
		n := cluster.Node{Name: cn.Name, State: st, Paused: paused, MemoryMiB: h.MemoryMiB, CPUs: h.CPUs}
		if reached {
			n.BootID = h.Boot
		} else if st == cluster.NodeUp || st == cluster.NodePaused {
			// The cluster says up, but Drover cannot reach it: it cannot be rebooted
			// or checked, so it is not a usable target either.
			n.State = cluster.NodeDown
		}
		if paused && strings.HasPrefix(cn.Mark, "drover-run:") {
			n.PausedBy = cn.Mark
		}
		inv.Nodes = append(inv.Nodes, n)
	}
	inCluster := map[string]bool{}
	for _, g := range s.cluster.Groups {
		inCluster[strings.ToLower(g.Name)] = true
		vm := cluster.VM{Name: g.Name, Node: g.Owner, Migratable: true, MigratingTo: d.flights.Target(g.Name)}
		hv, found := findVM(s.hosts[strings.ToLower(g.Owner)], g.Name)
		switch {
		case found:
			vm.Power = power(hv.State)
			vm.MemoryMiB, vm.VCPUs = hv.MemoryMiB, hv.CPUs
		case g.State == "Offline":
			vm.Power = cluster.PowerStopped
		case g.State == "Online":
			vm.Power = cluster.PowerRunning
		default:
			vm.Power = cluster.PowerUnknown
		}
		switch {
		case len(hv.LocalDisks) > 0:
			vm.Migratable, vm.NotMigratableReason = false, "local storage outside cluster storage: "+strings.Join(hv.LocalDisks, ", ")
		case hv.Passthrough:
			vm.Migratable, vm.NotMigratableReason = false, "pass-through disk"
		case hv.Devices:
			vm.Migratable, vm.NotMigratableReason = false, "assigned device (DDA)"
		case len(g.Possible) == 1 && strings.EqualFold(g.Possible[0], g.Owner):
			vm.Migratable, vm.NotMigratableReason = false, "possible owners: only "+g.Owner
		}
		if len(g.AntiAffinity) > 0 {
			vm.AntiAffinity = g.AntiAffinity[0]
			vm.AntiAffinityHard = s.cluster.EnforcedAntiAffinity
		}
		if len(g.Preferred) > 0 {
			vm.PreferredNode = g.Preferred[0]
		}
		inv.VMs = append(inv.VMs, vm)
		d.mu.Lock()
		d.memMiB[vm.Name] = vm.MemoryMiB
		d.mu.Unlock()
	}
	// VMs a host runs outside the cluster cannot move with the cluster's cmdlets.
	names := make([]string, 0, len(s.hosts))
	for n := range s.hosts {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		h := s.hosts[n]
		for _, v := range h.VMs {
			if inCluster[strings.ToLower(v.Name)] {
				continue
			}
			inv.VMs = append(inv.VMs, cluster.VM{Name: v.Name, Node: nodeName(s, h.Computer), MemoryMiB: v.MemoryMiB, VCPUs: v.CPUs,
				Power: power(v.State), NotMigratableReason: "not a clustered role (Add-ClusterVirtualMachineRole)"})
		}
	}
	return inv
}

// nodeName returns the cluster's spelling of a computer name.
func nodeName(s snapshot, computer string) string {
	for _, n := range s.cluster.Nodes {
		if strings.EqualFold(n.Name, computer) {
			return n.Name
		}
	}
	return computer
}

func findVM(h hostData, name string) (hostVM, bool) {
	for _, v := range h.VMs {
		if strings.EqualFold(v.Name, name) {
			return v, true
		}
	}
	return hostVM{}, false
}

// power maps Get-VM's State.
func power(s string) cluster.PowerState {
	switch s {
	case "Running":
		return cluster.PowerRunning
	case "Off":
		return cluster.PowerStopped
	case "Saved", "Paused":
		return cluster.PowerSuspended
	}
	return cluster.PowerUnknown
}
