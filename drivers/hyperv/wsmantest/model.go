package wsmantest

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
)

// Timing is how long the model's actions take, in wall time.
type Timing struct {
	// Migration is the duration of one live migration (default 1s).
	Migration time.Duration
	// RebootDelay overrides the delay the reboot script asks for (0: as asked).
	RebootDelay time.Duration
	// Down is how long a rebooting node is unreachable (default 1s).
	Down time.Duration
	// ServiceStart is how long the cluster service takes after the node answers
	// again (default 300ms): the node answers but is not ready yet.
	ServiceStart time.Duration
	// Install is how long an update install takes (default 500ms).
	Install time.Duration
}

// NodeSpec describes one node of a new model.
type NodeSpec struct {
	Name      string
	MemoryMiB int64
	CPUs      int
	// Updates pending on the node.
	Updates []Update
	// RefuseNetworkWU makes InstallUpdates fail with E_ACCESSDENIED, as from a network
	// logon; only the SYSTEM task can install.
	RefuseNetworkWU bool
}

// VMSpec describes one clustered VM role.
type VMSpec struct {
	Name         string
	Node         string
	MemoryMiB    int64
	Dynamic      bool
	CPUs         int
	Preferred    []string
	Possible     []string
	AntiAffinity []string
	LocalDisks   []string
	Off          bool
}

// Update is one pending Windows update.
type Update struct {
	Title string `json:"title"`
	KB    string `json:"kb"`
	ID    string `json:"id"`
}

// Node is a model node; read it with Model.Node.
type Node struct {
	Name           string
	State          string // Up, Down, Paused, Joining
	DrainStatus    string // NotInitiated, InProgress, Completed, Failed
	Description    string
	Boot           time.Time
	Reboots        int
	ClusterService string // Running, Stopped, StartPending
	MemoryMiB      int64
	CPUs           int
	Pending        []Update
	Installed      []Update
	RebootPending  bool
	refuseWU       bool
	pausedAtDown   bool
	// rebootScheduled is set from shutdown /r until the node is back.
	rebootScheduled bool
	tasks           map[string]*wuTask
}

type wuTask struct {
	done   bool
	result string
}

// Group is a VM role.
type Group struct {
	Name, Owner, State string // State: Online, Offline, Failed
	VMState            string // Running, Off
	MemoryMiB          int64
	Dynamic            bool
	CPUs               int
	Preferred          []string
	Possible           []string
	AntiAffinity       []string
	LocalDisks         []string
	// Failovers counts the times the cluster restarted the role elsewhere because
	// its node went down under it.
	Failovers int
}

// Migration is a live migration the model runs.
type Migration struct {
	VM, From, To string
	Queued       time.Time
	Start        time.Time // zero while queued
	State        string    // New (queued), Running, Completed, Terminated, Exception
	Error        string
	fail         bool
}

// Stats are the model's counters.
type Stats struct {
	MigrationsStarted, MigrationsCompleted, MigrationsCancelled, MigrationsFailed int
	// PeakParallel is the most live migrations that ran at once.
	PeakParallel int
	Reboots      int
	Failovers    int
	// NativeDrains counts drains the cluster ran itself (Suspend-ClusterNode -Drain).
	NativeDrains int
	// Rejected lists commands that were not a shipped script.
	Rejected []string
}

// Model is a Hyper-V failover cluster. It is safe for concurrent use.
type Model struct {
	mu          sync.Mutex
	name        string
	maxParallel int
	enforcedAA  bool
	timing      Timing
	nodes       []*Node
	groups      []*Group
	migs        map[string]*Migration // latest per VM
	stats       Stats
	csvOffline  map[string]bool
	failMig     map[string]bool
	// onDown and onUp stop and start a node's listeners.
	onDown, onUp func(node string)
	timers       []*time.Timer
	closed       bool
}

// NewModel builds a cluster named name; every node starts Up with a boot time an hour ago.
func NewModel(name string, maxParallel int, t Timing, nodes []NodeSpec, vms []VMSpec) *Model {
	if t.Migration == 0 {
		t.Migration = time.Second
	}
	if t.Down == 0 {
		t.Down = time.Second
	}
	if t.ServiceStart == 0 {
		t.ServiceStart = 300 * time.Millisecond
	}
	if t.Install == 0 {
		t.Install = 500 * time.Millisecond
	}
	m := &Model{name: name, maxParallel: maxParallel, timing: t, migs: map[string]*Migration{}, csvOffline: map[string]bool{}, failMig: map[string]bool{}}
	boot := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	for _, n := range nodes {
		m.nodes = append(m.nodes, &Node{Name: n.Name, State: "Up", DrainStatus: "NotInitiated", Boot: boot, ClusterService: "Running",
			MemoryMiB: n.MemoryMiB, CPUs: n.CPUs, Pending: append([]Update(nil), n.Updates...), refuseWU: n.RefuseNetworkWU, tasks: map[string]*wuTask{}})
	}
	for _, v := range vms {
		g := &Group{Name: v.Name, Owner: v.Node, State: "Online", VMState: "Running", MemoryMiB: v.MemoryMiB, Dynamic: v.Dynamic, CPUs: v.CPUs,
			Preferred: v.Preferred, Possible: v.Possible, AntiAffinity: v.AntiAffinity, LocalDisks: v.LocalDisks}
		if v.Off {
			g.State, g.VMState = "Offline", "Off"
		}
		m.groups = append(m.groups, g)
	}
	return m
}

// SetHooks sets what happens to a node's listeners when it goes down and comes back.
func (m *Model) SetHooks(onDown, onUp func(node string)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.onDown, m.onUp = onDown, onUp
}

// Close stops the model's timers.
func (m *Model) Close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	for _, t := range m.timers {
		t.Stop()
	}
}

// SetEnforcedAntiAffinity sets the cluster's ClusterEnforcedAntiAffinity.
func (m *Model) SetEnforcedAntiAffinity(on bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.enforcedAA = on
}

// FailNextMigration makes vm's next live migration fail half way.
func (m *Model) FailNextMigration(vm string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.failMig[vm] = true
}

// SetCSVOffline takes a cluster shared volume offline or back online.
func (m *Model) SetCSVOffline(name string, off bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.csvOffline[name] = off
}

// Nodes returns copies of the nodes, in order.
func (m *Model) Nodes() []Node {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.advance(time.Now())
	out := make([]Node, len(m.nodes))
	for i, n := range m.nodes {
		out[i] = *n
		out[i].tasks = nil
	}
	return out
}

// Groups returns copies of the VM roles.
func (m *Model) Groups() []Group {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.advance(time.Now())
	out := make([]Group, len(m.groups))
	for i, g := range m.groups {
		out[i] = *g
	}
	return out
}

// Migrations returns the latest migration of every VM that had one.
func (m *Model) Migrations() []Migration {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.advance(time.Now())
	var out []Migration
	for _, g := range m.groups {
		if mg, ok := m.migs[g.Name]; ok {
			out = append(out, *mg)
		}
	}
	return out
}

// Stats returns the counters.
func (m *Model) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.advance(time.Now())
	s := m.stats
	s.Rejected = append([]string(nil), s.Rejected...)
	return s
}

func (m *Model) reject(what string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.stats.Rejected = append(m.stats.Rejected, what)
}

func (m *Model) node(name string) *Node {
	for _, n := range m.nodes {
		if strings.EqualFold(n.Name, name) {
			return n
		}
	}
	return nil
}

func (m *Model) group(name string) *Group {
	for _, g := range m.groups {
		if strings.EqualFold(g.Name, name) {
			return g
		}
	}
	return nil
}

// advance brings migrations and drains up to now: finished ones complete, queued ones
// start as slots free up (MaximumParallelMigrations).
func (m *Model) advance(now time.Time) {
	for changed := true; changed; {
		changed = false
		running := 0
		var queued []*Migration
		for _, mg := range m.migs {
			switch mg.State {
			case "Running":
				if mg.fail && now.Sub(mg.Start) >= m.timing.Migration/2 {
					mg.State, mg.Error = "Exception", "Virtual machine migration operation failed at migration source."
					m.stats.MigrationsFailed++
					changed = true
					continue
				}
				if now.Sub(mg.Start) >= m.timing.Migration {
					mg.State = "Completed"
					if g := m.group(mg.VM); g != nil {
						g.Owner = mg.To
					}
					m.stats.MigrationsCompleted++
					changed = true
					continue
				}
				running++
			case "New":
				queued = append(queued, mg)
			}
		}
		sort.Slice(queued, func(i, j int) bool { return queued[i].Queued.Before(queued[j].Queued) })
		for _, mg := range queued {
			if running >= max(m.maxParallel, 1) {
				break
			}
			mg.State, mg.Start = "Running", now
			running++
			changed = true
		}
		m.stats.PeakParallel = max(m.stats.PeakParallel, running)
	}
	for _, n := range m.nodes {
		if n.DrainStatus != "InProgress" {
			continue
		}
		left, failed := 0, false
		for _, g := range m.groups {
			if !strings.EqualFold(g.Owner, n.Name) || g.State != "Online" {
				continue
			}
			left++
			if mg := m.migs[g.Name]; mg != nil && mg.State == "Exception" {
				failed = true
			}
		}
		switch {
		case failed:
			n.DrainStatus = "Failed"
		case left == 0:
			n.DrainStatus = "Completed"
		}
	}
}

// startMigration queues a live migration of g to node to.
func (m *Model) startMigration(g *Group, to string, now time.Time) error {
	t := m.node(to)
	switch {
	case t == nil:
		return psErrorf("The cluster node '%s' was not found.", to)
	case t.State != "Up":
		return psErrorf("Move-ClusterVirtualMachineRole: The operation failed because node '%s' is %s: a node that is not up is not a possible owner.", to, strings.ToLower(t.State))
	case len(g.Possible) > 0 && !contains(g.Possible, to):
		return psErrorf("Move-ClusterVirtualMachineRole: node '%s' is not a possible owner of '%s'.", to, g.Name)
	case len(g.LocalDisks) > 0:
		return psErrorf("Move-ClusterVirtualMachineRole: virtual machine '%s' has storage that is not cluster storage; live migration failed.", g.Name)
	}
	if mg := m.migs[g.Name]; mg != nil && (mg.State == "Running" || mg.State == "New") {
		return psErrorf("Move-ClusterVirtualMachineRole: a migration of '%s' is already in progress.", g.Name)
	}
	if strings.EqualFold(g.Owner, to) {
		return nil
	}
	mg := &Migration{VM: g.Name, From: g.Owner, To: t.Name, Queued: now, State: "New", fail: m.failMig[g.Name]}
	delete(m.failMig, g.Name)
	m.migs[g.Name] = mg
	m.stats.MigrationsStarted++
	m.advance(now)
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// scheduleReboot takes node down after delay, and brings it back.
func (m *Model) scheduleReboot(n *Node, delay time.Duration) {
	n.rebootScheduled = true
	if m.timing.RebootDelay > 0 {
		delay = m.timing.RebootDelay
	}
	m.after(delay, func() { m.goDown(n.Name) })
}

func (m *Model) after(d time.Duration, f func()) {
	if m.closed {
		return
	}
	m.timers = append(m.timers, time.AfterFunc(d, f))
}

func (m *Model) goDown(name string) {
	// The host leaves the network first; the cluster notices afterwards.
	m.mu.Lock()
	down := m.onDown
	m.mu.Unlock()
	if down != nil {
		down(name)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.node(name)
	now := time.Now()
	m.advance(now)
	n.pausedAtDown = n.State == "Paused"
	n.State, n.ClusterService = "Down", "Stopped"
	// Roles still on the node fail over: the cluster restarts them elsewhere.
	for _, g := range m.groups {
		if !strings.EqualFold(g.Owner, name) {
			continue
		}
		if mg := m.migs[g.Name]; mg != nil && (mg.State == "Running" || mg.State == "New") {
			mg.State, mg.Error = "Exception", "source node went down"
		}
		for _, t := range m.nodes {
			if t.State == "Up" {
				g.Owner = t.Name
				g.Failovers++
				m.stats.Failovers++
				break
			}
		}
	}
	m.after(m.timing.Down, func() { m.comeBack(name) })
}

func (m *Model) comeBack(name string) {
	m.mu.Lock()
	n := m.node(name)
	n.Boot = time.Now().UTC().Truncate(time.Millisecond)
	n.Reboots++
	m.stats.Reboots++
	n.State, n.ClusterService = "Joining", "StartPending"
	n.RebootPending, n.rebootScheduled = false, false
	up := m.onUp
	m.after(m.timing.ServiceStart, func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		n.ClusterService = "Running"
		// A paused node stays paused across its reboot.
		n.State = "Up"
		if n.pausedAtDown {
			n.State = "Paused"
		}
	})
	m.mu.Unlock()
	if up != nil {
		up(name)
	}
}

// psError is an error as Windows PowerShell words it (capitals, full stops): the
// model answers with the cmdlets' own messages.
type psError string

func (e psError) Error() string { return string(e) }

func psErrorf(format string, args ...any) error { return psError(fmt.Sprintf(format, args...)) }
