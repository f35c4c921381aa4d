// Over 600 lines: the drain scheduler's decision (caps, link model, convergence, rechecks) is one algorithm read top to bottom; its model lives in drainsched_model.go.

package policies

import (
	"cmp"
	"errors"
	"math"
	"slices"

	"github.com/droverhq/drover/cluster"
)

// DrainMode selects how the drain scheduler chooses how many migrations run at once.
type DrainMode string

const (
	// DrainAdaptive starts a migration only when the bandwidth model predicts that it
	// shortens the drain and that it, and every migration it slows down, still
	// converges at its bandwidth share. The hard caps apply on top. The default.
	DrainAdaptive DrainMode = "adaptive"
	// DrainFixed starts migrations up to the hard caps, whatever the bandwidth: the
	// behaviour of the field's tools (2 per host, 8 per host, 1 per source).
	DrainFixed DrainMode = "fixed"
)

// ParseDrainMode checks a mode name; "" is DrainAdaptive.
func ParseDrainMode(s string) (DrainMode, error) {
	switch DrainMode(s) {
	case "", DrainAdaptive:
		return DrainAdaptive, nil
	case DrainFixed:
		return DrainFixed, nil
	}
	return "", fieldf("drain.mode", "use adaptive or fixed", "unknown drain scheduler %q", s)
}

// Defaults of DrainOptions.
const (
	DefaultDrainSetupSeconds  = 2.0
	DefaultMaxDowntimeSeconds = 0.3
	DefaultDrainMaxRounds     = 30
	DefaultMaxDirtyRatio      = 0.8
	// DefaultNICMbps is assumed for nodes that report no migration bandwidth.
	DefaultNICMbps = 1000.0
	// DefaultUnknownLinkPerNode is the concurrency on links whose bandwidth the
	// platform does not report: Hyper-V's and VMM's default of 2 per host.
	DefaultUnknownLinkPerNode = 2
)

// DrainOptions configure DrainOptions.Decide. Zero values take the defaults; zero caps
// mean no cap.
type DrainOptions struct {
	Mode DrainMode `json:"mode,omitempty"`
	// MaxParallel caps migrations in flight in the whole run (a hard cap).
	MaxParallel int `json:"max_parallel,omitempty"`
	// MaxPerNode caps migrations in flight into or out of one node (a hard cap).
	MaxPerNode int `json:"max_per_node,omitempty"`
	// MaxPerSource caps migrations out of one node (Nova's 1 per source host).
	MaxPerSource int `json:"max_per_source,omitempty"`
	// SetupSeconds is the expected cost of a migration before memory moves: a new
	// migration may start that long before one in flight is predicted to end, so the
	// link does not idle while it sets up. Default 2.
	SetupSeconds float64 `json:"setup_seconds,omitempty"`
	// MaxDowntimeSeconds is the platform's stop-and-copy budget and MaxRounds its
	// pre-copy round limit: with them the scheduler predicts whether a migration
	// converges at a share. Defaults 0.3 s and 30 (QEMU's, the simulator's).
	MaxDowntimeSeconds float64 `json:"max_downtime_seconds,omitempty"`
	MaxRounds          int     `json:"max_rounds,omitempty"`
	// MaxDirtyRatio is the highest dirty rate / bandwidth share a migration may run
	// at: a margin for rates that vary. Default 0.8.
	MaxDirtyRatio float64 `json:"max_dirty_ratio,omitempty"`
	// DefaultNICMbps is the bandwidth of nodes that report none. Default 1000.
	DefaultNICMbps float64 `json:"default_nic_mbps,omitempty"`
	// UnknownLinkPerNode: the adaptive mode cannot model a migration whose source or
	// target reports no bandwidth (a guessed NIC makes every extra stream look
	// useless, and on real hosts much of a migration is fixed cost that overlaps).
	// Such migrations run like the field's tools do: up to this many into or out of
	// a node, within the hard caps. Default 2.
	UnknownLinkPerNode int `json:"unknown_link_per_node,omitempty"`
}

func (o DrainOptions) withDefaults() DrainOptions {
	if o.Mode == "" {
		o.Mode = DrainAdaptive
	}
	if o.SetupSeconds <= 0 {
		o.SetupSeconds = DefaultDrainSetupSeconds
	}
	if o.MaxDowntimeSeconds <= 0 {
		o.MaxDowntimeSeconds = DefaultMaxDowntimeSeconds
	}
	if o.MaxRounds <= 0 {
		o.MaxRounds = DefaultDrainMaxRounds
	}
	if o.MaxDirtyRatio <= 0 || o.MaxDirtyRatio >= 1 {
		o.MaxDirtyRatio = DefaultMaxDirtyRatio
	}
	if o.DefaultNICMbps <= 0 {
		o.DefaultNICMbps = DefaultNICMbps
	}
	if o.UnknownLinkPerNode <= 0 {
		o.UnknownLinkPerNode = DefaultUnknownLinkPerNode
	}
	return o
}

// Validate reports options that cannot be right.
func (o DrainOptions) Validate() error {
	var errs []error
	if _, err := ParseDrainMode(string(o.Mode)); err != nil {
		errs = append(errs, err)
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"max_parallel", o.MaxParallel}, {"max_per_node", o.MaxPerNode}, {"max_per_source", o.MaxPerSource}, {"max_rounds", o.MaxRounds}} {
		if f.v < 0 {
			errs = append(errs, fieldf("drain."+f.name, "use 0 (no cap / default) or a positive number", "%d is negative", f.v))
		}
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"setup_seconds", o.SetupSeconds}, {"max_downtime_seconds", o.MaxDowntimeSeconds}, {"default_nic_mbps", o.DefaultNICMbps}} {
		if f.v < 0 || math.IsNaN(f.v) || math.IsInf(f.v, 0) {
			errs = append(errs, fieldf("drain."+f.name, "use 0 for the default or a positive number", "%v is not valid", f.v))
		}
	}
	if r := o.MaxDirtyRatio; r < 0 || r >= 1 || math.IsNaN(r) {
		errs = append(errs, fieldf("drain.max_dirty_ratio", "use 0 for the default (0.8) or a ratio below 1", "%v is not valid", r))
	}
	return errors.Join(errs...)
}

// Link is one node's migration link in MiB/s: NIC is shared by every migration into
// and out of the node, Stream caps one migration from or to it. 0 means unknown.
type Link struct {
	NICMiBs    float64 `json:"nic_mib_s"`
	StreamMiBs float64 `json:"stream_mib_s"`
}

// LinksOf reads the links the inventory reports.
func LinksOf(inv cluster.Inventory) map[string]Link {
	out := make(map[string]Link, len(inv.Nodes))
	for _, n := range inv.Nodes {
		out[n.Name] = Link{NICMiBs: mbpsToMiBs(n.NICMbps), StreamMiBs: mbpsToMiBs(n.StreamMbps)}
	}
	return out
}

// Flight is a migration in flight, as measured.
type Flight struct {
	VM        string  `json:"vm"`
	From      string  `json:"from"`
	To        string  `json:"to"`
	MemoryMiB int64   `json:"memory_mib"`
	DirtyMiBs float64 `json:"dirty_mib_s"`
	// DiskMiB is the size of the local disks that move with the VM.
	DiskMiB int64 `json:"disk_mib,omitempty"`
	// Setup is true while no memory moves yet.
	Setup bool `json:"setup"`
	// RemainingMiB is what is still to send (0 = unknown: the memory).
	RemainingMiB float64 `json:"remaining_mib"`
	// RateMiBs is the measured current rate (0 = unknown: the model's share).
	RateMiBs float64 `json:"rate_mib_s"`
}

// DrainJob is a VM waiting to move off VM.Node.
type DrainJob struct {
	VM cluster.VM `json:"vm"`
	// To is a fixed target (failback, a migration to join); "" lets the chooser pick.
	To string `json:"to,omitempty"`
}

// TargetChooser picks targets and takes them back; *Placer is one.
type TargetChooser interface {
	Place(vm cluster.VM, avoid map[string]bool) (string, error)
	Cancel(vm cluster.VM, target string)
}

// Ranker is implemented by choosers that prefer some targets (lower is better, as
// PlacementOptions.Rank). With it, Decide does not give a VM a worse-ranked target
// because its preferred one is busy: the VM waits, so that it is not moved twice
// (a VM put on a node not yet patched moves again when that node is drained).
type Ranker interface {
	Rank(node string) int
}

// DrainView is what a decision is taken on: the links and every migration in flight
// in the run (all drains share the links).
type DrainView struct {
	Links   map[string]Link
	Flights []Flight
	// WaitingMiB is the memory of the VMs other drains of the run still have to
	// move, per source node (not counting the jobs given to Decide): a source with
	// work waiting gets its fair part of MaxParallel.
	WaitingMiB map[string]float64
	// Avoid are nodes the chooser must not be given as targets now (about to enter
	// maintenance); fixed targets are deliberate and exempt. The chooser should
	// know them as unavailable too: Decide refuses them but does not hide them from
	// the chooser (a chooser following a plan falls back to another target when its
	// planned one refuses).
	Avoid map[string]bool
}

// DrainStart is a migration to start now.
type DrainStart struct {
	Job DrainJob
	To  string
	// ShareMiBs and Seconds are the predicted bandwidth share and duration (adaptive).
	ShareMiBs float64
	Seconds   float64
	// Hopeless: the VM does not converge even alone on the link; it is started only
	// when nothing else shares its source or target, its best chance.
	Hopeless bool
}

// DrainNoTarget is a job no node can take.
type DrainNoTarget struct {
	Job DrainJob
	Err error
}

// DrainDecision is what to do now.
type DrainDecision struct {
	Start    []DrainStart
	NoTarget []DrainNoTarget
	// Deferred counts the jobs kept for later.
	Deferred int
	// RecheckSeconds > 0: the decision may change after that long although no
	// migration ended (one in flight comes within SetupSeconds of its end): decide
	// again then. 0: decide again when a migration ends.
	RecheckSeconds float64
}

// refusal says why a candidate migration cannot start now.
type refusal int

const (
	admitted     refusal = iota
	capGlobal            // the run's cap: nothing more can start
	capSource            // the source's caps or bandwidth: nothing more from it
	capTarget            // this target's caps or bandwidth: try another target
	busyHopeless         // a hopeless VM waits until it has the link to itself
)

// Order sorts jobs longest first by their predicted duration at their best share, so
// that the drain does not end on one long straggler (LPT); ties by VM name.
func (o DrainOptions) Order(jobs []DrainJob, links map[string]Link) []DrainJob {
	o = o.withDefaults()
	type keyed struct {
		j DrainJob
		t float64
	}
	ks := make([]keyed, len(jobs))
	for i, j := range jobs {
		src := o.link(links, j.VM.Node)
		best := nicOr(src, o)
		if src.StreamMiBs > 0 {
			best = min(best, src.StreamMiBs)
		}
		if j.To != "" {
			best = o.pairCap(links, j.VM.Node, j.To)
		}
		ks[i] = keyed{j, o.moveSeconds(j.VM, best)}
	}
	slices.SortStableFunc(ks, func(a, b keyed) int {
		if c := cmp.Compare(b.t, a.t); c != 0 {
			return c
		}
		return cmp.Compare(a.j.VM.Name, b.j.VM.Name)
	})
	out := make([]DrainJob, len(ks))
	for i, k := range ks {
		out[i] = k.j
	}
	return out
}

// Decide chooses which jobs start now and where, given every migration in flight in
// the run. Jobs are taken longest first (Order). Targets come from targets (a
// placement it makes and Decide does not keep is cancelled); a job whose target is
// fixed is checked on that target.
//
// Both modes respect the hard caps (MaxParallel, MaxPerNode, MaxPerSource). The
// adaptive mode starts a migration from S to T only when
//
//  1. it, and every migration it slows down, still converge at their predicted
//     bandwidth shares (max-min fair over the NIC pools and stream caps): dirty
//     rate / share <= MaxDirtyRatio and pre-copy rounds <= MaxRounds; and
//  2. more streams shorten the predicted drain at S and at T: a fluid model of a
//     node's work (what its migrations in flight still have to send, then its
//     waiting VMs longest first, each paying setup) with at most k at once, the
//     NIC shared evenly among those transferring up to the stream cap, each VM
//     retiring memory at (share − dirty rate); some k' > k (the running ones)
//     must end earlier than k.
//
// Migrations predicted to end within SetupSeconds do not count in either test, so
// their successors set up meanwhile and the link does not idle. A VM that does not
// converge even alone is started only when nothing else uses its source or target.
// When several drains run at once (WaitingMiB) they share MaxParallel evenly.
func (o DrainOptions) Decide(view DrainView, jobs []DrainJob, targets TargetChooser) DrainDecision {
	o = o.withDefaults()
	st := newSchedState(o, view)
	ordered := o.Order(jobs, st.links)
	st.pending = append(st.pending, ordered...)
	var dec DrainDecision
	blocked := map[string]bool{} // sources that take nothing more now
	for i, j := range ordered {
		if st.full() {
			dec.Deferred += len(ordered) - i
			break
		}
		src := j.VM.Node
		if blocked[src] {
			dec.Deferred++
			continue
		}
		start, why, err := st.try(j, targets)
		switch {
		case err != nil:
			dec.NoTarget = append(dec.NoTarget, DrainNoTarget{Job: j, Err: err})
			st.done[j.VM.Name] = true
		case why == admitted:
			dec.Start = append(dec.Start, start)
			st.done[j.VM.Name] = true
		default:
			dec.Deferred++
			if why == capSource || why == capGlobal {
				blocked[src] = true
			}
		}
	}
	if o.Mode == DrainAdaptive && dec.Deferred > 0 {
		dec.RecheckSeconds = st.recheck()
	}
	return dec
}

// schedState is the run's migrations during one decision, with those it starts.
type schedState struct {
	o     DrainOptions
	links map[string]Link
	// reported are the links as the platform reported them (links is calibrated
	// with measurements).
	reported map[string]Link
	flights  []Flight
	avoid    map[string]bool
	waiting  map[string]float64
	// pending are the jobs of this decision, done those started or given up.
	pending []DrainJob
	done    map[string]bool
	// out and in count the flights out of and into each node.
	out, in map[string]int
}

func newSchedState(o DrainOptions, view DrainView) *schedState {
	st := &schedState{o: o, links: calibrate(o, view), reported: view.Links, avoid: view.Avoid, waiting: view.WaitingMiB,
		done: map[string]bool{}, out: map[string]int{}, in: map[string]int{}}
	for _, f := range view.Flights {
		st.add(f)
	}
	return st
}

func (st *schedState) add(f Flight) {
	st.flights = append(st.flights, f)
	st.out[f.From]++
	st.in[f.To]++
}

func (st *schedState) full() bool {
	return st.o.MaxParallel > 0 && len(st.flights) >= st.o.MaxParallel
}

// perNode is the count of migrations into or out of node.
func (st *schedState) perNode(node string) int { return st.out[node] + st.in[node] }

// try places j and checks it, trying up to three targets when a target is the
// reason for a refusal.
func (st *schedState) try(j DrainJob, targets TargetChooser) (DrainStart, refusal, error) {
	src := j.VM.Node
	if st.full() {
		return DrainStart{}, capGlobal, nil
	}
	if c := st.o.MaxPerNode; c > 0 && st.perNode(src) >= c {
		return DrainStart{}, capSource, nil
	}
	if c := st.o.MaxPerSource; c > 0 && st.out[src] >= c {
		return DrainStart{}, capSource, nil
	}
	if st.overShare(src) {
		return DrainStart{}, capSource, nil
	}
	if j.To != "" {
		start, why := st.admit(j, j.To)
		if why == capTarget {
			why = capSource // a fixed target has no alternative: wait
		}
		return start, why, nil
	}
	avoid := st.busyTargets()
	ranker, ranked := targets.(Ranker)
	best := math.MaxInt
	if ranked {
		// The preferred target, busy or not: a busy one means waiting.
		to, err := targets.Place(j.VM, nil)
		if err != nil && !errors.Is(err, ErrTargetsBusy) {
			return DrainStart{}, admitted, err
		}
		if err == nil {
			best = ranker.Rank(to)
			targets.Cancel(j.VM, to)
		}
	}
	for range 3 {
		to, err := targets.Place(j.VM, avoid)
		if errors.Is(err, ErrTargetsBusy) {
			return DrainStart{}, capTarget, nil
		}
		if err != nil {
			return DrainStart{}, admitted, err
		}
		if ranked && ranker.Rank(to) > best {
			targets.Cancel(j.VM, to)
			return DrainStart{}, capTarget, nil
		}
		start, why := st.admit(j, to)
		if why == admitted {
			return start, admitted, nil
		}
		targets.Cancel(j.VM, to)
		if why != capTarget {
			return DrainStart{}, why, nil
		}
		avoid[to] = true
	}
	return DrainStart{}, capTarget, nil
}

// overShare reports whether src holds its fair part of the run's cap while another
// source with VMs waiting holds less: several drains at once split MaxParallel
// evenly, so that no node's drain lags behind the others.
func (st *schedState) overShare(src string) bool {
	if st.o.MaxParallel <= 0 || len(st.waiting) == 0 {
		return false
	}
	sources := map[string]bool{src: true}
	for n, w := range st.waiting {
		if w > 0 {
			sources[n] = true
		}
	}
	for n, c := range st.out {
		if c > 0 {
			sources[n] = true
		}
	}
	fair := st.o.MaxParallel / len(sources)
	if fair < 1 || st.out[src] < fair {
		return false
	}
	held := 0
	for n := range sources {
		if n != src && st.waiting[n] > 0 && st.out[n] < fair {
			held += fair - st.out[n]
		}
	}
	return len(st.flights)+held >= st.o.MaxParallel
}

// busyTargets are the nodes at their per-node cap.
func (st *schedState) busyTargets() map[string]bool {
	out := map[string]bool{}
	if c := st.o.MaxPerNode; c > 0 {
		for n := range st.in {
			if st.perNode(n) >= c {
				out[n] = true
			}
		}
		for n := range st.out {
			if st.perNode(n) >= c {
				out[n] = true
			}
		}
	}
	return out
}

// admit decides on j moving to `to`, and records it when admitted.
func (st *schedState) admit(j DrainJob, to string) (DrainStart, refusal) {
	src := j.VM.Node
	if (st.avoid[to] && j.To == "") || (st.o.MaxPerNode > 0 && st.perNode(to) >= st.o.MaxPerNode) {
		return DrainStart{}, capTarget
	}
	cand := Flight{VM: j.VM.Name, From: src, To: to, MemoryMiB: j.VM.MemoryMiB, DirtyMiBs: j.VM.DirtyMiBs, DiskMiB: j.VM.LocalDiskMiB(), Setup: true}
	start := DrainStart{Job: j, To: to}
	if st.o.Mode == DrainFixed {
		st.add(cand)
		return start, admitted
	}
	if st.reported[src].NICMiBs <= 0 || st.reported[to].NICMiBs <= 0 {
		if c := st.o.UnknownLinkPerNode; st.perNode(src) >= c {
			return DrainStart{}, capSource
		} else if st.perNode(to) >= c {
			return DrainStart{}, capTarget
		}
		st.add(cand)
		return start, admitted
	}
	// A VM that cannot converge even alone gets the link to itself.
	alone := st.o.pairCap(st.links, src, to)
	if !st.o.converges(float64(j.VM.MemoryMiB), j.VM.DirtyMiBs, alone) {
		if st.perNode(src)+st.perNode(to) > 0 {
			return DrainStart{}, busyHopeless
		}
		start.Hopeless, start.ShareMiBs = true, alone
		start.Seconds = st.o.moveSeconds(j.VM, alone)
		st.add(cand)
		return start, admitted
	}
	active := st.active()
	share, why := st.check(active, cand)
	if why != admitted {
		return DrainStart{}, why
	}
	start.ShareMiBs = share
	start.Seconds = st.o.moveSeconds(j.VM, share)
	st.add(cand)
	return start, admitted
}

// check applies the two adaptive tests to cand with the active flights.
func (st *schedState) check(active []Flight, cand Flight) (float64, refusal) {
	without := st.shares(active)
	with := st.shares(append(slices.Clone(active), cand))
	share := with[len(active)]
	converge := st.o.converges(float64(cand.MemoryMiB), cand.DirtyMiBs, share)
	for i, f := range active {
		if converge && with[i] < without[i]*(1-1e-9) && !st.o.converges(remainingOf(f), f.DirtyMiBs, with[i]) {
			converge = false
		}
	}
	if !converge {
		return share, st.blame(cand)
	}
	if !st.helps(active, cand, cand.From) {
		return share, capSource
	}
	if !st.helps(active, cand, cand.To) {
		return share, capTarget
	}
	return share, admitted
}

// blame tells whether a migration that would break convergence should try another
// target: yes when it converges, and breaks nothing, with an idle target of the
// same stream cap.
func (st *schedState) blame(cand Flight) refusal {
	const ghost = "\x00idle-target"
	probe := &schedState{o: st.o, links: make(map[string]Link, len(st.links)+1), flights: st.flights, out: st.out, in: st.in}
	for k, v := range st.links {
		probe.links[k] = v
	}
	probe.links[ghost] = Link{NICMiBs: math.Inf(1), StreamMiBs: st.links[cand.To].StreamMiBs}
	cand.To = ghost
	active := probe.active()
	without := probe.shares(active)
	with := probe.shares(append(slices.Clone(active), cand))
	if !st.o.converges(float64(cand.MemoryMiB), cand.DirtyMiBs, with[len(active)]) {
		return capSource
	}
	for i, f := range active {
		if with[i] < without[i]*(1-1e-9) && !st.o.converges(remainingOf(f), f.DirtyMiBs, with[i]) {
			return capSource
		}
	}
	return capTarget
}

// helps is test 2 at node: would more streams there end its work earlier than
// the ones running now? (Some k' > k beating k is enough: adding one stream is the
// way there; the next decision checks the next stream.)
func (st *schedState) helps(active []Flight, cand Flight, node string) bool {
	var running []work
	for _, f := range active {
		if f.From == node || f.To == node {
			w := work{left: remainingOf(f), dirty: f.DirtyMiBs}
			if f.Setup {
				w.setup = st.o.SetupSeconds
			}
			running = append(running, w)
		}
	}
	k := len(running)
	if k == 0 {
		return true
	}
	// The node's waiting work: the jobs of this decision from or to it, the
	// candidate first (it is the longest of them: jobs come longest first).
	waiting := []work{{left: float64(cand.MemoryMiB + cand.DiskMiB), dirty: cand.DirtyMiBs}}
	for _, j := range st.pending {
		if st.done[j.VM.Name] || j.VM.Name == cand.VM || (j.VM.Node != node && j.To != node) {
			continue
		}
		waiting = append(waiting, work{left: float64(j.VM.MemoryMiB + j.VM.LocalDiskMiB()), dirty: j.VM.DirtyMiBs})
	}
	streamCap := st.o.pairCap(st.links, cand.From, cand.To)
	nic := nicOr(st.links[node], st.o)
	now := st.fluid(running, waiting, k, streamCap, nic)
	most := k + len(waiting)
	if c := st.o.MaxPerNode; c > 0 {
		most = min(most, c)
	}
	most = min(most, k+maxLookahead)
	for more := k + 1; more <= most; more++ {
		if st.fluid(running, waiting, more, streamCap, nic) < now*(1-1e-6) {
			return true
		}
	}
	return false
}

// active are the flights that hold bandwidth for the prediction: all but those
// predicted to end within SetupSeconds.
func (st *schedState) active() []Flight {
	all := st.shares(st.flights)
	out := make([]Flight, 0, len(st.flights))
	for i, f := range st.flights {
		if st.leaving(f, all[i]) {
			continue
		}
		out = append(out, f)
	}
	return out
}

func (st *schedState) leaving(f Flight, share float64) bool {
	if f.Setup {
		return false
	}
	rate := f.RateMiBs
	if rate <= 0 {
		rate = share
	}
	return rate > f.DirtyMiBs && remainingOf(f)/(rate-f.DirtyMiBs) <= st.o.SetupSeconds
}

// recheck is how long until a flight comes within SetupSeconds of its end.
func (st *schedState) recheck() float64 {
	all := st.shares(st.flights)
	best := math.Inf(1)
	for i, f := range st.flights {
		if f.Setup {
			continue
		}
		rate := f.RateMiBs
		if rate <= 0 {
			rate = all[i]
		}
		if rate <= f.DirtyMiBs {
			continue
		}
		if t := remainingOf(f)/(rate-f.DirtyMiBs) - st.o.SetupSeconds; t > 0 {
			best = min(best, t)
		}
	}
	if math.IsInf(best, 1) {
		return 0
	}
	return best
}
