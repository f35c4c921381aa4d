package orchestrator_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/drivers"
	"github.com/droverhq/drover/drivers/sim"
	"github.com/droverhq/drover/orchestrator"
	"github.com/droverhq/drover/runs"
	"github.com/droverhq/drover/runs/report"
)

// harness is a run engine on an embedded simulated cluster and a fresh state file.
// Tests run it inside a synctest bubble: the cluster's time is the bubble's fake
// clock, so reboots and timeouts take no wall time and every run is deterministic.
type harness struct {
	t      *testing.T
	drv    *sim.Driver
	driver drivers.Driver  // what the engine uses: drv, or a wrapper of it
	upd    drivers.Updater // the update plug-in, when a test wraps the sim's
	owner  runs.Owner
	last   string // ID of the last run, for checks
	// processes counts the simulated drover processes (each openStore is one).
	processes int
	store     *runs.Store
	eng       *orchestrator.Engine
	before    cluster.Inventory
	events    *eventLog
	dir       string
}

type eventLog struct {
	mu     sync.Mutex
	events []orchestrator.Event
	check  func(orchestrator.Event)
}

func (l *eventLog) Observe(e orchestrator.Event) {
	if e.Kind == orchestrator.EventMigrationProgress {
		return
	}
	l.mu.Lock()
	l.events = append(l.events, e)
	check := l.check
	l.mu.Unlock()
	if check != nil {
		check(e)
	}
}

// newHarness starts an embedded sim of the cluster (YAML text or a file path).
func newHarness(t *testing.T, cluster string) *harness {
	t.Helper()
	var c *sim.Cluster
	var err error
	if strings.HasSuffix(cluster, ".yaml") {
		c, err = sim.LoadCluster(cluster)
	} else {
		c, err = sim.ParseCluster([]byte(cluster))
	}
	if err != nil {
		t.Fatalf("cluster: %v", err)
	}
	ctx := context.Background()
	drv, err := sim.NewEmbedded(ctx, sim.EmbeddedOptions{Cluster: c, TimeScale: 1})
	if err != nil {
		t.Fatalf("NewEmbedded: %v", err)
	}
	t.Cleanup(func() { drv.Close() })
	h := &harness{t: t, drv: drv, driver: drv, events: &eventLog{}, dir: t.TempDir()}
	h.openStore()
	h.before, err = drv.Inventory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// openStore (re)opens the state file and builds a fresh engine, as a restarted
// drover process would.
func (h *harness) openStore() {
	h.t.Helper()
	if h.store != nil {
		h.store.Close()
	}
	st, err := runs.Open(filepath.Join(h.dir, "state.db"), runs.Options{})
	if err != nil {
		h.t.Fatalf("open store: %v", err)
	}
	h.store = st
	h.t.Cleanup(func() { st.Close() })
	h.processes++
	h.owner = runs.Owner{PID: os.Getpid(), Host: "test", StartTicks: uint64(h.processes)}
	h.newEngine()
}

// updater is the sim's own plug-in unless a test swapped in a wrapper.
func (h *harness) updater() drivers.Updater {
	if h.upd != nil {
		return h.upd
	}
	return h.drv
}

// swapDriver makes the engine use d (a wrapper of the sim driver).
func (h *harness) swapDriver(d drivers.Driver) {
	h.driver = d
	h.newEngine()
}

func (h *harness) newEngine() {
	owner := h.owner
	eng, err := orchestrator.New(orchestrator.Config{
		Cluster:  "test",
		Driver:   h.driver,
		Updater:  h.updater(),
		Store:    h.store,
		Logger:   slog.New(slog.DiscardHandler),
		Observer: h.events,
		Owner:    owner,
		// Owners of earlier "processes" of a test are gone by definition.
		Alive: func(o runs.Owner) runs.Liveness {
			if o == owner {
				return runs.Alive
			}
			return runs.Dead
		},
	})
	if err != nil {
		h.t.Fatal(err)
	}
	h.eng = eng
}

func testPolicy(mutate func(*orchestrator.Policy)) orchestrator.Policy {
	p := orchestrator.DefaultPolicy()
	p.PollInterval = orchestrator.Duration(2 * time.Second)
	if mutate != nil {
		mutate(&p)
	}
	return p
}

// start prepares and starts a run.
func (h *harness) start(ctx context.Context, p orchestrator.Policy) string {
	h.t.Helper()
	prep, err := h.eng.Prepare(ctx, p)
	if err != nil {
		h.t.Fatalf("Prepare: %v", err)
	}
	id, err := h.eng.Start(ctx, prep)
	if err != nil {
		h.t.Fatalf("Start: %v", err)
	}
	return id
}

// apply runs a whole run and returns its report.
func (h *harness) apply(ctx context.Context, p orchestrator.Policy) (report.Report, error) {
	h.t.Helper()
	id := h.start(ctx, p)
	_, err := h.eng.Execute(ctx, id)
	return h.report(id), err
}

func (h *harness) lastReport() report.Report { return h.report(h.last) }

func (h *harness) report(id string) report.Report {
	h.t.Helper()
	r, err := h.store.Run(id)
	if err != nil {
		h.t.Fatal(err)
	}
	nodes, err := h.store.Nodes(id)
	if err != nil {
		h.t.Fatal(err)
	}
	return report.Build(r, nodes)
}

func (h *harness) inventory() cluster.Inventory {
	h.t.Helper()
	inv, err := h.drv.Inventory(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	return inv
}

func (h *harness) stats() sim.Stats {
	h.t.Helper()
	st, err := h.drv.Stats(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	return st
}

func (h *harness) node(rep report.Report, name string) report.Node {
	h.t.Helper()
	for _, n := range rep.Nodes {
		if n.Name == name {
			return n
		}
	}
	h.t.Fatalf("node %s not in report", name)
	return report.Node{}
}

// checkSafety asserts the invariants every run must keep, whatever happened:
// the same VMs exist, every VM that ran still runs (unless the test says it may
// not), no running VM was killed by a reboot, no node is left paused except those
// the report names, no placement was refused by the platform (capacity, paused
// targets), no hard anti-affinity was broken, and no VM left the same node twice.
func (h *harness) checkSafety(rep report.Report, allowStopped ...string) {
	h.t.Helper()
	inv := h.inventory()
	st := h.stats()
	if st.VMsKilledByReboot != 0 {
		h.t.Errorf("%d running VMs were killed by a reboot: %+v", st.VMsKilledByReboot, st.KilledVMs)
	}
	if st.SuspendedLostByReboot != 0 {
		h.t.Errorf("%d suspended VMs lost their saved state to a reboot", st.SuspendedLostByReboot)
	}
	for _, v := range st.Violations {
		h.t.Errorf("platform rule broken: %+v", v)
	}
	for _, r := range st.Rejections {
		if r.Op == "migrate" {
			h.t.Errorf("platform refused a migration drover asked for: %+v", r)
		}
	}
	var beforeNames, afterNames []string
	for _, v := range h.before.VMs {
		beforeNames = append(beforeNames, v.Name)
	}
	for _, v := range inv.VMs {
		afterNames = append(afterNames, v.Name)
	}
	sort.Strings(beforeNames)
	sort.Strings(afterNames)
	if fmt.Sprint(beforeNames) != fmt.Sprint(afterNames) {
		h.t.Errorf("VM set changed:\nbefore %v\nafter  %v", beforeNames, afterNames)
	}
	allowed := map[string]bool{}
	for _, v := range allowStopped {
		allowed[v] = true
	}
	for _, before := range h.before.VMs {
		after, _ := inv.VM(before.Name)
		if before.Running() && !after.Running() && !allowed[before.Name] {
			h.t.Errorf("vm %s ran before the run and is %s after it", before.Name, after.Power)
		}
		if after.MigratingTo != "" {
			h.t.Errorf("vm %s is still migrating to %s after the run", after.Name, after.MigratingTo)
		}
	}
	leftPaused := map[string]bool{}
	for _, n := range rep.Summary.LeftPaused {
		leftPaused[n] = true
	}
	for _, n := range inv.Nodes {
		if n.Paused && !leftPaused[n.Name] {
			h.t.Errorf("node %s is left paused and the report does not say so", n.Name)
		}
	}
	for _, g := range hardGroups(inv) {
		h.t.Errorf("hard anti-affinity broken after the run: %s", g)
	}
	moves := map[string]int{}
	for _, m := range st.Migrations {
		if m.OK {
			moves[m.VM+" from "+m.From]++
		}
	}
	for k, c := range moves {
		if c > 1 {
			h.t.Errorf("vm %s %d times: a VM was moved off the same node twice", k, c)
		}
	}
}

// hardGroups lists hard anti-affinity groups with two running VMs on one node.
func hardGroups(inv cluster.Inventory) []string {
	seen := map[string]string{}
	var bad []string
	for _, v := range inv.VMs {
		if v.AntiAffinity == "" || !v.AntiAffinityHard || !v.Running() {
			continue
		}
		key := v.AntiAffinity + "@" + v.Node
		if other, ok := seen[key]; ok {
			bad = append(bad, fmt.Sprintf("%s and %s on %s", other, v.Name, v.Node))
		}
		seen[key] = v.Name
	}
	return bad
}
