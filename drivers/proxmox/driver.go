package proxmox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/drivers"
	"github.com/droverhq/drover/drivers/updaters"
)

// Driver is the Proxmox VE driver. It is safe for concurrent use.
type Driver struct {
	cfg Config
	api *api
	ssh updaters.Runner
	log *slog.Logger
	now func() time.Time

	mu sync.Mutex
	// boots caches each node's boot id by the boot time it was read at, so that an
	// inventory logs in over SSH once per boot, not once per call.
	boots map[string]bootRecord
	// reboots are the reboots this process requested: readiness then also needs a
	// boot time after the request.
	reboots map[string]time.Time
	// flights are the migrations this driver runs, by VMID.
	flights drivers.Flights
	// checks caches migrate pre-checks (local disks and devices) by VMID.
	checks map[int]precheck
	// configs caches the disks of guest configs by VMID.
	configs map[int]guestConfig
	// marks are the pause marks read last, by node (marks.go).
	marks map[string]string
}

type bootRecord struct {
	at time.Time
	id string
}

var (
	_ drivers.Driver          = (*Driver)(nil)
	_ drivers.Config          = (*Config)(nil)
	_ drivers.PowerController = (*Driver)(nil)
	_ updaters.NodeShell      = (*Driver)(nil)
)

func open(ctx context.Context, cfg Config, env drivers.Env) (*Driver, error) {
	log := env.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	secret := os.Getenv(cfg.TokenSecretEnv)
	a, err := newAPI(cfg, secret, env.BaseDir, log)
	if err != nil {
		return nil, err
	}
	r, err := updaters.NewSSHRunner(*cfg.SSH, env.BaseDir)
	if err != nil {
		return nil, drivers.PrefixFields("ssh", err)
	}
	d := &Driver{cfg: cfg, api: a, ssh: r, log: log, now: time.Now, boots: map[string]bootRecord{}, reboots: map[string]time.Time{}, checks: map[int]precheck{}, configs: map[int]guestConfig{}}
	var version struct {
		Version string `json:"version"`
	}
	if err := a.get(ctx, "/version", nil, &version); err != nil {
		return nil, explainOpen(err, cfg.Endpoints)
	}
	var nodes []struct {
		Node string `json:"node"`
	}
	if err := a.get(ctx, "/nodes", nil, &nodes); err != nil {
		return nil, explainOpen(err, cfg.Endpoints)
	}
	known := map[string]bool{}
	var names []string
	for _, n := range nodes {
		known[n.Node] = true
		names = append(names, n.Node)
	}
	sort.Strings(names)
	var errs []error
	for name := range cfg.Nodes {
		if !known[name] {
			errs = append(errs, drivers.Fieldf("nodes."+name, "use the cluster's node names: "+strings.Join(names, ", "), "no node %q in the cluster", name))
		}
	}
	for _, name := range names {
		if _, ok := cfg.Nodes[name]; !ok {
			errs = append(errs, drivers.Fieldf("nodes", "add "+name+": ADDRESS (its SSH address)", "cluster node %q has no SSH address", name))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	log.Debug("connected", "pve_version", version.Version, "nodes", len(names))
	return d, nil
}

// NodeShell runs commands on nodes over the driver's SSH: the apt plug-in uses it when
// its own section has no ssh.
func (d *Driver) NodeShell() (updaters.Runner, func(node string) string) {
	return d.ssh, d.sshAddr
}

func (d *Driver) sshAddr(node string) string {
	if a, ok := d.cfg.Nodes[node]; ok {
		return a
	}
	return node
}

func (d *Driver) sshRun(ctx context.Context, node string, argv ...string) (updaters.Output, error) {
	if _, ok := d.cfg.Nodes[node]; !ok {
		return updaters.Output{}, fmt.Errorf("node %q: %w (configured nodes: %s)", node, drivers.ErrNotFound, strings.Join(d.nodeNames(), ", "))
	}
	return d.ssh.Run(ctx, d.sshAddr(node), argv)
}

func (d *Driver) nodeNames() []string {
	var out []string
	for n := range d.cfg.Nodes {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Capabilities: power control (shutdown/start of guests), boot IDs, storage migration
// (with-local-disks: qemu guests move with their local disks), pause owner marks
// (marks.go). No native drain for the orchestrator: HA's part of the drain happens
// inside PauseNode.
func (d *Driver) Capabilities() drivers.Capabilities {
	return drivers.Capabilities{PowerControl: true, BootID: true, StorageMigration: true, PauseOwner: true}
}

// Close releases nothing held open: every call dials anew.
func (d *Driver) Close() error { return nil }

// resource is one item of /cluster/resources; unknown types and fields are ignored.
type resource struct {
	ID      string  `json:"id"`
	Type    string  `json:"type"`
	Node    string  `json:"node"`
	Status  string  `json:"status"`
	VMID    int     `json:"vmid"`
	Name    string  `json:"name"`
	MaxMem  int64   `json:"maxmem"`
	MaxCPU  float64 `json:"maxcpu"`
	HAState string  `json:"hastate"`
	Lock    string  `json:"lock"`
	Uptime  int64   `json:"uptime"`
	// Storage items: the storage ID, storage.cfg's shared flag (0/1), content types,
	// bytes used and in all.
	Storage  string `json:"storage"`
	Shared   any    `json:"shared"`
	Content  string `json:"content"`
	DiskUsed int64  `json:"disk"`
	MaxDisk  int64  `json:"maxdisk"`
}

func (d *Driver) resources(ctx context.Context) ([]resource, error) {
	var rs []resource
	if err := d.api.get(ctx, "/cluster/resources", nil, &rs); err != nil {
		return nil, fmt.Errorf("read /cluster/resources: %w", err)
	}
	return rs, nil
}

func (d *Driver) guests(ctx context.Context) (map[int]resource, error) {
	var rs []resource
	if err := d.api.get(ctx, "/cluster/resources", url.Values{"type": {"vm"}}, &rs); err != nil {
		return nil, fmt.Errorf("read guests: %w", err)
	}
	out := map[int]resource{}
	for _, r := range rs {
		if (r.Type == "qemu" || r.Type == "lxc") && r.VMID > 0 {
			out[r.VMID] = r
		}
	}
	return out, nil
}

type nodeStatus struct {
	Uptime  int64 `json:"uptime"`
	CPUInfo struct {
		CPUs int `json:"cpus"`
	} `json:"cpuinfo"`
	Memory struct {
		Total int64 `json:"total"`
	} `json:"memory"`
	Kernel struct {
		Release string `json:"release"`
	} `json:"current-kernel"`
	PVEVersion string `json:"pveversion"`
}

func (d *Driver) nodeStatus(ctx context.Context, node string) (nodeStatus, error) {
	var st nodeStatus
	err := d.api.get(ctx, "/nodes/"+url.PathEscape(node)+"/status", nil, &st)
	return st, err
}

type haItem struct {
	ID     string `json:"id"`
	Type   string `json:"type"`
	Node   string `json:"node"`
	Status string `json:"status"`
	SID    string `json:"sid"`
	State  string `json:"crm_state"`
}

// haStatus returns the LRM mode per node ("maintenance mode", "active", ...) and the
// set of HA-managed SIDs.
func (d *Driver) haStatus(ctx context.Context) (map[string]string, map[string]bool, error) {
	var items []haItem
	if err := d.api.get(ctx, "/cluster/ha/status/current", nil, &items); err != nil {
		return nil, nil, fmt.Errorf("read HA status: %w", err)
	}
	lrm, services := map[string]string{}, map[string]bool{}
	for _, it := range items {
		switch it.Type {
		case "lrm":
			lrm[it.Node] = lrmMode(it.Node, it.Status)
		case "service":
			services[it.SID] = true
		}
	}
	return lrm, services, nil
}

// maintenanceRequests reads the CRM's node requests from manager_status: the nodes
// with maintenance requested, confirmed or not.
func (d *Driver) maintenanceRequests(ctx context.Context) (map[string]bool, error) {
	var ms struct {
		ManagerStatus struct {
			NodeRequest map[string]map[string]any `json:"node_request"`
			NodeStatus  map[string]any            `json:"node_status"`
		} `json:"manager_status"`
	}
	if err := d.api.get(ctx, "/cluster/ha/status/manager_status", nil, &ms); err != nil {
		return nil, fmt.Errorf("read HA manager status: %w", err)
	}
	out := map[string]bool{}
	for node, req := range ms.ManagerStatus.NodeRequest {
		out[node] = truthy(req["maintenance"])
	}
	for node, st := range ms.ManagerStatus.NodeStatus {
		if st == "maintenance" {
			out[node] = true
		}
	}
	return out, nil
}

// Inventory reads /cluster/resources (every item type, unknown ones ignored), each
// online node's status, the HA status and the migrate pre-checks of qemu guests.
func (d *Driver) Inventory(ctx context.Context) (cluster.Inventory, error) {
	rs, err := d.resources(ctx)
	if err != nil {
		return cluster.Inventory{}, err
	}
	lrm, _, err := d.haStatus(ctx)
	if err != nil {
		return cluster.Inventory{}, err
	}
	requested, err := d.maintenanceRequests(ctx)
	if err != nil {
		return cluster.Inventory{}, err
	}
	storages := storagesOf(rs)
	var inv cluster.Inventory
	for _, r := range rs {
		if r.Type != "node" {
			continue
		}
		n := cluster.Node{Name: r.Node, State: cluster.NodeDown, MemoryMiB: r.MaxMem >> 20, CPUs: int(r.MaxCPU)}
		if r.Status == "online" {
			st, err := d.nodeStatus(ctx, r.Node)
			switch {
			case err == nil:
				n.State = cluster.NodeUp
				n.MemoryMiB = st.Memory.Total >> 20
				n.CPUs = st.CPUInfo.CPUs
				n.Labels = map[string]string{"kernel": st.Kernel.Release}
				n.BootID = d.bootID(ctx, r.Node, st.Uptime)
				n.StorageMiB = localStorageMiB(storages[r.Node])
			case errors.Is(err, drivers.ErrUnavailable):
			default:
				return cluster.Inventory{}, fmt.Errorf("read status of node %s: %w", r.Node, err)
			}
		}
		// The request is what counts: it survives reboots, while the LRM of a node
		// that just booted reports maintenance only a CRM round later.
		if lrm[r.Node] == "maintenance mode" || requested[r.Node] {
			n.Paused = true
			if n.State == cluster.NodeUp {
				n.State = cluster.NodePaused
			}
		}
		if d.rebootPending(r.Node) && n.State == cluster.NodeDown {
			n.State = cluster.NodeRebooting
		}
		inv.Nodes = append(inv.Nodes, n)
	}
	sort.Slice(inv.Nodes, func(i, j int) bool { return inv.Nodes[i].Name < inv.Nodes[j].Name })
	d.fillMarks(ctx, &inv)
	for _, r := range rs {
		if r.Type != "qemu" && r.Type != "lxc" {
			continue
		}
		vm, err := d.vmOf(ctx, r, storages[r.Node])
		if err != nil {
			return cluster.Inventory{}, err
		}
		inv.VMs = append(inv.VMs, vm)
	}
	sort.Slice(inv.VMs, func(i, j int) bool { return inv.VMs[i].Name < inv.VMs[j].Name })
	return inv, nil
}

// vmOf converts a guest. Its Drover name is its VMID: names are not unique in PVE.
func (d *Driver) vmOf(ctx context.Context, r resource, st map[string]storageInfo) (cluster.VM, error) {
	vm := cluster.VM{Name: strconv.Itoa(r.VMID), Node: r.Node, MemoryMiB: r.MaxMem >> 20, VCPUs: int(r.MaxCPU), Migratable: true}
	switch r.Status {
	case "running":
		vm.Power = cluster.PowerRunning
	case "stopped":
		vm.Power = cluster.PowerStopped
	case "paused", "suspended":
		vm.Power = cluster.PowerSuspended
	default:
		vm.Power = cluster.PowerUnknown
	}
	label := fmt.Sprintf("%s %d (%s)", map[string]string{"qemu": "VM", "lxc": "CT"}[r.Type], r.VMID, r.Name)
	var pc *precheck
	switch {
	case r.Type == "lxc" && r.HAState != "":
		// HA moves it (by restart) when the node enters maintenance, and a migrate
		// request for it goes to HA too: movable as far as planning goes.
	case r.Type == "lxc":
		vm.Migratable = false
		vm.NotMigratableReason = label + " is an LXC container: it moves only by restart (policy non_migratable: shutdown restarts it after the reboot)"
	case vm.Power == cluster.PowerRunning:
		got, err := d.precheck(ctx, r.Node, r.VMID)
		if err != nil {
			if errors.Is(err, drivers.ErrUnavailable) || errors.Is(err, drivers.ErrNotFound) {
				break
			}
			return cluster.VM{}, fmt.Errorf("migrate pre-check of %s: %w", label, err)
		}
		if len(got.LocalResources) > 0 {
			vm.Migratable = false
			vm.NotMigratableReason = fmt.Sprintf("%s uses local devices: %s", label, strings.Join(got.LocalResources, ", "))
		}
		pc = &got
	}
	// Only guests that must leave the node need their disks: a stopped guest stays.
	if vm.Power == cluster.PowerRunning || vm.Power == cluster.PowerSuspended {
		if err := d.disksOf(ctx, r, &vm, st, pc, label); err != nil {
			return cluster.VM{}, err
		}
	}
	if r.Lock == "migrate" {
		switch to := d.flights.Target(strconv.Itoa(r.VMID)); {
		case to != "":
			vm.MigratingTo = to
		case r.HAState == "":
			if _, to, err := d.activeMigration(ctx, r.Node, r.VMID); err == nil {
				vm.MigratingTo = to
			}
		}
	}
	return vm, nil
}

// bootID returns the node's kernel boot id, read over SSH once per boot: the boot
// time now-uptime identifies the boot but jitters by a second between reads, and a
// jittering id would make a resumed run think a node rebooted when it did not.
func (d *Driver) bootID(ctx context.Context, node string, uptime int64) string {
	at := d.now().Add(-time.Duration(uptime) * time.Second)
	d.mu.Lock()
	rec, ok := d.boots[node]
	d.mu.Unlock()
	if ok && absDur(rec.at.Sub(at)) <= 5*time.Second {
		return rec.id
	}
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	out, err := d.sshRun(cctx, node, "cat", "/proc/sys/kernel/random/boot_id")
	id := strings.TrimSpace(out.Stdout)
	if err != nil || len(id) < 8 || len(id) > 64 || strings.ContainsAny(id, " \n\t") {
		d.log.Warn("cannot read boot id over SSH", "node", node, "error", err)
		return ""
	}
	d.mu.Lock()
	d.boots[node] = bootRecord{at: at, id: id}
	d.mu.Unlock()
	return id
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

func (d *Driver) rebootPending(node string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.reboots[node]
	return ok
}

// vmid parses a Drover VM name (the VMID).
func vmid(name string) (int, error) {
	id, err := strconv.Atoi(name)
	if err != nil || id < 100 || id > 999999999 {
		return 0, fmt.Errorf("vm %q: %w: Proxmox guests are named by VMID (100-999999999)", name, drivers.ErrNotFound)
	}
	return id, nil
}
