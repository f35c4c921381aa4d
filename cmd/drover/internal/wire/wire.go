package wire

import (
	"encoding/json"
	"sort"
	"strings"
	"time"

	"github.com/droverhq/drover/orchestrator"
	"github.com/droverhq/drover/orchestrator/schedule"
	"github.com/droverhq/drover/policies"
	"github.com/droverhq/drover/runs"
)

// APIPrefix is the API's path prefix; the version changes when a wire type changes
// incompatibly.
const APIPrefix = "/api/v1"

// ErrorBody is every error answer: {"error": "..."}; Field names the request field
// at fault for a 400, RunID the run in the way for a 409.
type ErrorBody struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
	RunID string `json:"run_id,omitempty"`
}

// RunSummary is one entry of GET /api/v1/runs (the same object as
// `drover runs list --json`).
type RunSummary struct {
	ID         string     `json:"id"`
	Cluster    string     `json:"cluster"`
	State      runs.State `json:"state"`
	StartedAt  time.Time  `json:"started_at"`
	FinishedAt time.Time  `json:"finished_at,omitzero"`
	Nodes      int        `json:"nodes"`
	Error      string     `json:"error,omitempty"`
}

// ClusterInfo is one entry of GET /api/v1/clusters.
type ClusterInfo struct {
	Name   string `json:"name"`
	Driver string `json:"driver"`
	// Schedule describes when runs are due; NextRun is the next due time (zero when
	// none or paused).
	Schedule string    `json:"schedule"`
	Paused   bool      `json:"paused"`
	NextRun  time.Time `json:"next_run,omitzero"`
	// Windows are the maintenance windows (none = always open); WindowOpen says
	// whether one is open now.
	Windows    []policies.WindowSpec `json:"windows"`
	WindowOpen bool                  `json:"window_open"`
	// ActiveRun is the run the daemon executes now, "" when none.
	ActiveRun string `json:"active_run,omitempty"`
	// Policy is the cluster's run policy, without hooks and health gate (their
	// commands and URLs may carry credentials).
	Policy json.RawMessage `json:"policy"`
}

// PolicyOverrides are the policy keys a run started through the API may change.
// Hooks, health-gate commands and URLs are not among them: they run commands on the
// daemon's host, so they come from the config file only.
type PolicyOverrides struct {
	MaxParallelMigrations *int     `json:"max_parallel_migrations,omitempty"`
	MaxMigrationsPerNode  *int     `json:"max_migrations_per_node,omitempty"`
	DrainScheduler        *string  `json:"drain_scheduler,omitempty"`
	MaxParallelNodes      *int     `json:"max_parallel_nodes,omitempty"`
	RetriesPerNode        *int     `json:"retries_per_node,omitempty"`
	RebootTimeout         *string  `json:"reboot_timeout,omitempty"`
	DrainTimeout          *string  `json:"drain_timeout,omitempty"`
	Failback              *string  `json:"failback,omitempty"`
	NodeOrder             *string  `json:"node_order,omitempty"`
	OrderLabel            *string  `json:"order_label,omitempty"`
	Nodes                 []string `json:"nodes,omitempty"`
	MaxFailedNodes        *int     `json:"max_failed_nodes,omitempty"`
	NonMigratable         *string  `json:"non_migratable,omitempty"`
	ReserveNodes          *int     `json:"reserve_nodes,omitempty"`
	OverrideReserve       *bool    `json:"override_reserve,omitempty"`
	Force                 *bool    `json:"force,omitempty"`
	// Canary stops the run after its first node until it is approved.
	Canary *bool `json:"canary,omitempty"`
}

// StartRequest is the body of POST /api/v1/runs. Cluster may be omitted when the
// daemon runs one cluster.
type StartRequest struct {
	Cluster string           `json:"cluster,omitempty"`
	Policy  *PolicyOverrides `json:"policy,omitempty"`
}

// RunAction is the answer of the run actions (start, stop, resume, approve): 202
// Accepted, the run continues in the daemon.
type RunAction struct {
	ID      string     `json:"id"`
	Cluster string     `json:"cluster"`
	State   runs.State `json:"state"`
	Action  string     `json:"action"`
}

// PauseState is the answer of the pause switch.
type PauseState struct {
	Cluster string    `json:"cluster"`
	Paused  bool      `json:"paused"`
	NextRun time.Time `json:"next_run,omitzero"`
}

// Preview is GET /api/v1/clusters/{cluster}/preview: what a new run would do now.
// It is the same object as `drover apply --dry-run --json` (both are built by
// NewPreview); the daemon adds Predictions, from its maintenance windows.
type Preview struct {
	Cluster string            `json:"cluster"`
	DryRun  bool              `json:"dry_run"`
	Order   []string          `json:"order"`
	Nodes   []runs.NodeRecord `json:"nodes"`
	// Plan is the whole run as predicted (`drover plan --json`).
	Plan          *orchestrator.RunPlan `json:"plan"`
	UnfinishedRun string                `json:"unfinished_run,omitempty"`
	// Predictions: per node, the predicted time and where it comes from, and the
	// slot of the maintenance windows in which it would start now.
	Predictions map[string]NodeSlot `json:"predictions,omitempty"`
}

// NewPreview is the preview of a prepared run of cluster; unfinished is the ID of
// the cluster's unfinished run, "" when none.
func NewPreview(cluster string, prep orchestrator.Prepared, unfinished string) Preview {
	out := Preview{Cluster: cluster, DryRun: true, Order: prep.Order, Nodes: prep.Records, Plan: prep.Plan, UnfinishedRun: unfinished}
	if out.Order == nil {
		out.Order = []string{}
	}
	if out.Nodes == nil {
		out.Nodes = []runs.NodeRecord{}
	}
	return out
}

// NodeSlot is a node's predicted time and window slot.
type NodeSlot struct {
	Prediction schedule.Prediction `json:"prediction"`
	Slot       schedule.Slot       `json:"slot"`
}

// PublicPolicy is a cluster's effective policy without the keys that run commands
// or reach URLs (hooks, health gate): their commands and URLs may carry
// credentials, and viewers read this.
func PublicPolicy(p orchestrator.Policy) json.RawMessage {
	b, err := json.Marshal(p)
	if err != nil {
		return json.RawMessage("{}")
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return json.RawMessage("{}")
	}
	for _, k := range []string{"pre_hook", "post_hook", "health_gate"} {
		delete(m, k)
	}
	out, err := json.Marshal(m)
	if err != nil {
		return json.RawMessage("{}")
	}
	return out
}

// PolicyLine writes a public policy (PublicPolicy's JSON) on one line, keys sorted:
// "canary=false failback=none ...", as `drover plan` shows it.
func PolicyLine(public json.RawMessage) string {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(public, &m); err != nil {
		return "(unreadable)"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+strings.Trim(string(m[k]), `"`))
	}
	return strings.Join(parts, " ")
}
