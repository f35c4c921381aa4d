// Package drivers defines the contract between Drover's orchestrator and a hypervisor
// platform, and the registry through which drivers and update plug-ins are found by name.
//
// Drivers act; they never decide. Placement, ordering and limits are the orchestrator's
// and the policies' business. Every call is idempotent: the orchestrator repeats calls
// after a crash without knowing whether the first one took effect.
package drivers

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"time"

	"github.com/droverhq/drover/cluster"
)

// Sentinel errors drivers return (wrapped) so the orchestrator can tell cases apart.
var (
	// ErrNotFound: the named node or VM does not exist.
	ErrNotFound = errors.New("not found")
	// ErrRejected: the platform refused the request as given (target paused or full,
	// VM not migratable, ...). Retrying the same request will not help.
	ErrRejected = errors.New("rejected by the platform")
	// ErrNotConverged: a live migration was aborted because it did not converge.
	ErrNotConverged = errors.New("migration did not converge")
	// ErrMigrationFailed: a live migration failed on the platform; the VM stays on its source.
	ErrMigrationFailed = errors.New("migration failed")
	// ErrPausedByOther: the node is paused under another owner's mark (another run,
	// another Drover); nothing was changed.
	ErrPausedByOther = errors.New("node paused by another owner")
	// ErrUnavailable: the platform could not be reached or answered with a server error
	// after the driver's own retries.
	ErrUnavailable = errors.New("platform unavailable")
)

// Driver reaches one cluster of one hypervisor platform.
//
// Implementations must be safe for concurrent use: the orchestrator runs several
// migrations at once and polls readiness meanwhile.
type Driver interface {
	// Inventory returns a fresh snapshot of nodes and VMs.
	Inventory(ctx context.Context) (cluster.Inventory, error)
	// PauseNode stops new placements on node and, where the platform can hold a mark
	// (Capabilities.PauseOwner), records owner with the pause: the mark of the run that
	// paused it (see PauseMark), reported back as Node.PausedBy. Pausing a node paused
	// by the same owner, or paused without a mark, succeeds; a node whose mark names
	// another owner is refused with ErrPausedByOther, so two Drovers never share a node.
	PauseNode(ctx context.Context, node, owner string) error
	// ResumeNode allows placements on node again and clears its mark. Resuming an
	// unpaused node succeeds. The caller checks Node.PausedBy first: a driver does not
	// decide whose pause may be lifted.
	ResumeNode(ctx context.Context, node string) error
	// Migrate live-migrates one VM and blocks until it has finished, failed, or ctx is
	// done (the migration is then aborted and the VM stays on its source).
	// A VM already running on req.To is a success with a zero result; a migration of
	// the same VM to the same target already in flight is joined, not started twice.
	// progress, when not nil, is called from the calling goroutine's context now and then.
	Migrate(ctx context.Context, req MigrateRequest, progress func(MigrationProgress)) (MigrationResult, error)
	// RebootNode starts a reboot of node and returns once it is under way.
	RebootNode(ctx context.Context, node string) error
	// NodeReady reports whether node is up and able to run VMs.
	NodeReady(ctx context.Context, node string) (bool, error)
	// Capabilities says what the platform can do beyond the basics.
	Capabilities() Capabilities
	// Close releases connections. The driver is unusable afterwards.
	Close() error
}

// MigrateRequest names one live migration.
type MigrateRequest struct {
	VM   string
	From string // the node the caller believes the VM is on
	To   string
}

// MigrationProgress is a progress report of a live migration in flight. In JSON (the
// API's event stream, webhooks) its keys are snake_case and Elapsed is
// elapsed_seconds, like every other duration of the API.
type MigrationProgress struct {
	VM   string `json:"vm"`
	From string `json:"from"`
	To   string `json:"to"`
	// Phase is "setup", "precopy" or "stopcopy".
	Phase          string  `json:"phase"`
	Round          int     `json:"round"`
	TransferredMiB float64 `json:"transferred_mib"`
	RemainingMiB   float64 `json:"remaining_mib"`
	// DiskMiB is the part of TransferredMiB that was local disks (storage migration).
	DiskMiB float64 `json:"disk_mib,omitempty"`
	// Elapsed is the time since the migration started, in cluster time.
	Elapsed time.Duration `json:"-"`
}

// progressJSON is MigrationProgress's JSON form: its fields (the local type has no
// methods, so no recursion) and Elapsed in seconds.
type progressJSON struct {
	progressFields
	ElapsedSeconds float64 `json:"elapsed_seconds"`
}

type progressFields MigrationProgress

// MarshalJSON writes Elapsed as elapsed_seconds.
func (p MigrationProgress) MarshalJSON() ([]byte, error) {
	return json.Marshal(progressJSON{progressFields(p), p.Elapsed.Seconds()})
}

// UnmarshalJSON reads what MarshalJSON writes (the API client follows event streams).
func (p *MigrationProgress) UnmarshalJSON(b []byte) error {
	var w progressJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*p = MigrationProgress(w.progressFields)
	p.Elapsed = time.Duration(math.Round(w.ElapsedSeconds * float64(time.Second)))
	return nil
}

// MigrationResult describes a finished migration.
type MigrationResult struct {
	// Duration as the platform measured it, in cluster time (0 = unknown).
	Duration       time.Duration
	TransferredMiB float64
	// DiskMiB is what a storage migration copied of the VM's local disks (0 when the
	// VM has none).
	DiskMiB  float64
	Downtime time.Duration
	// AlreadyThere is true when the VM was on the target before the call.
	AlreadyThere bool
}

// Capabilities are the optional abilities of a platform.
type Capabilities struct {
	// NativeDrain: the platform can evacuate a node itself (NativeDrainer).
	NativeDrain bool `json:"native_drain"`
	// PowerControl: VMs can be shut down and started (PowerController).
	PowerControl bool `json:"power_control"`
	// BootID: nodes report a boot ID that changes on every boot.
	BootID bool `json:"boot_id"`
	// PauseOwner: a pause carries its owner's mark on the platform (Node.PausedBy).
	PauseOwner bool `json:"pause_owner"`
	// MigrateSuspended: Migrate also moves a suspended (saved) VM, as saved state; it
	// stays suspended on the target. Without it a suspended VM cannot leave its node.
	MigrateSuspended bool `json:"migrate_suspended"`
	// StorageMigration: Migrate moves a running VM together with its local disks
	// (cluster.Disk.Local), copying them to the target's storage; the copies on the
	// source are removed once the VM runs on the target. Without it a VM with local
	// disks cannot leave its node.
	StorageMigration bool `json:"storage_migration"`
}

// PauseMark is the owner mark a run puts on the nodes it pauses.
func PauseMark(runID string) string { return "drover-run:" + runID }

// NativeDrainer is implemented by drivers whose platform evacuates a node itself
// (Hyper-V Suspend-ClusterNode -Drain, vSphere maintenance mode with DRS).
type NativeDrainer interface {
	DrainNode(ctx context.Context, node string, progress func(MigrationProgress)) error
}

// PowerController is implemented by drivers that can shut down and start VMs, used
// for non-migratable VMs under the "shutdown" policy.
type PowerController interface {
	// ShutdownVM shuts the VM down cleanly and waits until it is off.
	ShutdownVM(ctx context.Context, vm string) error
	// StartVM starts a stopped VM and waits until it runs.
	StartVM(ctx context.Context, vm string) error
}

// InstallResult is what an update install did on one node.
type InstallResult struct {
	Installed      []cluster.Update `json:"installed"`
	Failed         []UpdateFailure  `json:"failed,omitempty"`
	RebootRequired bool             `json:"reboot_required"`
	// Output is the plug-in's output (trimmed), for the report.
	Output string `json:"output,omitempty"`
}

// UpdateFailure is one update that did not install.
type UpdateFailure struct {
	Update cluster.Update `json:"update"`
	Error  string         `json:"error"`
}

// Updater is an update plug-in: what "patch" means on a node.
type Updater interface {
	// Scan lists the updates pending on node.
	Scan(ctx context.Context, node string) ([]cluster.Update, error)
	// Install installs the pending updates on node. Installing when nothing is pending
	// succeeds with an empty result.
	Install(ctx context.Context, node string) (InstallResult, error)
}

// Clock is the time of a cluster. Real platforms use wall time; the simulator runs
// faster than the wall clock, and the orchestrator measures and waits in its time.
type Clock interface {
	// Now is the current cluster time.
	Now() time.Time
	// WallDuration converts a span of cluster time into wall time, for timers and
	// context deadlines.
	WallDuration(d time.Duration) time.Duration
}

// Clocked is implemented by drivers whose cluster does not run on wall time.
type Clocked interface {
	Clock() Clock
}

// WallClock is the Clock of real platforms.
type WallClock struct{}

// Now returns time.Now().
func (WallClock) Now() time.Time { return time.Now() }

// WallDuration returns d unchanged.
func (WallClock) WallDuration(d time.Duration) time.Duration { return d }

// ClockOf returns the driver's clock, or WallClock when it has none.
func ClockOf(d any) Clock {
	if c, ok := d.(Clocked); ok {
		return c.Clock()
	}
	return WallClock{}
}
