package bench

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/drivers/sim"
	"github.com/droverhq/drover/orchestrator"
	"github.com/droverhq/drover/policies"
)

// retries is policy.retries_per_node's default: a VM's migration is tried 1+3 times.
const retries = 3

// minRecheck keeps a scheduler's recheck hint from stepping the model in slivers.
const minRecheck = 50 * time.Millisecond

// Outcome is what one strategy did on one scenario, in model time.
type Outcome struct {
	// DrainSeconds is the makespan of the first batch of nodes' drain (one node
	// unless the scenario patches several at once), from the first pause to the last
	// VM landing. DrainedNodes names the batch.
	DrainSeconds float64
	DrainedNodes []string
	// DrainMiB is what the batch's migrations sent, failed attempts included.
	DrainMiB float64
	// RunSeconds is the whole rolling run: every node paused, drained, patched,
	// rebooted and resumed, ParallelNodes at a time when the reserve allows.
	RunSeconds float64
	// RunMiB is what every migration of the run sent.
	RunMiB float64
	// Migrations counts successful migrations; VMsMoved the distinct VMs moved.
	Migrations, VMsMoved int
	// FailedMigrations counts attempts that did not complete (not converged).
	FailedMigrations int
	// NodesFailed counts nodes left unpatched (a VM could not move).
	NodesFailed int
	// Rejections counts migrations the platform refused (never expected).
	Rejections int
	// PeakPerNode is the most migrations seen at once into or out of one node.
	PeakPerNode int
	// MaxParallelNodes is the most nodes that were in maintenance at once.
	MaxParallelNodes int
}

// MigrationsPerVM is Migrations / VMsMoved (each VM moved once is 1.0).
func (o Outcome) MigrationsPerVM() float64 {
	if o.VMsMoved == 0 {
		return 0
	}
	return float64(o.Migrations) / float64(o.VMsMoved)
}

// node phases of the simulated run.
const (
	phQueued = iota
	phDraining
	phRebooting
	phDone
)

type bnode struct {
	name    string
	phase   int
	queue   []policies.DrainJob
	tries   map[string]int
	failed  bool
	drainAt time.Time // when its drain began
	batch   bool      // part of the first batch
	boot    string
}

type bflight struct {
	id   string
	job  policies.DrainJob
	to   string
	node *bnode
}

// runner plays a rolling run on the model in virtual time with the same decisions
// as the engine: node order, placement (patched nodes first), the reserve gate for
// parallel nodes and the drain scheduler.
type runner struct {
	m        *sim.Model
	sc       Scenario
	strategy string
	opts     policies.DrainOptions
	placer   *policies.Placer
	rank     map[string]int // the placer's ranks: patched 0, outside the run 1, queued 2
	links    map[string]policies.Link
	order    []string
	nodes    map[string]*bnode
	flights  map[string]*bflight
	out      Outcome
	start    time.Time
	batchEnd time.Time
	maint    int // nodes in maintenance now
}

// Run plays scenario sc under strategy st from a fresh model.
func Run(sc Scenario, st Strategy) (Outcome, error) {
	r, err := newRunner(sc, st)
	if err != nil {
		return Outcome{}, err
	}
	return r.run()
}

func newRunner(sc Scenario, st Strategy) (*runner, error) {
	m, err := sim.NewModel(sc.Cluster, time.Time{})
	if err != nil {
		return nil, err
	}
	inv := m.Inventory()
	order, err := runOrder(inv)
	if err != nil {
		return nil, err
	}
	r := &runner{
		m: m, sc: sc, opts: st.Drain, links: policies.LinksOf(inv), order: order,
		nodes: map[string]*bnode{}, flights: map[string]*bflight{}, start: m.Now(),
	}
	rank := map[string]int{}
	for _, n := range order {
		rank[n] = 2
		r.nodes[n] = &bnode{name: n, tries: map[string]int{}}
	}
	r.placer = policies.NewPlacer(inv, policies.PlacementOptions{Rank: rank, Unavailable: map[string]string{}})
	r.rank = rank
	r.strategy = st.Name
	return r, nil
}

func (r *runner) run() (Outcome, error) {
	if err := r.loop(); err != nil {
		return r.out, fmt.Errorf("scenario %s, strategy %s: %w", r.sc.Name, r.strategy, err)
	}
	stats := r.m.Stats()
	moved := map[string]bool{}
	for _, rec := range stats.Migrations {
		r.out.RunMiB += rec.TransferredMiB
		if rec.OK {
			r.out.Migrations++
			moved[rec.VM] = true
		} else {
			r.out.FailedMigrations++
		}
	}
	r.out.VMsMoved = len(moved)
	r.out.Rejections = len(stats.Rejections)
	for _, p := range stats.PeakMigrations {
		r.out.PeakPerNode = max(r.out.PeakPerNode, p)
	}
	return r.out, nil
}

// runOrder is the engine's default node order (policy.node_order).
func runOrder(inv cluster.Inventory) ([]string, error) {
	strategy, err := policies.ParseOrderStrategy(orchestrator.DefaultPolicy().NodeOrder)
	if err != nil {
		return nil, err
	}
	order, _, err := policies.OrderNodes(inv, policies.OrderOptions{Strategy: strategy})
	return order, err
}

func (r *runner) loop() error {
	next := 0
	for {
		next = r.admitNodes(next)
		recheck := r.schedule()
		if r.finishDrains() {
			continue // a node was resumed at once: the next may start now
		}
		if next >= len(r.order) && r.maint == 0 && len(r.flights) == 0 {
			r.out.RunSeconds = r.m.Now().Sub(r.start).Seconds()
			return nil
		}
		if err := r.advance(recheck); err != nil {
			return err
		}
		r.collect()
		r.finishReboots()
	}
}

// admitNodes starts the next nodes of the order while fewer than ParallelNodes are
// in maintenance and the reserve (k=ReserveK; 0: capacity) holds with all of them
// out: the rule of the engine's loop.
func (r *runner) admitNodes(next int) int {
	for next < len(r.order) && r.maint < max(r.sc.ParallelNodes, 1) {
		name := r.order[next]
		if r.maint > 0 {
			var out []string
			for _, n := range r.order {
				if p := r.nodes[n].phase; p == phDraining || p == phRebooting {
					out = append(out, n)
				}
			}
			res := policies.ReserveCheck(r.m.Inventory(), r.sc.ReserveK, append(out, name), policies.ReserveOptions{})
			if !res.Holds {
				return next
			}
		}
		r.placer.SetUnavailable(name, "in maintenance")
		for _, f := range r.flights {
			if f.to == name {
				return next // wait until nothing moves to it any more
			}
		}
		n := r.nodes[name]
		if _, err := r.m.PauseNode(name, ""); err != nil {
			n.failed = true
		}
		n.phase, n.drainAt, n.boot = phDraining, r.m.Now(), r.bootID(name)
		n.batch = r.m.Now().Equal(r.start)
		if n.batch {
			r.out.DrainedNodes = append(r.out.DrainedNodes, name)
		}
		for _, v := range r.m.Inventory().VMsOn(name) {
			if v.Running() && v.Migratable {
				n.queue = append(n.queue, policies.DrainJob{VM: v})
			}
		}
		r.maint++
		r.out.MaxParallelNodes = max(r.out.MaxParallelNodes, r.maint)
		next++
	}
	return next
}

func (r *runner) bootID(name string) string {
	n, _ := r.m.Node(name)
	return n.BootID
}

// view is the run's migrations in flight as the scheduler sees them: exact rates
// and remaining amounts (a driver with perfect progress reports).
func (r *runner) view() policies.DrainView {
	v := policies.DrainView{Links: r.links}
	for _, id := range r.flightIDs() {
		f := r.flights[id]
		st, _ := r.m.Migration(id)
		v.Flights = append(v.Flights, policies.Flight{
			VM: f.job.VM.Name, From: f.job.VM.Node, To: f.to, MemoryMiB: f.job.VM.MemoryMiB,
			DirtyMiBs: f.job.VM.DirtyMiBs, Setup: st.Phase == sim.PhaseSetup,
			RemainingMiB: st.RemainingMiB, RateMiBs: st.RateMiBs,
		})
	}
	return v
}

func (r *runner) flightIDs() []string {
	ids := make([]string, 0, len(r.flights))
	for id := range r.flights {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// schedule asks the drain scheduler, node by node in order, what to start, and
// starts it. It returns the earliest recheck hint.
func (r *runner) schedule() time.Duration {
	var recheck time.Duration
	for _, name := range r.order {
		n := r.nodes[name]
		if n.phase != phDraining || len(n.queue) == 0 || n.failed {
			continue
		}
		v := r.view()
		v.WaitingMiB = map[string]float64{}
		for _, other := range r.nodes {
			if other != n && other.phase == phDraining && !other.failed {
				for _, j := range other.queue {
					v.WaitingMiB[other.name] += float64(j.VM.MemoryMiB)
				}
			}
		}
		dec := r.opts.Decide(v, n.queue, rankedPlacer{r.placer, r.rank})
		started := map[string]bool{}
		for _, s := range dec.Start {
			st, _, err := r.m.StartMigration(s.Job.VM.Name, s.Job.VM.Node, s.To)
			if err != nil {
				r.placer.Cancel(s.Job.VM, s.To)
				continue
			}
			started[s.Job.VM.Name] = true
			r.flights[st.ID] = &bflight{id: st.ID, job: s.Job, to: s.To, node: n}
		}
		if len(dec.NoTarget) > 0 {
			n.failed = true // the engine fails the node: its VMs stay
		}
		n.queue = slices.DeleteFunc(n.queue, func(j policies.DrainJob) bool { return started[j.VM.Name] })
		if dec.RecheckSeconds > 0 {
			d := max(time.Duration(dec.RecheckSeconds*float64(time.Second)), minRecheck)
			if recheck == 0 || d < recheck {
				recheck = d
			}
		}
	}
	return recheck
}

// advance moves the model to its next event, or to the recheck time if earlier.
func (r *runner) advance(recheck time.Duration) error {
	t, ok := r.m.NextEventTime()
	if recheck > 0 {
		at := r.m.Now().Add(recheck)
		if !ok || at.Before(t) {
			t, ok = at, true
		}
	}
	if !ok {
		return errors.New("the run stalled: nothing in flight and nothing can start")
	}
	r.m.AdvanceTo(t)
	return nil
}

// collect settles the migrations that ended: a failed one is retried (up to
// retries) or fails its node.
func (r *runner) collect() {
	for _, id := range r.flightIDs() {
		f := r.flights[id]
		st, _ := r.m.Migration(id)
		if !st.Done() {
			continue
		}
		delete(r.flights, id)
		if f.node.batch && f.node.phase == phDraining {
			r.out.DrainMiB += st.TransferredMiB
		}
		if st.Phase == sim.PhaseCompleted {
			continue
		}
		r.placer.Cancel(f.job.VM, f.to)
		f.node.tries[f.job.VM.Name]++
		if f.node.tries[f.job.VM.Name] > retries {
			f.node.failed = true
			continue
		}
		f.node.queue = append(f.node.queue, f.job)
	}
}

// finishDrains patches the nodes whose drain ended: install, reboot. A failed
// node is resumed unpatched; it reports whether one was.
func (r *runner) finishDrains() (resumed bool) {
	for _, name := range r.order {
		n := r.nodes[name]
		if n.phase != phDraining || r.inFlight(n) {
			continue
		}
		if len(n.queue) > 0 && !n.failed {
			continue
		}
		if n.batch {
			r.batchEnd = r.m.Now()
			r.out.DrainSeconds = math.Max(r.out.DrainSeconds, r.m.Now().Sub(n.drainAt).Seconds())
		}
		if !n.failed {
			if _, err := r.m.InstallUpdates(name); err == nil {
				if _, err := r.m.RebootNode(name); err == nil {
					n.phase = phRebooting
					continue
				}
			}
		}
		r.out.NodesFailed++
		r.resume(n)
		resumed = true
	}
	return resumed
}

func (r *runner) inFlight(n *bnode) bool {
	for _, f := range r.flights {
		if f.node == n {
			return true
		}
	}
	return false
}

// finishReboots resumes the nodes that are back with a new boot.
func (r *runner) finishReboots() {
	for _, name := range r.order {
		n := r.nodes[name]
		if n.phase != phRebooting {
			continue
		}
		node, err := r.m.Node(name)
		if err != nil || !node.Ready() || node.BootID == n.boot {
			continue
		}
		r.resume(n)
		r.placer.SetRank(name, 0)
		r.rank[name] = 0
	}
}

// rankedPlacer tells the scheduler the placer's preferences.
type rankedPlacer struct {
	*policies.Placer
	rank map[string]int
}

func (p rankedPlacer) Rank(node string) int {
	if r, ok := p.rank[node]; ok {
		return r
	}
	return 1
}

func (r *runner) resume(n *bnode) {
	if _, err := r.m.ResumeNode(n.name); err == nil {
		r.placer.SetState(n.name, cluster.NodeUp, false)
	}
	r.placer.SetAvailable(n.name)
	n.phase = phDone
	r.maint--
}
