package orchestrator

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/droverhq/drover/drivers"
)

// Duration is a time.Duration that reads and writes as "15m" in JSON.
type Duration time.Duration

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalJSON writes d as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalText reads a Go duration string, for config decoding.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// UnmarshalJSON reads a Go duration string (or a number of nanoseconds).
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n int64
		if err2 := json.Unmarshal(b, &n); err2 != nil {
			return fmt.Errorf("duration: %w", err)
		}
		*d = Duration(n)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Failback modes.
const (
	FailbackNone      = "none"
	FailbackImmediate = "immediate"
	FailbackPolicy    = "policy"
)

// Non-migratable VM handling.
const (
	NonMigratableFail     = "fail"
	NonMigratableShutdown = "shutdown"
	NonMigratableSkip     = "skip"
)

// Policy holds the options of one run. A run stores the policy it started with, so a
// resumed run behaves as it began.
type Policy struct {
	// MaxParallelMigrations caps live migrations in flight in the whole run.
	MaxParallelMigrations int `json:"max_parallel_migrations" mapstructure:"max_parallel_migrations"`
	// MaxMigrationsPerNode caps migrations in flight into or out of any one node.
	MaxMigrationsPerNode int `json:"max_migrations_per_node" mapstructure:"max_migrations_per_node"`
	// RetriesPerNode is how often a failed step of a node (a VM's migration, the
	// install) is tried again before the node fails.
	RetriesPerNode int `json:"retries_per_node" mapstructure:"retries_per_node"`
	// RebootTimeout: how long a node may take to come back after its reboot.
	RebootTimeout Duration `json:"reboot_timeout" mapstructure:"reboot_timeout"`
	// DrainTimeout: how long the drain of one node may take (0 = no limit).
	DrainTimeout Duration `json:"drain_timeout" mapstructure:"drain_timeout"`
	// Failback: none, immediate or policy.
	Failback string `json:"failback" mapstructure:"failback"`
	// NodeOrder names the order policy (fewest-vms, explicit, ...).
	NodeOrder string `json:"node_order" mapstructure:"node_order"`
	// OrderLabel is the label key that groups nodes for NodeOrder "label".
	OrderLabel string `json:"order_label,omitempty" mapstructure:"order_label"`
	// Nodes limits the run to these nodes; with NodeOrder "explicit", in this order.
	Nodes []string `json:"nodes,omitempty" mapstructure:"nodes"`
	// MaxFailedNodes stops the run when more nodes fail; -1 means a third of the nodes.
	MaxFailedNodes int `json:"max_failed_nodes" mapstructure:"max_failed_nodes"`
	// NonMigratable: what to do with running VMs that cannot live-migrate.
	NonMigratable string `json:"non_migratable" mapstructure:"non_migratable"`
	// ReserveNodes is k of the N-k cluster reserve.
	ReserveNodes int `json:"reserve_nodes" mapstructure:"reserve_nodes"`
	// OverrideReserve pauses nodes even when the reserve would break.
	OverrideReserve bool `json:"override_reserve,omitempty" mapstructure:"override_reserve"`
	// CPUOvercommit caps vCPUs per physical CPU on a migration target.
	CPUOvercommit float64 `json:"cpu_overcommit" mapstructure:"cpu_overcommit"`
	// MemoryHeadroomMiB is kept free on every target for the hypervisor itself.
	MemoryHeadroomMiB int64 `json:"memory_headroom_mib" mapstructure:"memory_headroom_mib"`
	// Force patches nodes that report no pending update.
	Force bool `json:"force,omitempty" mapstructure:"force"`
	// PollInterval is how often readiness is polled, in cluster time.
	PollInterval Duration `json:"poll_interval" mapstructure:"poll_interval"`
}

// DefaultPolicy returns the defaults, close to what the field's tools do: two
// migrations per node (Hyper-V), retries 3 and a 15 minute reboot timeout (CAU).
func DefaultPolicy() Policy {
	return Policy{
		MaxParallelMigrations: 4,
		MaxMigrationsPerNode:  2,
		RetriesPerNode:        3,
		RebootTimeout:         Duration(15 * time.Minute),
		DrainTimeout:          Duration(time.Hour),
		Failback:              FailbackNone,
		NodeOrder:             "fewest-vms",
		MaxFailedNodes:        -1,
		NonMigratable:         NonMigratableFail,
		ReserveNodes:          0,
		CPUOvercommit:         4,
		PollInterval:          Duration(5 * time.Second),
	}
}

// Validate checks the policy; errors name the config key under "policy." and the fix.
func (p Policy) Validate() error {
	var errs []error
	bad := func(field, fix, problem string, args ...any) {
		errs = append(errs, drivers.Fieldf("policy."+field, fix, problem, args...))
	}
	if p.MaxParallelMigrations < 1 {
		bad("max_parallel_migrations", "set 1 or more, e.g. 4", "must be at least 1, got %d", p.MaxParallelMigrations)
	}
	if p.MaxMigrationsPerNode < 1 {
		bad("max_migrations_per_node", "set 1 or more, e.g. 2", "must be at least 1, got %d", p.MaxMigrationsPerNode)
	}
	if p.RetriesPerNode < 0 {
		bad("retries_per_node", "set 0 or more, e.g. 3", "must not be negative, got %d", p.RetriesPerNode)
	}
	if p.RebootTimeout <= 0 {
		bad("reboot_timeout", "set a positive duration, e.g. 15m", "must be positive, got %s", p.RebootTimeout.D())
	}
	if p.DrainTimeout < 0 {
		bad("drain_timeout", "set 0 (no limit) or a positive duration, e.g. 1h", "must not be negative, got %s", p.DrainTimeout.D())
	}
	if p.PollInterval <= 0 {
		bad("poll_interval", "set a positive duration, e.g. 5s", "must be positive, got %s", p.PollInterval.D())
	}
	switch p.Failback {
	case FailbackNone, FailbackImmediate, FailbackPolicy:
	default:
		bad("failback", "use none, immediate or policy", "unknown mode %q", p.Failback)
	}
	switch p.NonMigratable {
	case NonMigratableFail, NonMigratableShutdown, NonMigratableSkip:
	default:
		bad("non_migratable", "use fail, shutdown or skip", "unknown mode %q", p.NonMigratable)
	}
	if p.MaxFailedNodes < -1 {
		bad("max_failed_nodes", "set 0 or more, or -1 for a third of the nodes", "got %d", p.MaxFailedNodes)
	}
	if p.ReserveNodes < 0 {
		bad("reserve_nodes", "set 0 or more", "must not be negative, got %d", p.ReserveNodes)
	}
	if p.CPUOvercommit <= 0 {
		bad("cpu_overcommit", "set a positive ratio, e.g. 4", "must be positive, got %g", p.CPUOvercommit)
	}
	if p.MemoryHeadroomMiB < 0 {
		bad("memory_headroom_mib", "set 0 or more", "must not be negative, got %d", p.MemoryHeadroomMiB)
	}
	seen := map[string]bool{}
	for i, n := range p.Nodes {
		if n == "" {
			bad(fmt.Sprintf("nodes[%d]", i), "remove the empty entry", "empty node name")
		}
		if seen[n] {
			bad(fmt.Sprintf("nodes[%d]", i), "list each node once", "node %q listed twice", n)
		}
		seen[n] = true
	}
	return errors.Join(errs...)
}
