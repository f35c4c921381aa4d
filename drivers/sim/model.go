// Long file, one reason: the event loop, bandwidth sharing and every state change of the model must be read together.

package sim

import (
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/drivers"
)

// defaultEpoch is the start of model time when the caller gives none: fixed, so
// that a seeded model run prints the same times every time.
var defaultEpoch = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// mibPerMbit converts megabits/s into MiB/s.
const mibPerMbit = 1e6 / 8 / (1 << 20)

// eps is the amount of memory (MiB, about one byte) the model treats as nothing,
// to absorb floating-point residue when a round ends on a nanosecond boundary.
const eps = 1e-6

// progressStepMiB is how much the remaining amount must shrink to count as
// progress for the progress timeout; smaller wiggles are noise.
const progressStepMiB = 1.0

// Phase is the phase of a migration.
type Phase string

// Migration phases. The first three are the phases of drivers.MigrationProgress.
const (
	PhaseSetup     Phase = "setup"
	PhasePrecopy   Phase = "precopy"
	PhaseStopcopy  Phase = "stopcopy"
	PhaseCompleted Phase = "completed"
	PhaseFailed    Phase = "failed"
	PhaseCancelled Phase = "cancelled"
)

// Done reports whether the phase is final.
func (p Phase) Done() bool { return p == PhaseCompleted || p == PhaseFailed || p == PhaseCancelled }

// ErrorKind classifies a model error; the HTTP API maps it to a status code.
type ErrorKind string

// Error kinds.
const (
	KindNotFound        ErrorKind = "not_found"        // 404
	KindRejected        ErrorKind = "rejected"         // 409, Reason says why
	KindBadRequest      ErrorKind = "bad_request"      // 400
	KindNotConverged    ErrorKind = "not_converged"    // a migration's final state
	KindMigrationFailed ErrorKind = "migration_failed" // a migration's final state
	KindCancelled       ErrorKind = "cancelled"        // a migration's final state
	KindUnavailable     ErrorKind = "unavailable"      // injected 5xx
	KindInternal        ErrorKind = "internal"         // 500
)

// Rejection reasons (Error.Reason when Kind is KindRejected).
const (
	ReasonTargetPaused       = "target_paused"
	ReasonPausedByOther      = "paused_by_other"
	ReasonTargetNotReady     = "target_not_ready"
	ReasonInsufficientMemory = "insufficient_memory"
	// ReasonInsufficientStorage: the target lacks free space for the VM's local disks.
	ReasonInsufficientStorage = "insufficient_storage"
	ReasonVMNotRunning        = "vm_not_running"
	ReasonVMNotMigratable     = "vm_not_migratable"
	ReasonVMMigrating         = "vm_migrating"
	ReasonWrongSource         = "wrong_source"
	ReasonCPUIncompatible     = "cpu_incompatible"
	ReasonNetworkMissing      = "network_missing"
	ReasonNodeNotReady        = "node_not_ready"
	ReasonNodeNotDown         = "node_not_down"
	ReasonInvalidFault        = "invalid_fault"
)

// Error is an error of the model: a kind for the API and the driver, a reason
// for rejections, and a message for humans.
type Error struct {
	Kind   ErrorKind
	Reason string
	Msg    string
}

func (e *Error) Error() string { return e.Msg }

func errorf(kind ErrorKind, reason, format string, args ...any) *Error {
	return &Error{Kind: kind, Reason: reason, Msg: fmt.Sprintf(format, args...)}
}

// nodePower is the life state of a node, apart from its pause flag.
type nodePower int

const (
	powerUp nodePower = iota
	powerRebooting
	powerDown
)

type node struct {
	spec  NodeSpec
	index int
	power nodePower
	// paused survives reboots, as on real platforms.
	paused bool
	// pausedBy is the owner mark of the pause ("" = none).
	pausedBy string
	// rebootEnd is when a reboot in progress ends; noReturn says it ends down.
	rebootEnd time.Duration
	noReturn  bool
	boots     int
	bootID    string
	pending   []UpdateSpec
	// inactive are installed updates waiting for a reboot.
	inactive []UpdateSpec
	// reserved is memory (MiB) held for migrations coming in.
	reserved int64
	// storageFree is the free space for local disks (MiB): disks coming in hold
	// theirs from the start of the migration, disks going out free theirs at its end.
	storageFree int64
}

func (n *node) state() cluster.NodeState {
	switch {
	case n.power == powerDown:
		return cluster.NodeDown
	case n.power == powerRebooting:
		return cluster.NodeRebooting
	case n.paused:
		return cluster.NodePaused
	}
	return cluster.NodeUp
}

type vm struct {
	spec  VMSpec
	node  *node
	power cluster.PowerState
	mig   *migration
}

type migration struct {
	id     string
	vm     *vm
	from   *node
	to     *node
	phase  Phase
	mem    float64
	dirty  float64
	start  time.Duration
	xferAt time.Duration // when setup ended
	stopAt time.Duration // when stop-and-copy began
	end    time.Duration
	round  int
	// roundLeft is what the current round still has to send; roundDirtied is
	// what the VM has dirtied since the round began (capped at its memory).
	roundLeft, roundDirtied float64
	transferred             float64
	// disk is the size of the VM's local disks; they are copied first, in round 1,
	// over the same streams as memory (like QEMU's drive-mirror before the RAM
	// pre-copy). diskLeft is what is still to copy; transferred includes the rest.
	disk, diskLeft float64
	// rate is the current bandwidth share in MiB/s; capMiBs the stream cap.
	rate, capMiBs float64
	// watermark is the lowest remaining amount seen, lowered at lowered.
	watermark float64
	lowered   time.Duration
	// injected makes the migration fail at the end of its first round.
	injected string
	// suspended: the VM's saved state moves (nothing dirties it); the VM stays
	// suspended on the target.
	suspended bool
	errKind   ErrorKind
	errMsg    string
	downtime  time.Duration
	version   uint64
}

// remaining is what would still have to be sent if the VM stopped now.
func (mg *migration) remaining() float64 {
	switch mg.phase {
	case PhaseSetup:
		return mg.mem + mg.disk
	case PhasePrecopy:
		return mg.roundLeft + mg.roundDirtied
	case PhaseStopcopy:
		return mg.roundLeft
	}
	return 0
}

func (mg *migration) transferring() bool {
	return mg.phase == PhasePrecopy || mg.phase == PhaseStopcopy
}

// Model is a discrete-event model of a cluster in virtual time. It does no I/O,
// never reads a clock and draws randomness only from streams seeded by the
// cluster's seed, so the same calls give the same results.
//
// A Model is not safe for concurrent use; the Server guards it with a mutex.
type Model struct {
	params  ModelParams
	seed    uint64
	start   time.Time
	now     time.Duration
	nodes   []*node
	byNode  map[string]*node
	vms     []*vm
	byVM    map[string]*vm
	migs    map[string]*migration
	active  []*migration // in start order
	nextID  int
	faults  []*faultState
	stats   Stats
	version uint64
}

// NewModel builds a model of c (which must be valid, e.g. from ParseCluster)
// whose time starts at start (zero = 2030-01-01T00:00:00Z).
func NewModel(c *Cluster, start time.Time) (*Model, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("new model: %w", err)
	}
	if start.IsZero() {
		start = defaultEpoch
	}
	m := &Model{
		params: c.Model, seed: c.Seed, start: start,
		byNode: map[string]*node{}, byVM: map[string]*vm{}, migs: map[string]*migration{},
		stats: Stats{
			SuccessfulMigrations: map[string]int{}, Reboots: map[string]int{},
			BootIDs: map[string]string{}, PeakMigrations: map[string]int{},
		},
	}
	for i, ns := range c.Nodes {
		ns.Networks = slices.Clone(ns.Networks)
		n := &node{spec: ns, index: i, paused: ns.Paused, pending: slices.Clone(ns.Updates), storageFree: ns.StorageMiB}
		if ns.Down {
			n.power = powerDown
		}
		m.newBoot(n)
		m.nodes = append(m.nodes, n)
		m.byNode[ns.Name] = n
	}
	for _, vs := range c.VMs {
		vs.Networks = slices.Clone(vs.Networks)
		vs.Disks = slices.Clone(vs.Disks)
		v := &vm{spec: vs, node: m.byNode[vs.Node], power: vs.Power}
		m.vms = append(m.vms, v)
		m.byVM[vs.Name] = v
	}
	for _, f := range c.Faults {
		m.faults = append(m.faults, newFaultState(f, m.seed, len(m.faults)))
	}
	return m, nil
}

// newBoot gives n a new boot: deterministic from seed, node and boot count, and
// independent of every other random decision.
func (m *Model) newBoot(n *node) {
	n.boots++
	h := fnv.New64a()
	fmt.Fprintf(h, "%d/%s/%d", m.seed, n.spec.Name, n.boots)
	n.bootID = fmt.Sprintf("%016x", h.Sum64())
	m.stats.BootIDs[n.spec.Name] = n.bootID
}

// Start is the model time at which the model began.
func (m *Model) Start() time.Time { return m.start }

// Now is the current model time.
func (m *Model) Now() time.Time { return m.start.Add(m.now) }

// Version increases whenever the state of the model changes; a server uses it
// to wake long-polls.
func (m *Model) Version() uint64 { return m.version }

func (m *Model) changed() { m.version++ }

// Params returns the model constants.
func (m *Model) Params() ModelParams { return m.params }

// NextEventTime is the model time of the next event (a migration changing
// phase or round, a reboot ending, a scheduled crash, a progress timeout), and
// false when nothing is scheduled.
func (m *Model) NextEventTime() (time.Time, bool) {
	d, ok := m.nextEvent()
	return m.start.Add(d), ok
}

func (m *Model) nextEvent() (time.Duration, bool) {
	best, ok := time.Duration(math.MaxInt64), false
	consider := func(t time.Duration) {
		if t < best {
			best, ok = t, true
		}
	}
	for _, n := range m.nodes {
		if n.power == powerRebooting {
			consider(n.rebootEnd)
		}
	}
	for _, f := range m.faults {
		if f.Kind == FaultNodeCrash && !f.fired {
			consider(seconds(f.AtSeconds))
		}
	}
	for _, mg := range m.active {
		switch mg.phase {
		case PhaseSetup:
			consider(mg.start + seconds(m.params.SetupSeconds))
		case PhasePrecopy, PhaseStopcopy:
			if mg.rate > 0 {
				consider(m.now + ceilSeconds(mg.roundLeft/mg.rate))
			}
			if mg.phase == PhasePrecopy {
				consider(mg.lowered + seconds(m.params.ProgressTimeoutSeconds))
			}
		}
	}
	if ok && best < m.now {
		best = m.now
	}
	return best, ok
}

func seconds(s float64) time.Duration { return time.Duration(math.Round(s * 1e9)) }

// ceilSeconds rounds up so that at the event time the work is really done.
func ceilSeconds(s float64) time.Duration {
	if s > 1e9 {
		return time.Duration(math.MaxInt64 / 2)
	}
	return time.Duration(math.Ceil(s * 1e9))
}

// Step advances to the next event and processes it. It returns the new time
// and false when no event was scheduled (time does not move then).
func (m *Model) Step() (time.Time, bool) {
	t, ok := m.NextEventTime()
	if ok {
		m.AdvanceTo(t)
	}
	return m.Now(), ok
}

// AdvanceTo moves model time to t, processing every event up to t in order and
// integrating transfers exactly between events. A t before Now does nothing.
func (m *Model) AdvanceTo(t time.Time) {
	target := t.Sub(m.start)
	for {
		next, ok := m.nextEvent()
		if !ok || next > target {
			if target > m.now {
				m.integrate(target - m.now)
				m.now = target
			}
			return
		}
		if next > m.now {
			m.integrate(next - m.now)
			m.now = next
		}
		m.processDue()
	}
}

// integrate moves every transfer forward by dt at its current rate.
func (m *Model) integrate(dt time.Duration) {
	sec := dt.Seconds()
	end := m.now + dt
	for _, mg := range m.active {
		if !mg.transferring() {
			continue
		}
		sent := math.Min(mg.rate*sec, mg.roundLeft)
		mg.roundLeft -= sent
		mg.transferred += sent
		mg.diskLeft -= math.Min(sent, mg.diskLeft)
		if mg.phase == PhasePrecopy {
			mg.roundDirtied = math.Min(mg.mem, mg.roundDirtied+mg.dirty*sec)
			// remaining() is concave between events (dirtying stops growing at
			// the memory cap), so its minimum is at an end of the interval.
			if r := mg.remaining(); r < mg.watermark-progressStepMiB {
				mg.watermark, mg.lowered = r, end
			}
		}
	}
}

// processDue handles everything due at m.now, in a fixed order, then shares
// bandwidth anew.
func (m *Model) processDue() {
	for _, n := range m.nodes {
		if n.power == powerRebooting && n.rebootEnd <= m.now {
			m.finishReboot(n)
		}
	}
	for _, f := range m.faults {
		if f.Kind == FaultNodeCrash && !f.fired && seconds(f.AtSeconds) <= m.now {
			f.fired = true
			f.hits++
			if n := m.byNode[f.Node]; n != nil && n.power != powerDown {
				m.crash(n, "scheduled node_crash fault")
			}
		}
	}
	for _, mg := range slices.Clone(m.active) {
		if mg.phase.Done() {
			continue
		}
		m.processMigration(mg)
	}
	m.allocate()
}

func (m *Model) processMigration(mg *migration) {
	switch mg.phase {
	case PhaseSetup:
		if m.now >= mg.start+seconds(m.params.SetupSeconds) {
			mg.phase, mg.round, mg.xferAt = PhasePrecopy, 1, m.now
			mg.roundLeft, mg.roundDirtied = mg.mem+mg.disk, 0
			mg.watermark, mg.lowered = mg.mem+mg.disk, m.now
			m.touch(mg)
		}
	case PhasePrecopy:
		if mg.roundLeft <= eps {
			m.endRound(mg)
		}
		if mg.phase == PhasePrecopy && m.now >= mg.lowered+seconds(m.params.ProgressTimeoutSeconds) {
			m.finish(mg, KindNotConverged, fmt.Sprintf(
				"no progress for %gs in round %d (bandwidth share %.1f MiB/s, dirty rate %.1f MiB/s, %.0f MiB remaining)",
				m.params.ProgressTimeoutSeconds, mg.round, mg.rate, mg.dirty, mg.remaining()))
		}
	case PhaseStopcopy:
		if mg.roundLeft <= eps {
			m.finish(mg, "", "")
		}
	}
}

// endRound decides, at a round boundary, between stop-and-copy, another round
// and giving up.
func (m *Model) endRound(mg *migration) {
	if mg.injected != "" && mg.round == 1 {
		m.finish(mg, KindMigrationFailed, mg.injected)
		return
	}
	next := math.Min(mg.roundDirtied, mg.mem)
	if next <= eps || (mg.rate > 0 && next/mg.rate <= m.params.MaxDowntimeMs/1000) {
		mg.phase, mg.stopAt, mg.roundLeft, mg.roundDirtied = PhaseStopcopy, m.now, next, 0
		m.touch(mg)
		if next <= eps {
			m.finish(mg, "", "")
		}
		return
	}
	if mg.round >= m.params.MaxRounds {
		m.finish(mg, KindNotConverged, fmt.Sprintf(
			"not converged after %d rounds (bandwidth share %.1f MiB/s, dirty rate %.1f MiB/s, %.0f MiB left per round)",
			mg.round, mg.rate, mg.dirty, next))
		return
	}
	mg.round++
	mg.roundLeft, mg.roundDirtied = next, 0
	m.touch(mg)
}

func (m *Model) touch(mg *migration) {
	mg.version++
	m.changed()
}

// finish ends mg: completed when kind is "", else failed or cancelled.
func (m *Model) finish(mg *migration, kind ErrorKind, msg string) {
	mg.end = m.now
	mg.errKind, mg.errMsg = kind, msg
	mg.to.reserved -= mg.vm.spec.MemoryMiB
	mg.vm.mig = nil
	if kind == "" {
		mg.from.storageFree += int64(mg.disk)
	} else {
		mg.to.storageFree += int64(mg.disk)
	}
	switch kind {
	case "":
		mg.phase = PhaseCompleted
		mg.downtime = m.now - mg.stopAt
		mg.vm.node = mg.to
		m.stats.SuccessfulMigrations[mg.vm.spec.Name]++
		m.checkAntiAffinity(mg.vm)
	case KindCancelled:
		mg.phase = PhaseCancelled
	default:
		mg.phase = PhaseFailed
	}
	mg.rate = 0
	m.active = slices.DeleteFunc(m.active, func(x *migration) bool { return x == mg })
	m.stats.Migrations = append(m.stats.Migrations, mg.record(m.start))
	m.touch(mg)
}

func (m *Model) checkAntiAffinity(v *vm) {
	if !v.spec.AntiAffinityHard {
		return
	}
	for _, o := range m.vms {
		if o != v && o.node == v.node && o.power == cluster.PowerRunning &&
			o.spec.AntiAffinityHard && o.spec.AntiAffinity == v.spec.AntiAffinity {
			m.stats.Violations = append(m.stats.Violations, Violation{
				At: m.Now(), Kind: "hard_anti_affinity", Node: v.node.spec.Name, VM: v.spec.Name,
				Detail: fmt.Sprintf("vm %s joined %s of group %s on node %s", v.spec.Name, o.spec.Name, v.spec.AntiAffinity, v.node.spec.Name),
			})
		}
	}
}

// allocate shares bandwidth among the transferring migrations by max-min
// fairness (progressive filling): every unfrozen stream grows at the same pace
// until it reaches its stream cap or one of its two node pools is used up.
func (m *Model) allocate() {
	var flows []*migration
	for _, mg := range m.active {
		mg.rate = 0
		if mg.transferring() {
			flows = append(flows, mg)
		}
	}
	if len(flows) == 0 {
		return
	}
	left := make([]float64, len(m.nodes))
	for i, n := range m.nodes {
		left[i] = n.spec.NICMbps * mibPerMbit
	}
	frozen := make([]bool, len(flows))
	count := make([]int, len(m.nodes))
	for unfrozen := len(flows); unfrozen > 0; {
		clear(count)
		for i, f := range flows {
			if !frozen[i] {
				count[f.from.index]++
				count[f.to.index]++
			}
		}
		delta := math.Inf(1)
		for i, c := range count {
			if c > 0 {
				delta = math.Min(delta, left[i]/float64(c))
			}
		}
		for i, f := range flows {
			if !frozen[i] {
				delta = math.Min(delta, f.capMiBs-f.rate)
			}
		}
		delta = math.Max(delta, 0)
		for i, c := range count {
			left[i] -= delta * float64(c)
		}
		progress := false
		for i, f := range flows {
			if frozen[i] {
				continue
			}
			f.rate += delta
			tol := 1e-9 * f.capMiBs
			if f.capMiBs-f.rate <= tol || left[f.from.index] <= tol || left[f.to.index] <= tol {
				frozen[i] = true
				unfrozen--
				progress = true
			}
		}
		if !progress { // floating-point stalemate: nothing can grow meaningfully
			break
		}
	}
}

// StartOutcome says what StartMigration did.
type StartOutcome string

// Start outcomes.
const (
	OutcomeStarted      StartOutcome = "started"
	OutcomeJoined       StartOutcome = "joined"
	OutcomeAlreadyThere StartOutcome = "already_there"
)

// StartMigration starts a live migration of vmName to node to. from, when not
// empty, is where the caller believes the VM is; a VM elsewhere is rejected
// (wrong_source). A VM already on to is OutcomeAlreadyThere (no migration); a
// migration of the VM to the same target in flight is OutcomeJoined and
// returned. Errors are *Error of kind not_found or rejected.
func (m *Model) StartMigration(vmName, from, to string) (MigrationStatus, StartOutcome, error) {
	st, out, err := m.startMigration(vmName, from, to)
	if e, ok := err.(*Error); ok && e.Kind == KindRejected {
		m.reject("migrate", vmName, to, e)
	}
	return st, out, err
}

func (m *Model) startMigration(vmName, from, to string) (MigrationStatus, StartOutcome, error) {
	v := m.byVM[vmName]
	if v == nil {
		return MigrationStatus{}, "", errorf(KindNotFound, "", "vm %q not found", vmName)
	}
	dst := m.byNode[to]
	if dst == nil {
		return MigrationStatus{}, "", errorf(KindNotFound, "", "node %q not found", to)
	}
	if from != "" && m.byNode[from] == nil {
		return MigrationStatus{}, "", errorf(KindNotFound, "", "node %q not found", from)
	}
	if v.mig != nil {
		if v.mig.to == dst {
			return m.status(v.mig), OutcomeJoined, nil
		}
		return MigrationStatus{}, "", errorf(KindRejected, ReasonVMMigrating, "vm %s is already migrating to %s", vmName, v.mig.to.spec.Name)
	}
	if v.node == dst {
		return MigrationStatus{VM: vmName, From: to, To: to}, OutcomeAlreadyThere, nil
	}
	src := v.node
	switch {
	case from != "" && from != src.spec.Name:
		return MigrationStatus{}, "", errorf(KindRejected, ReasonWrongSource, "vm %s is on %s, not %s", vmName, src.spec.Name, from)
	case v.power != cluster.PowerRunning && v.power != cluster.PowerSuspended:
		return MigrationStatus{}, "", errorf(KindRejected, ReasonVMNotRunning, "vm %s is %s, only running vms live-migrate and suspended vms move as saved state", vmName, v.power)
	case !v.spec.Migratable:
		reason := v.spec.NotMigratableReason
		if reason == "" {
			reason = "marked not migratable"
		}
		return MigrationStatus{}, "", errorf(KindRejected, ReasonVMNotMigratable, "vm %s cannot live-migrate: %s", vmName, reason)
	case dst.power != powerUp:
		return MigrationStatus{}, "", errorf(KindRejected, ReasonTargetNotReady, "target node %s is %s", to, dst.state())
	case dst.paused:
		return MigrationStatus{}, "", errorf(KindRejected, ReasonTargetPaused, "target node %s is paused (no placements)", to)
	case src.spec.CPUGroup != "" && dst.spec.CPUGroup != "" && src.spec.CPUGroup != dst.spec.CPUGroup:
		return MigrationStatus{}, "", errorf(KindRejected, ReasonCPUIncompatible, "cpu group %s of node %s differs from %s of node %s", dst.spec.CPUGroup, to, src.spec.CPUGroup, src.spec.Name)
	}
	for _, net := range v.spec.Networks {
		if !slices.ContainsFunc(dst.spec.Networks, net.SameAs) {
			return MigrationStatus{}, "", errorf(KindRejected, ReasonNetworkMissing, "target node %s lacks network %s/%d of vm %s", to, net.Name, net.VLAN, vmName)
		}
	}
	if free := m.freeMiB(dst); free < v.spec.MemoryMiB {
		return MigrationStatus{}, "", errorf(KindRejected, ReasonInsufficientMemory, "target node %s has %d MiB free, vm %s needs %d MiB", to, free, vmName, v.spec.MemoryMiB)
	}
	disk := localDiskMiB(v.spec.Disks)
	if disk > 0 && dst.storageFree < disk {
		return MigrationStatus{}, "", errorf(KindRejected, ReasonInsufficientStorage, "target node %s has %d MiB free for local disks, vm %s needs %d MiB", to, dst.storageFree, vmName, disk)
	}
	m.nextID++
	mg := &migration{
		id: fmt.Sprintf("m-%06d", m.nextID), vm: v, from: src, to: dst, phase: PhaseSetup,
		mem: float64(v.spec.MemoryMiB), dirty: v.spec.DirtyMiBs, start: m.now,
		suspended: v.power == cluster.PowerSuspended, disk: float64(disk), diskLeft: float64(disk),
		capMiBs: math.Min(src.spec.StreamMbps, dst.spec.StreamMbps) * mibPerMbit,
	}
	for _, f := range m.faults {
		if f.Kind == FaultMigrationFail && (f.VM == "" || f.VM == vmName) && f.countedHit() {
			mg.injected = fmt.Sprintf("injected migration_fail fault: migration of vm %s aborted by the platform", vmName)
		}
	}
	if mg.suspended {
		// A suspended VM's memory does not change while it moves: its saved
		// state goes over in one round and the move always converges.
		mg.dirty = 0
	}
	v.mig = mg
	dst.reserved += v.spec.MemoryMiB
	dst.storageFree -= disk
	m.migs[mg.id] = mg
	m.active = append(m.active, mg)
	m.notePeak(src)
	m.notePeak(dst)
	m.touch(mg)
	// A zero setup cost starts the transfer right away.
	m.processDue()
	return m.status(mg), OutcomeStarted, nil
}

// localDiskMiB is the size of the disks that move with their VM.
func localDiskMiB(ds []cluster.Disk) int64 {
	return cluster.VM{Disks: ds}.LocalDiskMiB()
}

func (m *Model) notePeak(n *node) {
	c := 0
	for _, mg := range m.active {
		if mg.from == n || mg.to == n {
			c++
		}
	}
	if c > m.stats.PeakMigrations[n.spec.Name] {
		m.stats.PeakMigrations[n.spec.Name] = c
	}
}

// freeMiB is the node's memory not used by running VMs nor reserved for
// incoming migrations.
func (m *Model) freeMiB(n *node) int64 {
	free := n.spec.MemoryMiB - n.reserved
	for _, v := range m.vms {
		if v.node == n && v.power == cluster.PowerRunning {
			free -= v.spec.MemoryMiB
		}
	}
	return free
}

func (m *Model) reject(op, vmName, nodeName string, e *Error) {
	m.stats.Rejections = append(m.stats.Rejections, Rejection{
		At: m.Now(), Op: op, VM: vmName, Node: nodeName, Reason: e.Reason, Error: e.Msg,
	})
	m.changed()
}

// Migration returns the status of migration id.
func (m *Model) Migration(id string) (MigrationStatus, error) {
	mg := m.migs[id]
	if mg == nil {
		return MigrationStatus{}, errorf(KindNotFound, "", "migration %q not found", id)
	}
	return m.status(mg), nil
}

// Migrations lists the migrations of vmName ("" = all), in start order.
func (m *Model) Migrations(vmName string) []MigrationStatus {
	ids := make([]string, 0, len(m.migs))
	for id, mg := range m.migs {
		if vmName == "" || mg.vm.spec.Name == vmName {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	out := make([]MigrationStatus, 0, len(ids))
	for _, id := range ids {
		out = append(out, m.status(m.migs[id]))
	}
	return out
}

// ActiveMigrations lists the migrations in flight, in start order.
func (m *Model) ActiveMigrations() []MigrationStatus {
	out := make([]MigrationStatus, 0, len(m.active))
	for _, mg := range m.active {
		out = append(out, m.status(mg))
	}
	return out
}

// CancelMigration aborts migration id; the VM stays on its source. Cancelling
// a finished migration returns its final status unchanged.
func (m *Model) CancelMigration(id string) (MigrationStatus, error) {
	mg := m.migs[id]
	if mg == nil {
		return MigrationStatus{}, errorf(KindNotFound, "", "migration %q not found", id)
	}
	if !mg.phase.Done() {
		m.finish(mg, KindCancelled, "cancelled by request")
		m.allocate()
	}
	return m.status(mg), nil
}

// abortOn fails every migration touching n.
func (m *Model) abortOn(n *node, why string) {
	for _, mg := range slices.Clone(m.active) {
		if mg.from == n || mg.to == n {
			m.finish(mg, KindMigrationFailed, fmt.Sprintf("aborted: node %s %s", n.spec.Name, why))
		}
	}
	m.allocate()
}

// killVMs stops the running VMs on n and records each. A suspended VM on n
// loses its saved state (held by the node) and comes back stopped: recorded
// apart, as a lost suspended VM.
func (m *Model) killVMs(n *node, cause string) {
	for _, v := range m.vms {
		if v.node == n && v.power == cluster.PowerSuspended {
			v.power = cluster.PowerStopped
			m.stats.LostSuspendedVMs = append(m.stats.LostSuspendedVMs, KilledVM{At: m.Now(), VM: v.spec.Name, Node: n.spec.Name, Cause: cause})
			if cause == "reboot" {
				m.stats.SuspendedLostByReboot++
			} else {
				m.stats.SuspendedLostByCrash++
			}
			continue
		}
		if v.node == n && v.power == cluster.PowerRunning {
			v.power = cluster.PowerStopped
			m.stats.KilledVMs = append(m.stats.KilledVMs, KilledVM{At: m.Now(), VM: v.spec.Name, Node: n.spec.Name, Cause: cause})
			if cause == "reboot" {
				m.stats.VMsKilledByReboot++
			} else {
				m.stats.VMsLostByCrash++
			}
		}
	}
}

func (m *Model) node(name string) (*node, error) {
	n := m.byNode[name]
	if n == nil {
		return nil, errorf(KindNotFound, "", "node %q not found", name)
	}
	return n, nil
}

// PauseNode stops placements on a node and records owner's mark. Pausing a node
// paused by the same owner or without a mark succeeds (and takes the mark); a node
// marked by another owner is refused.
func (m *Model) PauseNode(name, owner string) (cluster.Node, error) {
	n, err := m.node(name)
	if err != nil {
		return cluster.Node{}, err
	}
	if n.paused && n.pausedBy != "" && owner != "" && n.pausedBy != owner {
		return cluster.Node{}, errorf(KindRejected, ReasonPausedByOther, "node %s is paused by %s", name, n.pausedBy)
	}
	if owner != "" {
		n.pausedBy = owner
	}
	if !n.paused {
		n.paused = true
		m.nodeEvent(n, "paused")
	}
	return m.nodeInfo(n), nil
}

// ResumeNode allows placements again; resuming an unpaused node succeeds.
func (m *Model) ResumeNode(name string) (cluster.Node, error) {
	n, err := m.node(name)
	if err != nil {
		return cluster.Node{}, err
	}
	n.pausedBy = ""
	if n.paused {
		n.paused = false
		m.nodeEvent(n, "resumed")
	}
	return m.nodeInfo(n), nil
}

// RebootNode starts a reboot. Running VMs still on the node are killed (and
// counted as a safety violation), migrations touching it are aborted. A node
// already rebooting is left alone (idempotent); a down node is power-cycled.
func (m *Model) RebootNode(name string) (cluster.Node, error) {
	n, err := m.node(name)
	if err != nil {
		return cluster.Node{}, err
	}
	if n.power != powerRebooting {
		m.startReboot(n, true)
	}
	return m.nodeInfo(n), nil
}

func (m *Model) startReboot(n *node, faultsApply bool) {
	m.abortOn(n, "rebooted")
	m.killVMs(n, "reboot")
	n.power = powerRebooting
	n.rebootEnd = m.now + seconds(n.spec.RebootSeconds)
	n.noReturn = false
	if faultsApply {
		for _, f := range m.faults {
			if f.Kind == FaultNodeNoReturn && f.Node == n.spec.Name && f.countedHit() {
				n.noReturn = true
			}
		}
	}
	m.stats.Reboots[n.spec.Name]++
	m.nodeEvent(n, "reboot_started")
}

func (m *Model) finishReboot(n *node) {
	if n.noReturn {
		n.power = powerDown
		m.nodeEvent(n, "did_not_return")
		return
	}
	n.power = powerUp
	m.newBoot(n)
	n.inactive = nil
	m.nodeEvent(n, "booted")
}

// CrashNode makes a node fail at once: it goes down, its running VMs stop,
// migrations touching it fail. Crashing a down node succeeds.
func (m *Model) CrashNode(name string) (cluster.Node, error) {
	n, err := m.node(name)
	if err != nil {
		return cluster.Node{}, err
	}
	if n.power != powerDown {
		m.crash(n, "crashed by request")
	}
	return m.nodeInfo(n), nil
}

func (m *Model) crash(n *node, why string) {
	m.abortOn(n, "crashed")
	m.killVMs(n, "crash")
	n.power = powerDown
	m.nodeEvent(n, "crashed: "+why)
}

// RecoverNode power-cycles a down node: it reboots (reboot_seconds) and comes
// back regardless of node_no_return faults. A node rebooting is made to come
// back; recovering an up node is rejected.
func (m *Model) RecoverNode(name string) (cluster.Node, error) {
	n, err := m.node(name)
	if err != nil {
		return cluster.Node{}, err
	}
	switch n.power {
	case powerUp:
		e := errorf(KindRejected, ReasonNodeNotDown, "node %s is %s, only a down node can be recovered", name, n.state())
		m.reject("recover", "", name, e)
		return cluster.Node{}, e
	case powerRebooting:
		n.noReturn = false
	case powerDown:
		m.startReboot(n, false)
		m.processDue() // a zero reboot time brings it back at once
	}
	return m.nodeInfo(n), nil
}

func (m *Model) nodeEvent(n *node, what string) {
	m.stats.NodeEvents = append(m.stats.NodeEvents, NodeEvent{At: m.Now(), Node: n.spec.Name, Event: what, BootID: n.bootID})
	m.changed()
}

// ScanUpdates lists the updates pending on a node.
func (m *Model) ScanUpdates(name string) ([]cluster.Update, error) {
	n, err := m.node(name)
	if err != nil {
		return nil, err
	}
	return toUpdates(n.pending), nil
}

// InstalledInactive lists the updates installed on a node that wait for a reboot.
func (m *Model) InstalledInactive(name string) ([]cluster.Update, error) {
	n, err := m.node(name)
	if err != nil {
		return nil, err
	}
	return toUpdates(n.inactive), nil
}

func toUpdates(us []UpdateSpec) []cluster.Update {
	out := make([]cluster.Update, 0, len(us))
	for _, u := range us {
		out = append(out, cluster.Update{Name: u.Name, Version: u.Version})
	}
	return out
}

// InstallUpdates installs the pending updates of a ready node. Updates hit by an
// install_fail fault stay pending and are listed as failed. RebootRequired is
// true while an installed update waits for a reboot, also on a repeated call
// that had nothing left to install.
func (m *Model) InstallUpdates(name string) (drivers.InstallResult, error) {
	n, err := m.node(name)
	if err != nil {
		return drivers.InstallResult{}, err
	}
	if n.power != powerUp {
		e := errorf(KindRejected, ReasonNodeNotReady, "node %s is %s, updates install on a ready node", name, n.state())
		m.reject("install", "", name, e)
		return drivers.InstallResult{}, e
	}
	res := drivers.InstallResult{Installed: []cluster.Update{}}
	if len(n.pending) > 0 {
		var fault *faultState
		for _, f := range m.faults {
			if f.Kind == FaultInstallFail && f.Node == name && f.countedHit() {
				fault = f
			}
		}
		var keep []UpdateSpec
		for _, u := range n.pending {
			up := cluster.Update{Name: u.Name, Version: u.Version}
			if fault != nil && (fault.Update == "" || fault.Update == u.Name) {
				keep = append(keep, u)
				res.Failed = append(res.Failed, drivers.UpdateFailure{Update: up, Error: "injected install_fail fault"})
				m.stats.InstallFailures++
				continue
			}
			res.Installed = append(res.Installed, up)
			n.inactive = append(n.inactive, u)
		}
		n.pending = keep
		m.changed()
	}
	for _, u := range n.inactive {
		res.RebootRequired = res.RebootRequired || u.Reboot
	}
	var lines []string
	for _, u := range res.Installed {
		lines = append(lines, "installed "+u.Name+" "+u.Version)
	}
	for _, f := range res.Failed {
		lines = append(lines, "failed "+f.Update.Name+": "+f.Error)
	}
	res.Output = strings.Join(lines, "\n")
	return res, nil
}

// ShutdownVM stops a VM at once. Stopping a stopped VM succeeds; a migrating VM
// is rejected.
func (m *Model) ShutdownVM(name string) (cluster.VM, error) {
	v := m.byVM[name]
	if v == nil {
		return cluster.VM{}, errorf(KindNotFound, "", "vm %q not found", name)
	}
	if v.mig != nil {
		e := errorf(KindRejected, ReasonVMMigrating, "vm %s is migrating to %s", name, v.mig.to.spec.Name)
		m.reject("shutdown", name, v.node.spec.Name, e)
		return cluster.VM{}, e
	}
	if v.power != cluster.PowerStopped {
		v.power = cluster.PowerStopped
		m.changed()
	}
	return m.vmInfo(v), nil
}

// StartVM starts a stopped or suspended VM on its node, which must be ready and
// have the memory. Starting a running VM succeeds.
func (m *Model) StartVM(name string) (cluster.VM, error) {
	v := m.byVM[name]
	if v == nil {
		return cluster.VM{}, errorf(KindNotFound, "", "vm %q not found", name)
	}
	if v.power == cluster.PowerRunning {
		return m.vmInfo(v), nil
	}
	var e *Error
	switch {
	case v.mig != nil:
		e = errorf(KindRejected, ReasonVMMigrating, "vm %s is moving to %s as saved state", name, v.mig.to.spec.Name)
	case v.node.power != powerUp:
		e = errorf(KindRejected, ReasonNodeNotReady, "node %s of vm %s is %s", v.node.spec.Name, name, v.node.state())
	case m.freeMiB(v.node) < v.spec.MemoryMiB:
		e = errorf(KindRejected, ReasonInsufficientMemory, "node %s has %d MiB free, vm %s needs %d MiB", v.node.spec.Name, m.freeMiB(v.node), name, v.spec.MemoryMiB)
	}
	if e != nil {
		m.reject("start", name, v.node.spec.Name, e)
		return cluster.VM{}, e
	}
	v.power = cluster.PowerRunning
	m.changed()
	return m.vmInfo(v), nil
}

// InjectFault adds a fault at run time. A node_crash whose time has passed
// fires at the next event processing (AdvanceTo or any later call that
// processes events), i.e. at once on a server.
func (m *Model) InjectFault(f Fault) error {
	vms := make(map[string]bool, len(m.vms))
	for _, v := range m.vms {
		vms[v.spec.Name] = true
	}
	nodes := make(map[string]*NodeSpec, len(m.nodes))
	for _, n := range m.nodes {
		nodes[n.spec.Name] = &n.spec
	}
	if errs := f.validate("fault", nodes, vms); len(errs) > 0 {
		msgs := make([]string, len(errs))
		for i, e := range errs {
			msgs[i] = e.Error()
		}
		return errorf(KindBadRequest, ReasonInvalidFault, "invalid fault: %s", strings.Join(msgs, "; "))
	}
	m.faults = append(m.faults, newFaultState(f, m.seed, len(m.faults)))
	m.changed()
	return nil
}

// RequestFault decides the API faults for one request to path; the server asks
// before handling every non-admin request.
func (m *Model) RequestFault(path string) RequestFault {
	var rf RequestFault
	for _, f := range m.faults {
		if (f.Kind != FaultAPIErrors && f.Kind != FaultAPIHang) || !strings.HasPrefix(path, f.Path) {
			continue
		}
		if !f.requestHit() {
			continue
		}
		if f.Kind == FaultAPIHang {
			rf.Delay = max(rf.Delay, time.Duration(f.DelayMs)*time.Millisecond)
		} else if rf.Status == 0 {
			rf.Status, rf.AfterApply = f.Status, f.AfterApply
		}
	}
	if rf.Status != 0 || rf.Delay != 0 {
		m.stats.APIFaults++
	}
	return rf
}

func (m *Model) nodeInfo(n *node) cluster.Node {
	return cluster.Node{
		Name: n.spec.Name, State: n.state(), Paused: n.paused, PausedBy: n.pausedBy, MemoryMiB: n.spec.MemoryMiB,
		CPUs: n.spec.CPUs, CPUGroup: n.spec.CPUGroup, Networks: slices.Clone(n.spec.Networks),
		Labels: cloneMap(n.spec.Labels), FaultDomain: n.spec.FaultDomain,
		NICMbps: n.spec.NICMbps, StreamMbps: n.spec.StreamMbps, BootID: n.bootID,
		StorageMiB: max(n.storageFree, 0),
	}
}

func (m *Model) vmInfo(v *vm) cluster.VM {
	out := cluster.VM{
		Name: v.spec.Name, Node: v.node.spec.Name, MemoryMiB: v.spec.MemoryMiB, VCPUs: v.spec.VCPUs,
		Power: v.power, Migratable: v.spec.Migratable, NotMigratableReason: v.spec.NotMigratableReason,
		AntiAffinity: v.spec.AntiAffinity, AntiAffinityHard: v.spec.AntiAffinityHard,
		Networks: slices.Clone(v.spec.Networks), DirtyMiBs: v.spec.DirtyMiBs, PreferredNode: v.spec.PreferredNode,
		Disks: slices.Clone(v.spec.Disks),
	}
	if v.mig != nil {
		out.MigratingTo = v.mig.to.spec.Name
	}
	return out
}

func cloneMap(in map[string]string) map[string]string {
	if in == nil {
		return nil
	}
	out := make(map[string]string, len(in))
	for k, v := range in {
		out[k] = v
	}
	return out
}

// Node returns one node as the inventory shows it.
func (m *Model) Node(name string) (cluster.Node, error) {
	n, err := m.node(name)
	if err != nil {
		return cluster.Node{}, err
	}
	return m.nodeInfo(n), nil
}

// VM returns one VM as the inventory shows it.
func (m *Model) VM(name string) (cluster.VM, error) {
	v := m.byVM[name]
	if v == nil {
		return cluster.VM{}, errorf(KindNotFound, "", "vm %q not found", name)
	}
	return m.vmInfo(v), nil
}

// Inventory is a snapshot of nodes and VMs, in cluster file order.
func (m *Model) Inventory() cluster.Inventory {
	inv := cluster.Inventory{Nodes: make([]cluster.Node, 0, len(m.nodes)), VMs: make([]cluster.VM, 0, len(m.vms))}
	for _, n := range m.nodes {
		inv.Nodes = append(inv.Nodes, m.nodeInfo(n))
	}
	for _, v := range m.vms {
		inv.VMs = append(inv.VMs, m.vmInfo(v))
	}
	return inv
}

// FreeMiB is the memory of a node not used by running VMs nor reserved for
// incoming migrations.
func (m *Model) FreeMiB(name string) (int64, error) {
	n, err := m.node(name)
	if err != nil {
		return 0, err
	}
	return m.freeMiB(n), nil
}

func sortedStrings(s []string) []string {
	sort.Strings(s)
	return s
}
