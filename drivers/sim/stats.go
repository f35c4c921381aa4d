package sim

import (
	"maps"
	"slices"
	"time"
)

// MigrationStatus is the state of one migration, as the API returns it.
type MigrationStatus struct {
	ID    string `json:"id,omitempty"`
	VM    string `json:"vm"`
	From  string `json:"from"`
	To    string `json:"to"`
	Phase Phase  `json:"phase,omitempty"`
	// Round is the pre-copy round (1 = the full copy), 0 during setup.
	Round int `json:"round"`
	// TransferredMiB counts everything sent (memory and disks); DiskMiB is the part
	// of it that was local disks.
	TransferredMiB float64 `json:"transferred_mib"`
	DiskMiB        float64 `json:"disk_mib,omitempty"`
	RemainingMiB   float64 `json:"remaining_mib"`
	// RateMiBs is the current bandwidth share.
	RateMiBs float64       `json:"rate_mib_s"`
	Started  time.Time     `json:"started,omitzero"`
	Ended    time.Time     `json:"ended,omitzero"`
	Elapsed  time.Duration `json:"elapsed_ns"`
	Downtime time.Duration `json:"downtime_ns,omitempty"`
	// ErrorKind is not_converged, migration_failed or cancelled when the
	// migration did not complete; Error says why.
	ErrorKind ErrorKind `json:"error_kind,omitempty"`
	Error     string    `json:"error,omitempty"`
	// Version changes whenever Phase or Round changes; long-polls wait for it.
	Version uint64 `json:"version"`
}

// Done reports whether the migration has ended.
func (s MigrationStatus) Done() bool { return s.Phase.Done() }

func (m *Model) status(mg *migration) MigrationStatus {
	st := MigrationStatus{
		ID: mg.id, VM: mg.vm.spec.Name, From: mg.from.spec.Name, To: mg.to.spec.Name,
		Phase: mg.phase, Round: mg.round, TransferredMiB: mg.transferred, DiskMiB: mg.disk - mg.diskLeft, RemainingMiB: mg.remaining(),
		RateMiBs: mg.rate, Started: m.start.Add(mg.start), Elapsed: m.now - mg.start,
		Downtime: mg.downtime, ErrorKind: mg.errKind, Error: mg.errMsg, Version: mg.version,
	}
	if mg.phase.Done() {
		st.Ended = m.start.Add(mg.end)
		st.Elapsed = mg.end - mg.start
	}
	return st
}

// MigrationRecord is one finished migration in the stats log.
type MigrationRecord struct {
	ID             string        `json:"id"`
	VM             string        `json:"vm"`
	From           string        `json:"from"`
	To             string        `json:"to"`
	Start          time.Time     `json:"start"`
	End            time.Time     `json:"end"`
	Duration       time.Duration `json:"duration_ns"`
	OK             bool          `json:"ok"`
	ErrorKind      ErrorKind     `json:"error_kind,omitempty"`
	Error          string        `json:"error,omitempty"`
	TransferredMiB float64       `json:"transferred_mib"`
	DiskMiB        float64       `json:"disk_mib,omitempty"`
	Rounds         int           `json:"rounds"`
	Downtime       time.Duration `json:"downtime_ns,omitempty"`
}

func (mg *migration) record(start time.Time) MigrationRecord {
	return MigrationRecord{
		ID: mg.id, VM: mg.vm.spec.Name, From: mg.from.spec.Name, To: mg.to.spec.Name,
		Start: start.Add(mg.start), End: start.Add(mg.end), Duration: mg.end - mg.start,
		OK: mg.phase == PhaseCompleted, ErrorKind: mg.errKind, Error: mg.errMsg,
		TransferredMiB: mg.transferred, DiskMiB: mg.disk - mg.diskLeft, Rounds: mg.round, Downtime: mg.downtime,
	}
}

// KilledVM is a running VM that went down with its node, or a suspended VM
// whose saved state went with it.
type KilledVM struct {
	At   time.Time `json:"at"`
	VM   string    `json:"vm"`
	Node string    `json:"node"`
	// Cause is "reboot" (a safety violation of whoever rebooted) or "crash".
	Cause string `json:"cause"`
}

// Rejection is one request the model refused.
type Rejection struct {
	At     time.Time `json:"at"`
	Op     string    `json:"op"` // migrate, start, shutdown, install, recover
	VM     string    `json:"vm,omitempty"`
	Node   string    `json:"node,omitempty"`
	Reason string    `json:"reason"`
	Error  string    `json:"error"`
}

// Violation is a broken rule the platform allowed (e.g. two VMs of a hard
// anti-affinity group on one node).
type Violation struct {
	At     time.Time `json:"at"`
	Kind   string    `json:"kind"`
	Node   string    `json:"node"`
	VM     string    `json:"vm"`
	Detail string    `json:"detail"`
}

// NodeEvent is one change of a node: paused, resumed, reboot_started, booted,
// did_not_return, crashed: ....
type NodeEvent struct {
	At     time.Time `json:"at"`
	Node   string    `json:"node"`
	Event  string    `json:"event"`
	BootID string    `json:"boot_id"`
}

// Stats is what happened in the model, for tests and reports.
type Stats struct {
	Now time.Time `json:"now"`
	// Migrations logs every finished migration, in order of finishing.
	Migrations       []MigrationRecord `json:"migrations"`
	ActiveMigrations int               `json:"active_migrations"`
	// SuccessfulMigrations counts completed migrations per VM.
	SuccessfulMigrations map[string]int `json:"successful_migrations"`
	// VMsKilledByReboot counts running VMs a reboot killed: a safety violation.
	VMsKilledByReboot int `json:"vms_killed_by_reboot"`
	// VMsLostByCrash counts running VMs a node crash took down.
	VMsLostByCrash int        `json:"vms_lost_by_crash"`
	KilledVMs      []KilledVM `json:"killed_vms,omitempty"`
	// SuspendedLostByReboot counts suspended VMs whose saved state a reboot of
	// their node discarded (they come back stopped): a safety violation, like a
	// running VM killed by a reboot.
	SuspendedLostByReboot int `json:"lost_suspended"`
	// SuspendedLostByCrash counts suspended VMs whose state a node crash took.
	SuspendedLostByCrash int `json:"lost_suspended_by_crash"`
	// LostSuspendedVMs lists both kinds, Cause "reboot" or "crash".
	LostSuspendedVMs []KilledVM `json:"lost_suspended_vms,omitempty"`
	// Reboots counts the reboots started per node (a power cycle of a down node
	// included): more than one in a rolling run is a node rebooted twice.
	Reboots    map[string]int `json:"reboots"`
	Rejections []Rejection    `json:"rejections,omitempty"`
	Violations []Violation    `json:"violations,omitempty"`
	NodeEvents []NodeEvent    `json:"node_events,omitempty"`
	// BootIDs is the current boot ID per node.
	BootIDs map[string]string `json:"boot_ids"`
	// PeakMigrations is the most migrations seen at once into or out of each node.
	PeakMigrations  map[string]int `json:"peak_migrations"`
	APIFaults       int            `json:"api_faults"`
	InstallFailures int            `json:"install_failures"`
}

// Stats returns a copy of the statistics.
func (m *Model) Stats() Stats {
	s := m.stats
	s.Now = m.Now()
	s.ActiveMigrations = len(m.active)
	s.Migrations = slices.Clone(s.Migrations)
	s.KilledVMs = slices.Clone(s.KilledVMs)
	s.LostSuspendedVMs = slices.Clone(s.LostSuspendedVMs)
	s.Rejections = slices.Clone(s.Rejections)
	s.Violations = slices.Clone(s.Violations)
	s.NodeEvents = slices.Clone(s.NodeEvents)
	s.SuccessfulMigrations = maps.Clone(s.SuccessfulMigrations)
	s.Reboots = maps.Clone(s.Reboots)
	s.BootIDs = maps.Clone(s.BootIDs)
	s.PeakMigrations = maps.Clone(s.PeakMigrations)
	return s
}

// MigrationsOf returns the log entries of one VM.
func (s Stats) MigrationsOf(vm string) []MigrationRecord {
	var out []MigrationRecord
	for _, r := range s.Migrations {
		if r.VM == vm {
			out = append(out, r)
		}
	}
	return out
}
