package runs

import (
	"encoding/json"
	"time"
)

// State is the state of a run.
type State string

const (
	StateRunning         State = "running"
	StateWaitingApproval State = "waiting_approval"
	StateSucceeded       State = "succeeded"
	// StatePartiallyFailed: the run finished, some nodes failed within the failure budget.
	StatePartiallyFailed State = "partially_failed"
	StateFailed          State = "failed"
	StateStopped         State = "stopped"
)

// Terminal reports whether a run in state s is over.
func (s State) Terminal() bool {
	switch s {
	case StateSucceeded, StatePartiallyFailed, StateFailed, StateStopped:
		return true
	}
	return false
}

// Run is one rolling maintenance run of one cluster.
type Run struct {
	ID      string `json:"id"`
	Cluster string `json:"cluster"`
	State   State  `json:"state"`
	// StartedAt and FinishedAt are wall-clock times.
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
	// ClusterStartedAt and ClusterFinishedAt are the same moments on the cluster's
	// clock, the one node phases, migrations and the journal use (the simulator's
	// runs faster than the wall clock): durations of the run are taken from them.
	ClusterStartedAt  time.Time `json:"cluster_started_at,omitzero"`
	ClusterFinishedAt time.Time `json:"cluster_finished_at,omitzero"`
	// Order is the node order of the run; node records follow it.
	Order []string `json:"order"`
	// Options is the policy the run was started with; a resumed run keeps it.
	Options json.RawMessage `json:"options,omitempty"`
	// Plan is the plan computed before the first move, when there is one.
	Plan json.RawMessage `json:"plan,omitempty"`
	// Error says why a run failed or stopped.
	Error string `json:"error,omitempty"`
	// Owner is the process that runs it now (or last did).
	Owner Owner `json:"owner"`
	// Approved is set by `drover runs approve` to continue a canary run.
	Approved bool `json:"approved,omitempty"`
	// Resumes counts how often the run was resumed after an interruption.
	Resumes int `json:"resumes,omitempty"`
}

// NodeRecord is what happened to one node in one run.
type NodeRecord struct {
	Name string `json:"name"`
	// State is the node's state machine state (queued, pausing, draining, patching,
	// rebooting, verifying, resuming, failing_back, done, failed, skipped).
	State string `json:"state"`
	// Failure says why the node failed; set before the node is resumed.
	Failure string `json:"failure,omitempty"`
	// SkipReason says why the node was skipped.
	SkipReason string `json:"skip_reason,omitempty"`
	// WasPaused: the node was paused before the run, so the run leaves it paused.
	WasPaused bool `json:"was_paused,omitempty"`
	// PausedByUs: this run's pause of the node took effect (written with its outcome).
	PausedByUs bool `json:"paused_by_us,omitempty"`
	// LeftPaused says why the node could not be resumed, when it could not.
	LeftPaused string `json:"left_paused,omitempty"`
	// BootIDBefore is the node's boot ID before its reboot, to tell whether a reboot
	// already happened when a run resumes.
	BootIDBefore string `json:"boot_id_before,omitempty"`
	// Pending are the updates scanned before installing.
	Pending        []Update        `json:"pending,omitempty"`
	Installed      []Update        `json:"installed,omitempty"`
	FailedUpdates  []UpdateFailure `json:"failed_updates,omitempty"`
	RebootRequired bool            `json:"reboot_required,omitempty"`
	// Rebooted is set in the same write as the reboot's outcome.
	Rebooted bool `json:"rebooted,omitempty"`
	// SeenDown: after its reboot was issued, the node was seen not ready (persisted
	// evidence that it went down, for drivers without boot IDs).
	SeenDown   bool        `json:"seen_down,omitempty"`
	Migrations []Migration `json:"migrations,omitempty"`
	// VMsLeft are VMs deliberately left on the node (policy skip) or shut down for the
	// patch (policy shutdown), with what was done.
	VMsLeft    []VMLeft  `json:"vms_left,omitempty"`
	Phases     []Phase   `json:"phases,omitempty"`
	Hooks      []HookRun `json:"hooks,omitempty"`
	Attempts   int       `json:"attempts,omitempty"`
	StartedAt  time.Time `json:"started_at,omitzero"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
	Notes      []string  `json:"notes,omitempty"`
	Errors     []string  `json:"errors,omitempty"`
	// Outcomes are the closed actions of the node that must not run twice (reboot,
	// hooks, VM shutdown, install attempts), by action key, written in the same transaction
	// as the journal's outcome: a resumed run honours them instead of acting again.
	Outcomes map[string]Outcome `json:"outcomes,omitempty"`
}

// Outcome is how a journaled action ended.
type Outcome struct {
	// Seq is the journal entry of the outcome.
	Seq uint64 `json:"seq"`
	// Error is "" when the action succeeded.
	Error string `json:"error,omitempty"`
}

// Update is one update of a node.
type Update struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
}

// UpdateFailure is an update that failed to install.
type UpdateFailure struct {
	Update
	Error string `json:"error"`
}

// Migration kinds.
const (
	KindDrain    = "drain"
	KindFailback = "failback"
)

// Migration is one live migration attempt.
type Migration struct {
	VM   string `json:"vm"`
	From string `json:"from"`
	To   string `json:"to"`
	Kind string `json:"kind"`
	// Seconds is the migration's duration in cluster time.
	Seconds        float64 `json:"seconds"`
	TransferredMiB float64 `json:"transferred_mib,omitempty"`
	// DiskMiB is the part of TransferredMiB that was local disks (storage migration).
	DiskMiB float64 `json:"disk_mib,omitempty"`
	// Streams is the most migrations that ran at once through From or To while
	// this one ran, itself included (0: not known).
	Streams int    `json:"streams,omitempty"`
	OK      bool   `json:"ok"`
	Error   string `json:"error,omitempty"`
	// Aborted: the run cut the migration off (Ctrl-C, runs stop, a failure
	// elsewhere): not a failed attempt of the migration.
	Aborted   bool      `json:"aborted,omitempty"`
	Attempt   int       `json:"attempt"`
	StartedAt time.Time `json:"started_at"`
}

// VMLeft is a VM the run did not move off its node.
type VMLeft struct {
	VM     string `json:"vm"`
	Action string `json:"action"` // "skipped" (left running) or "shutdown" (stopped, restarted after)
	Reason string `json:"reason"`
	// Restarted is set once a shut-down VM runs again.
	Restarted bool `json:"restarted,omitempty"`
}

// Phase is the time a node spent in one state, in cluster time.
type Phase struct {
	Name    string    `json:"name"`
	Start   time.Time `json:"start"`
	Seconds float64   `json:"seconds"`
}

// HookRun is the result of a pre- or post-update hook.
type HookRun struct {
	Name     string  `json:"name"`
	ExitCode int     `json:"exit_code"`
	Output   string  `json:"output,omitempty"`
	Seconds  float64 `json:"seconds"`
	Error    string  `json:"error,omitempty"`
}

// Op is the kind of a journaled action.
type Op string

const (
	OpRunStart Op = "run_start"
	OpRunEnd   Op = "run_end"
	OpPause    Op = "pause"
	OpResume   Op = "resume"
	OpMigrate  Op = "migrate"
	// OpDrain is the platform's own drain of a node (drivers.NativeDrainer).
	OpDrain    Op = "drain"
	OpInstall  Op = "install"
	OpReboot   Op = "reboot"
	OpShutdown Op = "shutdown"
	OpStart    Op = "start"
	OpHook     Op = "hook"
	OpState    Op = "state"
	OpLock     Op = "lock"
)

// Status of a journal entry.
type Status string

const (
	StatusIntent Status = "intent"
	StatusDone   Status = "done"
	StatusFailed Status = "failed"
	// StatusEvent is a fact that needs no outcome (a state change, a lock takeover).
	StatusEvent Status = "event"
)

// Entry is one line of a run's journal. An intent is written before its action runs;
// its outcome (done or failed) after, referring to the intent by Ref.
type Entry struct {
	Seq    uint64    `json:"seq"`
	At     time.Time `json:"at"`
	Op     Op        `json:"op"`
	Status Status    `json:"status"`
	Ref    uint64    `json:"ref,omitempty"`
	Node   string    `json:"node,omitempty"`
	VM     string    `json:"vm,omitempty"`
	From   string    `json:"from,omitempty"`
	To     string    `json:"to,omitempty"`
	Detail string    `json:"detail,omitempty"`
}

// Lock is the run lock of a cluster: at most one active run per cluster.
type Lock struct {
	Cluster  string    `json:"cluster"`
	RunID    string    `json:"run_id"`
	Owner    Owner     `json:"owner"`
	Acquired time.Time `json:"acquired"`
}

// Timing is one measurement of a past run, used to refine estimates.
type Timing struct {
	Node string `json:"node"`
	// Kind is "reboot", "install", "drain" or "migration".
	Kind    string    `json:"kind"`
	Seconds float64   `json:"seconds"`
	MiB     float64   `json:"mib,omitempty"`
	At      time.Time `json:"at"`
	// To and Streams, for a migration: its target and the most migrations that ran
	// at once through its source or target (the drain scheduler learns links from
	// them).
	To      string `json:"to,omitempty"`
	Streams int    `json:"streams,omitempty"`
}
