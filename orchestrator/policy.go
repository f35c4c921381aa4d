package orchestrator

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/drivers"
	"github.com/droverhq/drover/policies"
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

// Reboot evidence (policy.reboot_evidence).
const (
	RebootEvidenceStrict     = "strict"
	RebootEvidenceFirstReady = "first_ready"
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
	// DrainScheduler is adaptive (concurrency from the bandwidth model and measured
	// rates, within the two caps above) or fixed (always up to the caps).
	DrainScheduler string `json:"drain_scheduler" mapstructure:"drain_scheduler"`
	// MaxParallelNodes is how many nodes may be in maintenance at once, when the
	// reserve and capacity allow it with all of them out.
	MaxParallelNodes int `json:"max_parallel_nodes" mapstructure:"max_parallel_nodes"`
	// RetriesPerNode is how often a failed step of a node (a VM's migration, the
	// install) is tried again before the node fails.
	RetriesPerNode int `json:"retries_per_node" mapstructure:"retries_per_node"`
	// RebootTimeout: how long a node may take to come back after its reboot.
	RebootTimeout Duration `json:"reboot_timeout" mapstructure:"reboot_timeout"`
	// DrainTimeout: how long the drain of one node may take (0 = no limit).
	DrainTimeout Duration `json:"drain_timeout" mapstructure:"drain_timeout"`
	// MigrationTimeout: how long one live migration may take (0 = no limit); a
	// migration that takes longer is cancelled on its own (the VM stays on its
	// source) and retried like any failed migration, the rest of the drain goes on.
	MigrationTimeout Duration `json:"migration_timeout,omitempty" mapstructure:"migration_timeout"`
	// RebootEvidence is what proves a node rebooted: strict (a boot ID change, or
	// the node seen down after the reboot command) or first_ready (also the first
	// ready answer after the command, for drivers that report no boot ID and whose
	// nodes may come back faster than poll_interval). "" is strict.
	RebootEvidence string `json:"reboot_evidence,omitempty" mapstructure:"reboot_evidence"`
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
	// LocalStorage: what to do with running VMs that have local disks (localstorage.go).
	LocalStorage string `json:"local_storage,omitempty" mapstructure:"local_storage"`
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
	// Evacuate: the run empties its nodes for good (drover evacuate NODE): each is
	// paused and drained, then left paused, neither patched nor rebooted
	// (evacuate.go). Set by the command, never by a config file; stored with the run
	// so that runs resume does the same.
	Evacuate bool `json:"evacuate,omitempty" mapstructure:"-"`
	// PollInterval is how often readiness is polled, in cluster time.
	PollInterval Duration `json:"poll_interval" mapstructure:"poll_interval"`
	// RequireAllNodesOnline refuses to start, and stops the run between nodes, when
	// any node of the cluster is not up (CAU's RequireAllNodesOnline); otherwise a
	// majority of the nodes must be up and the run's own nodes ready.
	RequireAllNodesOnline bool `json:"require_all_nodes_online,omitempty" mapstructure:"require_all_nodes_online"`
	// FailbackHours limits failback "policy" to a daily span ("22:00-06:00") in
	// FailbackTZ (an IANA zone, "" = UTC); empty means any time.
	FailbackHours string `json:"failback_hours,omitempty" mapstructure:"failback_hours"`
	FailbackTZ    string `json:"failback_tz,omitempty" mapstructure:"failback_tz"`
	// PreHook runs before a node is paused: when it fails the node is not touched.
	PreHook Hook `json:"pre_hook" mapstructure:"pre_hook"`
	// PostHook runs once a node is back and verified, before it is resumed: when it
	// fails the node is resumed and counted as failed.
	PostHook Hook `json:"post_hook" mapstructure:"post_hook"`
	// WarnAfter warns (event, log, report note) when the run takes longer; 0 = never.
	WarnAfter Duration `json:"warn_after" mapstructure:"warn_after"`
	// StopAfter stops the run as `drover runs stop` does when it takes longer; 0 = never.
	StopAfter Duration `json:"stop_after" mapstructure:"stop_after"`
	// HealthGate must pass between nodes, before the next node is paused.
	HealthGate HealthGate `json:"health_gate" mapstructure:"health_gate"`
	// Canary stops the run after its first maintained node until it is approved
	// (`drover runs approve ID`).
	Canary bool `json:"canary,omitempty" mapstructure:"canary"`
}

// Hook is a local command run for each node. It gets DROVER_NODE, DROVER_RUN_ID and
// DROVER_PHASE (pre, post or gate) in its environment; its output is recorded.
type Hook struct {
	// Command is the argv; empty means no hook. No shell is involved.
	Command []string `json:"command,omitempty" mapstructure:"command"`
	// Timeout kills the hook's whole process group, in wall-clock time.
	Timeout Duration `json:"timeout" mapstructure:"timeout"`
}

// Enabled reports whether a command is configured.
func (h Hook) Enabled() bool { return len(h.Command) > 0 }

// HealthGate is the check between nodes: the run's nodes (every node, with
// RequireAllNodesOnline) must be ready, then the optional command (exit 0) or HTTP
// check (GET, 2xx) must pass.
type HealthGate struct {
	// Command is a local check (argv); exit status 0 is healthy.
	Command []string `json:"command,omitempty" mapstructure:"command"`
	// URL is fetched with GET; a 2xx answer is healthy.
	URL string `json:"url,omitempty" mapstructure:"url"`
	// Timeout bounds one check attempt (wall-clock time).
	Timeout Duration `json:"timeout" mapstructure:"timeout"`
	// Retries is how many more attempts a failing check gets.
	Retries int `json:"retries" mapstructure:"retries"`
	// Interval is the pause between attempts, in cluster time.
	Interval Duration `json:"interval" mapstructure:"interval"`
	// ReadyTimeout is how long nodes may take to be ready again, in cluster time.
	ReadyTimeout Duration `json:"ready_timeout" mapstructure:"ready_timeout"`
}

// DefaultPolicy returns the defaults, close to what the field's tools do: retries 3
// and a 15 minute reboot timeout (CAU). Migrations are scheduled adaptively under
// caps of 32 in the run and 8 per node (vCenter's per-host limit); the fixed
// scheduler with 2 per node is Hyper-V's behaviour.
func DefaultPolicy() Policy {
	return Policy{
		MaxParallelMigrations: 32,
		MaxMigrationsPerNode:  8,
		DrainScheduler:        DrainAdaptive,
		MaxParallelNodes:      1,
		RetriesPerNode:        3,
		RebootTimeout:         Duration(15 * time.Minute),
		DrainTimeout:          Duration(time.Hour),
		RebootEvidence:        RebootEvidenceStrict,
		Failback:              FailbackNone,
		NodeOrder:             "fewest-vms",
		MaxFailedNodes:        -1,
		NonMigratable:         NonMigratableFail,
		ReserveNodes:          0,
		CPUOvercommit:         4,
		PollInterval:          Duration(5 * time.Second),
		PreHook:               Hook{Timeout: Duration(10 * time.Minute)},
		PostHook:              Hook{Timeout: Duration(10 * time.Minute)},
		HealthGate: HealthGate{
			Timeout:      Duration(30 * time.Second),
			Retries:      3,
			Interval:     Duration(10 * time.Second),
			ReadyTimeout: Duration(15 * time.Minute),
		},
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
	switch {
	case p.MigrationTimeout < 0:
		bad("migration_timeout", "set 0 (no limit) or a positive duration, e.g. 30m", "must not be negative, got %s", p.MigrationTimeout.D())
	case p.DrainTimeout > 0 && p.MigrationTimeout > p.DrainTimeout:
		bad("migration_timeout", "set it at most policy.drain_timeout, or raise policy.drain_timeout", "%s is longer than policy.drain_timeout (%s), which would cancel the drain first", p.MigrationTimeout.D(), p.DrainTimeout.D())
	}
	switch p.RebootEvidence {
	case "", RebootEvidenceStrict, RebootEvidenceFirstReady:
	default:
		bad("reboot_evidence", "use strict or first_ready", "unknown value %q", p.RebootEvidence)
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
	switch p.LocalStorage {
	case "", LocalStorageMigrate, LocalStorageFail, LocalStorageShutdown, LocalStorageSkip:
	default:
		bad("local_storage", "use migrate, fail, shutdown or skip, or leave it out to migrate where the driver can", "unknown mode %q", p.LocalStorage)
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
	errs = append(errs, p.validateRunPolicies()...)
	errs = append(errs, p.validateDrain()...)
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

// validateRunPolicies checks the hooks, the health gate, the run's deadlines and the
// failback hours.
func (p Policy) validateRunPolicies() []error {
	var errs []error
	bad := func(field, fix, problem string, args ...any) {
		errs = append(errs, drivers.Fieldf("policy."+field, fix, problem, args...))
	}
	if p.WarnAfter < 0 {
		bad("warn_after", "set 0 (never) or a positive duration, e.g. 2h", "must not be negative, got %s", p.WarnAfter.D())
	}
	if p.StopAfter < 0 {
		bad("stop_after", "set 0 (never) or a positive duration, e.g. 4h", "must not be negative, got %s", p.StopAfter.D())
	}
	if p.WarnAfter > 0 && p.StopAfter > 0 && p.WarnAfter >= p.StopAfter {
		bad("warn_after", "set warn_after below policy.stop_after, or stop_after to 0", "%s is not less than policy.stop_after (%s): the warning would come after the stop", p.WarnAfter.D(), p.StopAfter.D())
	}
	if p.FailbackHours != "" {
		if _, err := policies.ParseHoursWindow(p.FailbackHours, p.FailbackTZ); err != nil {
			field := "failback_hours"
			if fe, ok := errors.AsType[*cluster.FieldError](err); ok && fe.Field == "tz" {
				field = "failback_tz"
			}
			bad(field, `use "HH:MM-HH:MM" (e.g. "22:00-06:00") and an IANA zone such as Europe/Berlin`, "%v", err)
		}
	}
	for _, h := range []struct {
		key  string
		hook Hook
	}{{"pre_hook", p.PreHook}, {"post_hook", p.PostHook}} {
		if !h.hook.Enabled() {
			continue
		}
		if h.hook.Command[0] == "" {
			bad(h.key+".command", "give the program as the first element, e.g. [/usr/local/bin/check, --node]", "empty program name")
		}
		if h.hook.Timeout <= 0 {
			bad(h.key+".timeout", "set a positive duration, e.g. 10m", "must be positive, got %s", h.hook.Timeout.D())
		}
	}
	g := p.HealthGate
	if len(g.Command) > 0 && g.URL != "" {
		bad("health_gate", "set either health_gate.command or health_gate.url", "both a command and a URL are set")
	}
	if len(g.Command) > 0 && g.Command[0] == "" {
		bad("health_gate.command", "give the program as the first element", "empty program name")
	}
	if g.URL != "" {
		u, err := url.Parse(g.URL)
		switch {
		case err != nil:
			bad("health_gate.url", "give an http:// or https:// URL", "cannot parse it")
		case u.Scheme != "http" && u.Scheme != "https", u.Host == "":
			bad("health_gate.url", "give an http:// or https:// URL with a host", "%q is not an http(s) URL", RedactURL(u.String()))
		}
	}
	if g.Timeout <= 0 {
		bad("health_gate.timeout", "set a positive duration, e.g. 30s", "must be positive, got %s", g.Timeout.D())
	}
	if g.Retries < 0 {
		bad("health_gate.retries", "set 0 or more, e.g. 3", "must not be negative, got %d", g.Retries)
	}
	if g.Interval <= 0 {
		bad("health_gate.interval", "set a positive duration, e.g. 10s", "must be positive, got %s", g.Interval.D())
	}
	if g.ReadyTimeout <= 0 {
		bad("health_gate.ready_timeout", "set a positive duration, e.g. 15m", "must be positive, got %s", g.ReadyTimeout.D())
	}
	return errs
}
