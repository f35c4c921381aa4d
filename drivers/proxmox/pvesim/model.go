package pvesim

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
)

// Timing sets how long things take in the model (wall time).
type Timing struct {
	// CRMInterval is one round of the HA cluster resource manager (PVE: 10s).
	CRMInterval time.Duration
	// RebootDelay is the time between the reboot request and the node going down
	// (PVE runs "(sleep 2; /sbin/reboot)&").
	RebootDelay time.Duration
	// DownTime is how long a rebooting node is away.
	DownTime time.Duration
	// LRMDelay is how long after boot pve-ha-lrm starts (the other services start
	// with the node).
	LRMDelay time.Duration
	// MigrationSetup is the fixed cost of a migration; MigrationMiBs its speed.
	MigrationSetup time.Duration
	MigrationMiBs  float64
	// LogInterval is how often a running migration writes a progress line.
	LogInterval time.Duration
	// UpgradeTime is how long an apt-get dist-upgrade takes.
	UpgradeTime time.Duration
}

// DefaultTiming is fast enough for tests and slow enough to see migrations in flight.
func DefaultTiming() Timing {
	return Timing{
		CRMInterval:    300 * time.Millisecond,
		RebootDelay:    300 * time.Millisecond,
		DownTime:       1500 * time.Millisecond,
		LRMDelay:       500 * time.Millisecond,
		MigrationSetup: 200 * time.Millisecond,
		MigrationMiBs:  2048,
		LogInterval:    200 * time.Millisecond,
		UpgradeTime:    200 * time.Millisecond,
	}
}

// Package is one pending update of a node.
type Package struct {
	Name, Version, OldVersion string
}

// Node is one PVE node.
type Node struct {
	Name      string
	MemoryMiB int64
	CPUs      int
	Kernel    string
	// Online is false while the node is down (its API and SSH vanish).
	Online   bool
	BootTime time.Time
	BootID   string
	// rebootAt/upAt are the pending reboot's moments (zero when none).
	rebootAt, upAt time.Time
	// Maintenance is the HA node-maintenance request; it survives reboots.
	Maintenance bool
	// lrmMaintenance is what the LRM reports (set by the CRM a round later).
	lrmMaintenance bool
	Pending        []Package
	RebootRequired bool
	// DpkgInterrupted: an upgrade was killed mid-dpkg (apt refuses until
	// `dpkg --configure -a`).
	DpkgInterrupted bool
	// jobs are the apt plug-in's job folders on the node, by path.
	jobs    map[string]*aptJob
	Reboots int
	// HasCeph: the node runs Ceph OSDs.
	HasCeph bool
}

// Guest is a qemu VM or an lxc container.
type Guest struct {
	VMID      int
	Name      string
	Type      string // qemu | lxc
	Node      string
	Status    string // running | stopped
	MaxMemMiB int64
	CPUs      int
	HA        bool
	// fallback is the node HA moved the guest away from for maintenance.
	fallback string
	// Disks are the volumes of its config; which are local the storage decides.
	Disks          []Disk
	LocalResources []string
	lock           string
	mig            *migration
	// haTarget is a queued HA migrate request (PVE: crm-command migrate).
	haTarget string
	// Moves counts finished migrations; Locations the nodes it has been on.
	Moves int
}

// Stats are what a test checks after a run.
type Stats struct {
	Violations   []string `json:"violations"`
	Migrations   int      `json:"migrations"`
	HAMigrations int      `json:"ha_migrations"`
	// PeakHAMoves is the most HA migrations seen at once out of one node.
	PeakHAMoves        int `json:"peak_ha_moves"`
	CancelledMigration int `json:"cancelled_migrations"`
	// NoRoomMigrations are storage migrations refused for lack of space on the target.
	NoRoomMigrations int `json:"no_room_migrations"`
	// DiskMiBMoved is what storage migrations copied.
	DiskMiBMoved       int64    `json:"disk_mib_moved"`
	PlacedOnMaint      []string `json:"placed_on_maintenance"`
	RebootedWithGuests []string `json:"rebooted_with_guests"`
	RebootsNoNoout     []string `json:"reboots_without_noout"`
	NooutSets          int      `json:"noout_sets"`
	NooutUnsets        int      `json:"noout_unsets"`
	Upgrades           int      `json:"upgrades"`
	// AptJobsStarted counts detached upgrades started, AptJobsLost those a reboot
	// killed, DpkgRepairs the `dpkg --configure -a` runs that followed.
	AptJobsStarted int `json:"apt_jobs_started"`
	AptJobsLost    int `json:"apt_jobs_lost"`
	DpkgRepairs    int `json:"dpkg_repairs"`
	// MarkClaims counts pause marks written.
	MarkClaims    int      `json:"mark_claims"`
	MaintEnables  int      `json:"maintenance_enables"`
	MaintDisables int      `json:"maintenance_disables"`
	SSHCommands   []string `json:"ssh_commands"`
}

// Model is the cluster. All methods are safe for concurrent use.
type Model struct {
	mu      sync.Mutex
	now     func() time.Time
	timing  Timing
	nodes   map[string]*Node
	order   []string
	guests  map[int]*Guest
	tasks   map[string]*Task
	taskSeq int
	// MaxWorkers is datacenter.cfg's max_workers (HA moves per node at a time).
	maxWorkers int
	ceph       bool
	storages   []Storage
	// marks are the pause marks in /etc/pve (pvemark.Dir), by node.
	marks map[string]string
	flags map[string]bool
	stats Stats
	// TokenPrivs are the privileges of the API token on /.
	tokenPrivs []string
}

// Options builds a model.
type Options struct {
	Nodes      []Node
	Guests     []Guest
	Timing     Timing
	MaxWorkers int
	Ceph       bool
	// Storages is storage.cfg (DefaultStorages when nil).
	Storages   []Storage
	Now        func() time.Time
	TokenPrivs []string
}

// DefaultPrivs are the privileges of the role the README recommends.
var DefaultPrivs = []string{"Sys.Audit", "Sys.PowerMgmt", "Sys.Modify", "VM.Audit", "VM.Migrate", "VM.PowerMgmt"}

// NewModel builds a model; nodes start online, booted an hour ago.
func NewModel(o Options) *Model {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxWorkers == 0 {
		o.MaxWorkers = 4
	}
	if o.Timing == (Timing{}) {
		o.Timing = DefaultTiming()
	}
	if o.TokenPrivs == nil {
		o.TokenPrivs = DefaultPrivs
	}
	if o.Storages == nil {
		o.Storages = DefaultStorages()
	}
	m := &Model{now: o.Now, timing: o.Timing, nodes: map[string]*Node{}, guests: map[int]*Guest{}, tasks: map[string]*Task{},
		maxWorkers: o.MaxWorkers, ceph: o.Ceph, storages: o.Storages, marks: map[string]string{}, flags: map[string]bool{}, tokenPrivs: o.TokenPrivs}
	now := m.now()
	for _, n := range o.Nodes {
		n := n
		n.Online = true
		n.BootTime = now.Add(-time.Hour).Truncate(time.Second)
		n.BootID = newBootID(n.Name, 0)
		n.jobs = map[string]*aptJob{}
		if n.Kernel == "" {
			n.Kernel = "6.14.8-2-pve"
		}
		m.nodes[n.Name] = &n
		m.order = append(m.order, n.Name)
	}
	for _, g := range o.Guests {
		g := g
		if g.Status == "" {
			g.Status = "running"
		}
		m.guests[g.VMID] = &g
	}
	return m
}

func newBootID(node string, n int) string {
	return fmt.Sprintf("%08x-%04x-4000-8000-%012x", hash(node), n, n+1)
}

func hash(s string) uint32 {
	var h uint32 = 2166136261
	for i := 0; i < len(s); i++ {
		h = (h ^ uint32(s[i])) * 16777619
	}
	return h
}

// NodeNames lists the nodes in their configured order.
func (m *Model) NodeNames() []string { return append([]string(nil), m.order...) }

// Snapshot is the model's state for tests and the control endpoint.
type Snapshot struct {
	Nodes  []NodeState  `json:"nodes"`
	Guests []GuestState `json:"guests"`
	Noout  bool         `json:"noout"`
	// Marks are the pause marks in the cluster filesystem, by node.
	Marks map[string]string `json:"marks"`
	Tasks int               `json:"running_tasks"`
	Stats Stats             `json:"stats"`
}

// NodeState is one node in a Snapshot.
type NodeState struct {
	Name        string   `json:"name"`
	Online      bool     `json:"online"`
	Maintenance bool     `json:"maintenance"`
	LRMMaint    bool     `json:"lrm_maintenance"`
	Reboots     int      `json:"reboots"`
	Pending     []string `json:"pending"`
}

// GuestState is one guest in a Snapshot.
type GuestState struct {
	VMID   int    `json:"vmid"`
	Name   string `json:"name"`
	Type   string `json:"type"`
	Node   string `json:"node"`
	Status string `json:"status"`
	HA     bool   `json:"ha"`
	Moves  int    `json:"moves"`
	Lock   string `json:"lock,omitempty"`
}

// Snapshot copies the state.
func (m *Model) Snapshot() Snapshot {
	m.mu.Lock()
	defer m.mu.Unlock()
	var s Snapshot
	for _, name := range m.order {
		n := m.nodes[name]
		ns := NodeState{Name: n.Name, Online: n.Online, Maintenance: n.Maintenance, LRMMaint: n.lrmMaintenance, Reboots: n.Reboots}
		for _, p := range n.Pending {
			ns.Pending = append(ns.Pending, p.Name)
		}
		s.Nodes = append(s.Nodes, ns)
	}
	for _, id := range m.vmids() {
		g := m.guests[id]
		s.Guests = append(s.Guests, GuestState{VMID: g.VMID, Name: g.Name, Type: g.Type, Node: g.Node, Status: g.Status, HA: g.HA, Moves: g.Moves, Lock: g.lock})
	}
	s.Noout = m.flags["noout"]
	s.Marks = map[string]string{}
	for n, v := range m.marks {
		s.Marks[n] = v
	}
	for _, t := range m.tasks {
		if t.running() {
			s.Tasks++
		}
	}
	s.Stats = m.stats
	s.Stats.Violations = append([]string(nil), m.stats.Violations...)
	return s
}

func (m *Model) vmids() []int {
	ids := make([]int, 0, len(m.guests))
	for id := range m.guests {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	return ids
}

// Violation records a request the schema refused, or another broken rule.
func (m *Model) Violation(format string, args ...any) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.stats.Violations = append(m.stats.Violations, fmt.Sprintf(format, args...))
}

// Violations returns what was recorded so far.
func (m *Model) Violations() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.stats.Violations...)
}

func (m *Model) node(name string) (*Node, error) {
	n, ok := m.nodes[name]
	if !ok {
		return nil, &apiError{status: 500, msg: fmt.Sprintf("hostname lookup '%s' failed - failed to get address info for: %s: Name or service not known", name, name)}
	}
	return n, nil
}

// onlineNode returns the node if it answers; a node that is down answers like PVE's
// proxy does when it cannot reach it (595).
func (m *Model) onlineNode(name string) (*Node, error) {
	n, err := m.node(name)
	if err != nil {
		return nil, err
	}
	if !n.Online {
		return nil, &apiError{status: 595, msg: "No route to host"}
	}
	return n, nil
}

func (m *Model) guest(node string, vmid int, typ string) (*Guest, error) {
	g, ok := m.guests[vmid]
	if !ok || g.Type != typ {
		return nil, &apiError{status: 500, msg: fmt.Sprintf("Configuration file 'nodes/%s/%s/%d.conf' does not exist", node, map[string]string{"qemu": "qemu-server", "lxc": "lxc"}[typ], vmid)}
	}
	if g.Node != node {
		return nil, &apiError{status: 500, msg: fmt.Sprintf("Configuration file 'nodes/%s/%s/%d.conf' does not exist", node, map[string]string{"qemu": "qemu-server", "lxc": "lxc"}[typ], vmid)}
	}
	return g, nil
}

func (m *Model) quorate() bool {
	up := 0
	for _, n := range m.nodes {
		if n.Online {
			up++
		}
	}
	return up*2 > len(m.nodes)
}

// apiError is an answer other than 200.
type apiError struct {
	status int
	msg    string
	errs   map[string]string
}

func (e *apiError) Error() string { return e.msg }

func sid(g *Guest) string {
	if g.Type == "lxc" {
		return fmt.Sprintf("ct:%d", g.VMID)
	}
	return fmt.Sprintf("vm:%d", g.VMID)
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

var _ = strings.TrimSpace
