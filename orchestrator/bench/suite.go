package bench

import (
	"math"
	"slices"
	"time"

	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/drivers/sim"
)

// DefaultSeed seeds the scenarios' clusters and the model.
const DefaultSeed = 42

// Row is one scenario under one strategy: the JSON of `drover bench --json`. Times
// are model seconds; bytes are bytes.
type Row struct {
	Name                   string  `json:"name"`
	Strategy               string  `json:"strategy"`
	DrainSeconds           float64 `json:"drain_seconds"`
	RunSeconds             float64 `json:"run_seconds"`
	MigrationsPerVM        float64 `json:"migrations_per_vm"`
	LowerBoundDrainSeconds float64 `json:"lower_bound_drain_seconds"`
	// LowerBoundRunSeconds is the whole run's lower bound (RunLowerBound) and
	// RunVsBound the run's time over it.
	LowerBoundRunSeconds float64 `json:"lower_bound_run_seconds"`
	RunVsBound           float64 `json:"run_vs_lower_bound"`

	// DrainedNodes is the drained batch (the run's first node, or its first
	// nodes when several are patched at once).
	DrainedNodes         []string `json:"drained_nodes"`
	DrainBytes           int64    `json:"drain_bytes_moved"`
	LowerBoundDrainBytes int64    `json:"lower_bound_drain_bytes"`
	BytesMoved           int64    `json:"bytes_moved"`
	// MinMigrationsPerVM is the least any run patching every node can do: the VMs
	// of the first node drained (of each CPU group) have only unpatched nodes to go
	// to and move again, and that node holds at least the fewest VMs of its group.
	MinMigrationsPerVM float64 `json:"min_migrations_per_vm"`
	Migrations         int     `json:"migrations"`
	FailedMigrations   int     `json:"failed_migrations"`
	NodesFailed        int     `json:"nodes_failed"`
	Rejections         int     `json:"rejections"`
	PeakPerNode        int     `json:"peak_migrations_per_node"`
	ParallelNodes      int     `json:"parallel_nodes"`
	Nodes              int     `json:"nodes"`
	VMs                int     `json:"vms"`
	// NICMbps and StreamMbps are the first drained node's link.
	NICMbps    float64 `json:"nic_mbps"`
	StreamMbps float64 `json:"stream_mbps"`
	// RunSecondsOneNode and MigrationsPerVMOneNode are the same run one node at a
	// time, for scenarios that patch several at once (what parallel nodes gain).
	RunSecondsOneNode      float64 `json:"run_seconds_one_node_at_a_time,omitempty"`
	MigrationsPerVMOneNode float64 `json:"migrations_per_vm_one_node_at_a_time,omitempty"`
	// Bound is the drain's lower bound's terms.
	Bound Bound `json:"lower_bound"`
	// RunBound is the whole run's lower bound's terms.
	RunBound RunBound `json:"lower_bound_run"`
	// WallSeconds is the wall time this simulation took.
	WallSeconds float64 `json:"wall_seconds"`
}

// Options select what Suite runs.
type Options struct {
	Seed uint64
	// Scenarios limits the suite to these names (nil: all).
	Scenarios []string
}

// Suite runs every selected scenario under every strategy, each from the same
// seeded cluster.
func Suite(opts Options) ([]Row, error) {
	if opts.Seed == 0 {
		opts.Seed = DefaultSeed
	}
	var rows []Row
	for _, sc := range Scenarios(opts.Seed) {
		if len(opts.Scenarios) > 0 && !slices.Contains(opts.Scenarios, sc.Name) {
			continue
		}
		for _, st := range Strategies() {
			row, err := RunRow(sc, st)
			if err != nil {
				return rows, err
			}
			rows = append(rows, row)
		}
	}
	return rows, nil
}

// RunRow runs one scenario under one strategy and measures it.
func RunRow(sc Scenario, st Strategy) (Row, error) {
	t0 := time.Now()
	out, err := Run(sc, st)
	if err != nil {
		return Row{}, err
	}
	inv, err := initialInventory(sc)
	if err != nil {
		return Row{}, err
	}
	b := LowerBound(inv, sc.Cluster.Model, out.DrainedNodes)
	rb := ScenarioRunBound(sc, inv)
	vms := 0
	perNode := map[string]int{}
	for _, v := range inv.VMs {
		if v.Running() && v.Migratable {
			vms++
			perNode[v.Node]++
		}
	}
	// Per CPU group (VMs move only within theirs): the first node drained of each
	// group has no patched node of its group to send its VMs to.
	firstOf := map[string]int{}
	for _, n := range inv.Nodes {
		g := n.CPUGroup
		if v, ok := firstOf[g]; !ok || perNode[n.Name] < v {
			firstOf[g] = perNode[n.Name]
		}
	}
	if _, mixed := firstOf[""]; mixed && len(firstOf) > 1 {
		// Nodes of no group take any VM: count the least loaded node overall.
		least := vms
		for _, v := range firstOf {
			least = min(least, v)
		}
		firstOf = map[string]int{"": least}
	}
	first := 0
	for _, v := range firstOf {
		first += v
	}
	row := Row{
		Name: sc.Name, Strategy: st.Name,
		DrainSeconds: round(out.DrainSeconds), RunSeconds: round(out.RunSeconds),
		MigrationsPerVM: round3(out.MigrationsPerVM()), LowerBoundDrainSeconds: round(b.Seconds),
		DrainedNodes: out.DrainedNodes, DrainBytes: mib(out.DrainMiB), LowerBoundDrainBytes: int64(b.rounded().Bytes),
		BytesMoved: mib(out.RunMiB), Migrations: out.Migrations, FailedMigrations: out.FailedMigrations,
		NodesFailed: out.NodesFailed, Rejections: out.Rejections, PeakPerNode: out.PeakPerNode,
		ParallelNodes: out.MaxParallelNodes, Nodes: len(inv.Nodes), VMs: vms, Bound: b.rounded(),
		LowerBoundRunSeconds: round(rb.Seconds), RunBound: rb.rounded(),
	}
	if rb.Converges && rb.Seconds > 0 {
		row.RunVsBound = round3(out.RunSeconds / rb.Seconds)
	}
	if sc.ParallelNodes > 1 {
		one := sc
		one.ParallelNodes = 1
		o1, err := Run(one, st)
		if err != nil {
			return Row{}, err
		}
		row.RunSecondsOneNode, row.MigrationsPerVMOneNode = round(o1.RunSeconds), round3(o1.MigrationsPerVM())
	}
	if len(out.DrainedNodes) > 0 {
		if n, ok := inv.Node(out.DrainedNodes[0]); ok {
			row.NICMbps, row.StreamMbps = n.NICMbps, n.StreamMbps
		}
	}
	if vms > 0 {
		row.MinMigrationsPerVM = round3(1 + float64(first)/float64(vms))
	}
	row.WallSeconds = math.Round(time.Since(t0).Seconds()*1000) / 1000
	return row, nil
}

func round(x float64) float64 {
	if math.IsInf(x, 0) || math.IsNaN(x) {
		return -1
	}
	return math.Round(x*10) / 10
}

func round3(x float64) float64 { return math.Round(x*1000) / 1000 }

func mib(x float64) int64 { return int64(math.Round(x * (1 << 20))) }

// initialInventory is the scenario's cluster before the run.
func initialInventory(sc Scenario) (cluster.Inventory, error) {
	m, err := sim.NewModel(sc.Cluster, time.Time{})
	if err != nil {
		return cluster.Inventory{}, err
	}
	return m.Inventory(), nil
}

// rounded makes the bound's figures printable: rounded, and -1 for "cannot converge".
func (b Bound) rounded() Bound {
	b.Seconds, b.SourceNIC, b.TargetNICs, b.SlowestVM = round(b.Seconds), round(b.SourceNIC), round(b.TargetNICs), round(b.SlowestVM)
	if math.IsInf(b.Bytes, 0) {
		b.Bytes = -1
	}
	b.Bytes = math.Round(b.Bytes)
	return b
}
