// Package report turns a run's records into the report users read: per run and per
// node, what was installed, moved, failed and how long each phase took. It is pure:
// records in, a Report out; renderers write it in several formats.
package report

import (
	"sort"
	"time"

	"github.com/droverhq/drover/runs"
)

// Report is a run as users see it. Its JSON form is a contract (`apply --json`,
// `runs show --json`, the API).
type Report struct {
	ID         string    `json:"id"`
	Cluster    string    `json:"cluster"`
	State      string    `json:"state"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
	// ClusterStartedAt and ClusterFinishedAt are the run's start and end on the
	// cluster's clock, the one of node phases (zero for runs recorded before).
	ClusterStartedAt  time.Time `json:"cluster_started_at,omitzero"`
	ClusterFinishedAt time.Time `json:"cluster_finished_at,omitzero"`
	Error             string    `json:"error,omitempty"`
	Resumes           int       `json:"resumes,omitempty"`
	Nodes             []Node    `json:"nodes"`
	Summary           Summary   `json:"summary"`
}

// Node is one node's part of a run.
type Node struct {
	Name  string `json:"name"`
	State string `json:"state"`
	// UpdatesInstalled counts the updates installed; Installed lists them.
	UpdatesInstalled int                  `json:"updates_installed"`
	Installed        []runs.Update        `json:"installed"`
	UpdatesFailed    int                  `json:"updates_failed"`
	FailedUpdates    []runs.UpdateFailure `json:"failed_updates,omitempty"`
	Rebooted         bool                 `json:"rebooted"`
	// Migrations are the live migrations that succeeded; FailedMigrations the
	// attempts that did not.
	Migrations       []Migration `json:"migrations"`
	FailedMigrations []Migration `json:"failed_migrations,omitempty"`
	// AbortedMigrations were cut off by the run (stop, Ctrl-C): not failed attempts.
	AbortedMigrations []Migration    `json:"aborted_migrations,omitempty"`
	VMsLeft           []runs.VMLeft  `json:"vms_left,omitempty"`
	Phases            []runs.Phase   `json:"phases,omitempty"`
	Hooks             []runs.HookRun `json:"hooks,omitempty"`
	Failure           string         `json:"failure,omitempty"`
	SkipReason        string         `json:"skip_reason,omitempty"`
	LeftPaused        string         `json:"left_paused,omitempty"`
	Notes             []string       `json:"notes,omitempty"`
	Errors            []string       `json:"errors,omitempty"`
	// Seconds is the node's whole maintenance time, in cluster time.
	Seconds float64 `json:"seconds"`
}

// Migration is one live migration in a report.
type Migration struct {
	VM             string  `json:"vm"`
	From           string  `json:"from"`
	To             string  `json:"to"`
	Seconds        float64 `json:"seconds"`
	Kind           string  `json:"kind"`
	TransferredMiB float64 `json:"transferred_mib,omitempty"`
	DiskMiB        float64 `json:"disk_mib,omitempty"`
	Attempt        int     `json:"attempt,omitempty"`
	Error          string  `json:"error,omitempty"`
}

// Summary totals a run.
type Summary struct {
	Nodes            int `json:"nodes"`
	NodesDone        int `json:"nodes_done"`
	NodesFailed      int `json:"nodes_failed"`
	NodesSkipped     int `json:"nodes_skipped"`
	UpdatesInstalled int `json:"updates_installed"`
	UpdatesFailed    int `json:"updates_failed"`
	Migrations       int `json:"migrations"`
	FailedMigrations int `json:"failed_migrations"`
	// AbortedMigrations counts migrations the run cut off (not failed attempts).
	AbortedMigrations int `json:"aborted_migrations,omitempty"`
	// VMsMoved counts distinct VMs moved; MigrationsPerVM is Migrations / VMsMoved
	// for drain migrations (failback moves are the point of failback, not waste).
	VMsMoved int `json:"vms_moved"`
	// MovedMoreThanOnce counts the VMs moved twice or more, failbacks included:
	// the same count as the plan's moved_more_than_once, to compare the two.
	MovedMoreThanOnce int      `json:"moved_more_than_once"`
	MigrationsPerVM   float64  `json:"migrations_per_vm"`
	TransferredMiB    float64  `json:"transferred_mib"`
	DiskMiB           float64  `json:"disk_mib,omitempty"`
	LeftPaused        []string `json:"left_paused,omitempty"`
	VMsLeftRunning    []string `json:"vms_left_running,omitempty"`
	// VMsAway are VMs left away from their home node after a failure, a stop, or a
	// failback that did not bring them back.
	VMsAway []VMAway `json:"vms_away,omitempty"`
	// Seconds is the run's wall time; ClusterSeconds its cluster time (the clock
	// of node times and the plan's ETA).
	Seconds        float64 `json:"seconds"`
	ClusterSeconds float64 `json:"cluster_seconds,omitempty"`
}

// Build makes the report of a run from its records.
func Build(r runs.Run, nodes []runs.NodeRecord) Report {
	rep := Report{ID: r.ID, Cluster: r.Cluster, State: string(r.State), StartedAt: r.StartedAt, FinishedAt: r.FinishedAt, Error: r.Error, Resumes: r.Resumes}
	if !r.FinishedAt.IsZero() {
		rep.Summary.Seconds = r.FinishedAt.Sub(r.StartedAt).Seconds()
	}
	rep.ClusterStartedAt, rep.ClusterFinishedAt = r.ClusterStartedAt, r.ClusterFinishedAt
	if !r.ClusterStartedAt.IsZero() && !r.ClusterFinishedAt.IsZero() {
		// A clock that went back (an in-process simulator started anew) gives no span.
		rep.Summary.ClusterSeconds = max(0, r.ClusterFinishedAt.Sub(r.ClusterStartedAt).Seconds())
	}
	moved := map[string]bool{}
	drainMoves := 0
	for _, n := range nodes {
		rn := Node{
			Name: n.Name, State: n.State,
			UpdatesInstalled: len(n.Installed), Installed: n.Installed,
			UpdatesFailed: len(n.FailedUpdates), FailedUpdates: n.FailedUpdates,
			Rebooted: n.Rebooted, VMsLeft: n.VMsLeft, Phases: n.Phases, Hooks: n.Hooks,
			Failure: n.Failure, SkipReason: n.SkipReason, LeftPaused: n.LeftPaused,
			Notes: n.Notes, Errors: n.Errors,
			Migrations: []Migration{},
		}
		if rn.Installed == nil {
			rn.Installed = []runs.Update{}
		}
		for _, p := range n.Phases {
			rn.Seconds += p.Seconds
		}
		for _, m := range n.Migrations {
			rm := Migration{VM: m.VM, From: m.From, To: m.To, Seconds: m.Seconds, Kind: m.Kind, TransferredMiB: m.TransferredMiB, DiskMiB: m.DiskMiB, Attempt: m.Attempt, Error: m.Error}
			if !m.OK && m.Aborted {
				rn.AbortedMigrations = append(rn.AbortedMigrations, rm)
				rep.Summary.AbortedMigrations++
				continue
			}
			if !m.OK {
				rn.FailedMigrations = append(rn.FailedMigrations, rm)
				rep.Summary.FailedMigrations++
				continue
			}
			rn.Migrations = append(rn.Migrations, rm)
			rep.Summary.Migrations++
			rep.Summary.TransferredMiB += m.TransferredMiB
			rep.Summary.DiskMiB += m.DiskMiB
			if m.Kind == runs.KindDrain {
				drainMoves++
				moved[m.VM] = true
			}
		}
		for _, l := range n.VMsLeft {
			if l.Action == "skipped" {
				rep.Summary.VMsLeftRunning = append(rep.Summary.VMsLeftRunning, l.VM+" on "+n.Name)
			}
		}
		switch n.State {
		case "done":
			rep.Summary.NodesDone++
		case "failed":
			rep.Summary.NodesFailed++
		case "skipped":
			rep.Summary.NodesSkipped++
		}
		if n.LeftPaused != "" {
			rep.Summary.LeftPaused = append(rep.Summary.LeftPaused, n.Name)
		}
		rep.Summary.UpdatesInstalled += rn.UpdatesInstalled
		rep.Summary.UpdatesFailed += rn.UpdatesFailed
		rep.Nodes = append(rep.Nodes, rn)
	}
	if rep.Nodes == nil {
		rep.Nodes = []Node{}
	}
	rep.Summary.Nodes = len(nodes)
	rep.Summary.VMsMoved = len(moved)
	if len(moved) > 0 {
		rep.Summary.MigrationsPerVM = float64(drainMoves) / float64(len(moved))
	}
	sort.Strings(rep.Summary.VMsLeftRunning)
	rep.Summary.VMsAway = vmsAway(r, nodes)
	rep.Summary.MovedMoreThanOnce = movedMoreThanOnce(nodes)
	return rep
}
