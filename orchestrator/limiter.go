package orchestrator

import (
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/drivers"
	"github.com/droverhq/drover/policies"
)

// Drain schedulers (policy.drain_scheduler).
const (
	// DrainAdaptive chooses how many migrations run from the bandwidth model and
	// the measured rates, within max_parallel_migrations and max_migrations_per_node.
	DrainAdaptive = string(policies.DrainAdaptive)
	// DrainFixed runs as many migrations as the two caps allow.
	DrainFixed = string(policies.DrainFixed)
)

// validateDrain checks the drain scheduler and node concurrency keys.
func (p Policy) validateDrain() []error {
	var errs []error
	if _, err := policies.ParseDrainMode(p.DrainScheduler); err != nil {
		errs = append(errs, drivers.Fieldf("policy.drain_scheduler", "use adaptive or fixed", "unknown scheduler %q", p.DrainScheduler))
	}
	if p.MaxParallelNodes < 1 {
		errs = append(errs, drivers.Fieldf("policy.max_parallel_nodes", "set 1 or more, e.g. 1 (one node at a time)", "must be at least 1, got %d", p.MaxParallelNodes))
	}
	return errs
}

// DrainOptions are the drain scheduler's options under this policy: the engine and
// `drover bench` decide with the same ones.
func (p Policy) DrainOptions() policies.DrainOptions {
	mode, err := policies.ParseDrainMode(p.DrainScheduler)
	if err != nil {
		mode = policies.DrainAdaptive
	}
	return policies.DrainOptions{Mode: mode, MaxParallel: p.MaxParallelMigrations, MaxPerNode: p.MaxMigrationsPerNode}
}

// limiter is the run's board of live migrations in flight, shared by every drain
// and failback of the run (several nodes may drain at once): each decision to start
// migrations is taken on all of them, under one lock, by the drain scheduler.
type limiter struct {
	opts policies.DrainOptions

	mu sync.Mutex
	// links are the scheduler's: reported merged with what samples taught.
	links map[string]policies.Link
	// reported are the links the inventory reports (platform or config).
	reported map[string]policies.Link
	// samples are the migrations of past runs and of this one, as measured.
	samples []policies.LinkSample
	flights map[string]*flight // by VM
	// claimed nodes take no migration: they are about to enter maintenance.
	claimed map[string]bool
	changed chan struct{} // closed and replaced whenever a flight ends or reports
}

// flight is one migration in flight with what its progress reports measured.
type flight struct {
	f policies.Flight
	// at is the cluster time of the last report; elapsed and transferred its values.
	at          time.Time
	elapsed     time.Duration
	transferred float64
	// streams is the most flights through its source or target at once while it
	// ran, itself included.
	streams int
}

// newLimiter starts a board that knows the link samples of past runs (history).
func newLimiter(opts policies.DrainOptions, history []policies.LinkSample) *limiter {
	l := &limiter{opts: opts, links: map[string]policies.Link{}, reported: map[string]policies.Link{},
		samples: history, flights: map[string]*flight{}, claimed: map[string]bool{}, changed: make(chan struct{})}
	l.links = policies.MergeLearned(l.reported, policies.LearnLinks(l.samples))
	return l
}

// setLinks records the nodes' links from a fresh inventory.
func (l *limiter) setLinks(links map[string]policies.Link) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, v := range links {
		l.reported[k] = v
	}
	l.links = policies.MergeLearned(l.reported, policies.LearnLinks(l.samples))
}

// countStreams updates every flight's peak of concurrent flights through its ends.
func (l *limiter) countStreams() {
	through := map[string]int{}
	for _, fl := range l.flights {
		through[fl.f.From]++
		through[fl.f.To]++
	}
	for _, fl := range l.flights {
		fl.streams = max(fl.streams, through[fl.f.From], through[fl.f.To])
	}
}

// done forgets vm's migration, which completed having moved mib in seconds (the
// job's own time): a sample of its link that the next decisions use (a drain
// adapts as its migrations complete). It returns the most streams that shared the
// migration's ends, for the record; 0 when vm was not on the board.
func (l *limiter) done(vm string, mib, seconds float64, at time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	fl, ok := l.flights[vm]
	if !ok {
		return 0
	}
	delete(l.flights, vm)
	if mib > 0 && seconds > 0 {
		l.samples = append(l.samples, policies.LinkSample{From: fl.f.From, To: fl.f.To, MiB: mib, Seconds: seconds, Streams: fl.streams, At: at})
		l.links = policies.MergeLearned(l.reported, policies.LearnLinks(l.samples))
	}
	l.notify()
	return fl.streams
}

func (l *limiter) hasLinks() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.links) > 0
}

// decide asks the scheduler which jobs start now and records those as flights,
// atomically with respect to every other drain of the run. The channel, handed out
// under the same lock as the decision, is closed by the next change of the board: a
// caller that waits on it cannot miss a release that came after the decision.
func (l *limiter) decide(now time.Time, jobs []policies.DrainJob, targets policies.TargetChooser, avoid map[string]bool) (policies.DrainDecision, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	view := policies.DrainView{Links: l.links, Flights: make([]policies.Flight, 0, len(l.flights)), Avoid: avoid}
	for _, fl := range l.flights {
		view.Flights = append(view.Flights, fl.estimate(now))
	}
	// A fixed order: the same run decides the same way.
	slices.SortFunc(view.Flights, func(a, b policies.Flight) int { return strings.Compare(a.VM, b.VM) })
	dec := l.opts.Decide(view, jobs, targets)
	for _, s := range dec.Start {
		l.flights[s.Job.VM.Name] = &flight{
			f:  policies.Flight{VM: s.Job.VM.Name, From: s.Job.VM.Node, To: s.To, MemoryMiB: s.Job.VM.MemoryMiB, DirtyMiBs: s.Job.VM.DirtyMiBs, Setup: true},
			at: now,
		}
	}
	l.countStreams()
	return dec, l.changed
}

// join records a migration already moving on the platform (found after a restart):
// it takes bandwidth whatever the scheduler would say.
func (l *limiter) join(now time.Time, vm cluster.VM, from, to string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.flights[vm.Name] = &flight{f: policies.Flight{VM: vm.Name, From: from, To: to, MemoryMiB: vm.MemoryMiB, DirtyMiBs: vm.DirtyMiBs, DiskMiB: vm.LocalDiskMiB(), Setup: true}, at: now}
	l.countStreams()
}

// progress records a progress report of vm's migration: its remaining amount and
// the rate measured since the previous report.
func (l *limiter) progress(now time.Time, vm string, p drivers.MigrationProgress) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fl := l.flights[vm]
	if fl == nil {
		return
	}
	moving := p.Phase == "precopy" || p.Phase == "stopcopy"
	if moving && !fl.f.Setup {
		if dt := (p.Elapsed - fl.elapsed).Seconds(); dt > 0 && p.TransferredMiB >= fl.transferred {
			fl.f.RateMiBs = (p.TransferredMiB - fl.transferred) / dt
		}
	}
	fl.f.Setup = !moving
	fl.f.RemainingMiB = p.RemainingMiB
	fl.at, fl.elapsed, fl.transferred = now, p.Elapsed, p.TransferredMiB
	// A new measurement may let the next migration start (one in flight nears its
	// end): the drains decide again.
	l.notify()
}

// notify wakes whoever waits on the board.
func (l *limiter) notify() {
	close(l.changed)
	l.changed = make(chan struct{})
}

// estimate extrapolates the flight to now: pre-copy shrinks what remains at
// (rate − dirty rate).
func (fl *flight) estimate(now time.Time) policies.Flight {
	f := fl.f
	if f.Setup || f.RateMiBs <= 0 || f.RemainingMiB <= 0 {
		return f
	}
	dt := now.Sub(fl.at).Seconds()
	if dt > 0 {
		f.RemainingMiB = math.Max(1, f.RemainingMiB-(f.RateMiBs-f.DirtyMiBs)*dt)
	}
	return f
}

// release forgets vm's migration.
func (l *limiter) release(vm string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.flights[vm]; !ok {
		return
	}
	delete(l.flights, vm)
	l.notify()
}

// claim makes node take no further migration and reports whether none is still
// moving to it; when one is, the channel (handed out under the same lock as the
// answer) is closed by the next change of the board. unclaim lifts the claim.
func (l *limiter) claim(node string) (clear bool, changed <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.claimed[node] = true
	for _, fl := range l.flights {
		if fl.f.To == node {
			return false, l.changed
		}
	}
	return true, nil
}

// claimedNodes returns the claimed nodes that have not entered maintenance yet
// (later their state keeps migrations away, and once back they are targets again).
func (l *limiter) claimedNodes(rs *runState) map[string]bool {
	l.mu.Lock()
	claimed := make([]string, 0, len(l.claimed))
	for n := range l.claimed {
		claimed = append(claimed, n)
	}
	l.mu.Unlock()
	out := map[string]bool{}
	for _, n := range claimed {
		if rs.node(n).State == NodeQueued {
			out[n] = true
		}
	}
	return out
}

func (l *limiter) unclaim(node string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.claimed, node)
}

// wait returns a channel closed when a flight next ends or reports progress.
func (l *limiter) wait() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.changed
}

// runPlacer is the run's one placement model, shared by the drains that run at once
// so that two of them never overcommit a target. It is rebuilt from a fresh
// inventory only when no drain or failback uses it (nothing placed is pending
// then), else brought up to date: node states, maintenance and preference.
type runPlacer struct {
	mu    sync.Mutex
	p     *policies.Placer
	users int
}

// acquire returns the shared placer up to date with inv and opts, for a drain pass;
// release it when the pass's migrations are over.
func (rp *runPlacer) acquire(inv cluster.Inventory, opts policies.PlacementOptions) (*policies.Placer, func()) {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	rp.users++
	if rp.p == nil || rp.users == 1 {
		rp.p = policies.NewPlacer(inv, opts)
		return rp.p, rp.release
	}
	for _, n := range inv.Nodes {
		rp.p.SetState(n.Name, n.State, n.Paused)
		if reason, ok := opts.Unavailable[n.Name]; ok {
			rp.p.SetUnavailable(n.Name, reason)
		} else {
			rp.p.SetAvailable(n.Name)
		}
		rank, ok := opts.Rank[n.Name]
		if !ok {
			rank = 1
		}
		rp.p.SetRank(n.Name, rank)
	}
	return rp.p, rp.release
}

// hold returns the shared placer as it is (nil before the first drain), kept from
// being rebuilt until release.
func (rp *runPlacer) hold() (*policies.Placer, func()) {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	rp.users++
	return rp.p, rp.release
}

func (rp *runPlacer) release() {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	rp.users--
}

// current returns the shared placer, nil before the first drain built it.
func (rp *runPlacer) current() *policies.Placer {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	return rp.p
}
