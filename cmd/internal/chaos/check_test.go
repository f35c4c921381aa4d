package chaos

import (
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/drivers/sim"
	"github.com/droverhq/drover/runs"
	"github.com/droverhq/drover/runs/report"
)

// cleanRun is a finished run of three 32 GiB nodes and 20 GiB of VMs that broke
// nothing (one node out and one more failing leave 32 GiB): Check must find nothing
// in it, and each mutation below must be found.
func cleanRun() CheckInput {
	nodes := []cluster.Node{
		{Name: "a", State: cluster.NodeUp, MemoryMiB: 32768},
		{Name: "b", State: cluster.NodeUp, MemoryMiB: 32768},
		{Name: "c", State: cluster.NodeUp, MemoryMiB: 32768},
	}
	vms := []cluster.VM{
		{Name: "v1", Node: "a", MemoryMiB: 10240, Power: cluster.PowerRunning},
		{Name: "v2", Node: "b", MemoryMiB: 10240, Power: cluster.PowerRunning},
		{Name: "saved", Node: "c", MemoryMiB: 4096, Power: cluster.PowerSuspended},
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	var events []sim.NodeEvent
	var migs []sim.MigrationRecord
	for i, n := range []string{"a", "b", "c"} {
		base := i * 100
		events = append(events,
			sim.NodeEvent{At: at(base), Node: n, Event: "paused"},
			sim.NodeEvent{At: at(base + 30), Node: n, Event: "reboot_started"},
			sim.NodeEvent{At: at(base + 60), Node: n, Event: "booted"},
			sim.NodeEvent{At: at(base + 70), Node: n, Event: "resumed"})
	}
	migs = append(migs,
		sim.MigrationRecord{VM: "v1", From: "a", To: "c", OK: true},
		sim.MigrationRecord{VM: "v1", From: "c", To: "a", OK: true},
		sim.MigrationRecord{VM: "v2", From: "b", To: "c", OK: false},
		sim.MigrationRecord{VM: "v2", From: "b", To: "c", OK: true},
		sim.MigrationRecord{VM: "v2", From: "c", To: "b", OK: true},
		sim.MigrationRecord{VM: "saved", From: "c", To: "a", OK: true})
	after := append([]cluster.VM(nil), vms...)
	after[2].Node = "a" // moved as saved state, still suspended
	rep := report.Report{ID: "r", State: string(runs.StateSucceeded)}
	for _, n := range nodes {
		rep.Nodes = append(rep.Nodes, report.Node{Name: n.Name, State: "done", UpdatesInstalled: 2})
	}
	return CheckInput{
		Before:       cluster.Inventory{Nodes: nodes, VMs: vms},
		After:        cluster.Inventory{Nodes: append([]cluster.Node(nil), nodes...), VMs: after},
		Stats:        sim.Stats{NodeEvents: events, Migrations: migs, Reboots: map[string]int{"a": 1, "b": 1, "c": 1}},
		Report:       rep,
		Pending:      map[string][]cluster.Update{},
		Failback:     "immediate",
		ReserveNodes: 1,
	}
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(in *CheckInput)
		// category and a substring of the finding.
		want, text string
	}{
		{name: "clean"},
		{name: "vm-gone", want: "lost", text: "v2 is gone", mutate: func(in *CheckInput) { in.After.VMs = append(in.After.VMs[:1:1], in.After.VMs[2:]...) }},
		{name: "vm-stopped", want: "lost", text: "v1 ran on a before the run and is stopped", mutate: func(in *CheckInput) { in.After.VMs[0].Power = cluster.PowerStopped }},
		{name: "vm-killed-by-reboot", want: "lost", text: "v2 was killed by a reboot of b", mutate: func(in *CheckInput) {
			in.Stats.KilledVMs = []sim.KilledVM{{VM: "v2", Node: "b", Cause: "reboot"}}
		}},
		{name: "vm-left-the-same-node-twice", want: "double", text: "vm v1 from a 2 times", mutate: func(in *CheckInput) {
			in.Failback = "none"
			in.Stats.Migrations = append(in.Stats.Migrations, sim.MigrationRecord{VM: "v1", From: "a", To: "b", OK: true})
		}},
		{name: "vm-moved-three-times-with-failback", want: "double", text: "v2 moved 3 times", mutate: func(in *CheckInput) {
			in.Stats.Migrations = append(in.Stats.Migrations, sim.MigrationRecord{VM: "v2", From: "b", To: "a", OK: true})
		}},
		{name: "node-paused-after", want: "paused", text: "node c is paused after the run", mutate: func(in *CheckInput) { in.After.Nodes[2].Paused = true }},
		{name: "node-reported-left-paused", want: "paused", text: "node b reported left paused", mutate: func(in *CheckInput) { in.Report.Nodes[1].LeftPaused = "down" }},
		{name: "two-nodes-out-at-once", want: "reserve", text: "b paused at 00:01:40 while [a b] were out", mutate: func(in *CheckInput) {
			in.Stats.NodeEvents[3].At = in.Stats.NodeEvents[4].At.Add(time.Second) // a resumed after b paused
			ev := in.Stats.NodeEvents
			ev[3], ev[4] = ev[4], ev[3]
		}},
		{name: "reserve-too-small-for-k", want: "reserve", text: "a paused at 00:00:00: after 1 more failures 32768 MiB of nodes would remain for 40960 MiB", mutate: func(in *CheckInput) {
			in.Before.VMs[0].MemoryMiB, in.Before.VMs[1].MemoryMiB = 20480, 20480
		}},
		{name: "reserve-zero-holds-the-same-vms", mutate: func(in *CheckInput) {
			in.Before.VMs[0].MemoryMiB, in.Before.VMs[1].MemoryMiB = 20480, 20480
			in.ReserveNodes = 0
		}},
		{name: "run-failed", want: "other", text: "run r ended partially_failed", mutate: func(in *CheckInput) { in.Report.State = string(runs.StatePartiallyFailed) }},
		{name: "node-not-done", want: "other", text: "node a is failed in the report", mutate: func(in *CheckInput) { in.Report.Nodes[0].State = "failed" }},
		{name: "updates-still-pending", want: "other", text: "node b still has 1 pending updates", mutate: func(in *CheckInput) {
			in.Pending["b"] = []cluster.Update{{Name: "kernel"}}
		}},
		{name: "rebooted-twice", want: "reboot", text: "node c was rebooted 2 times", mutate: func(in *CheckInput) { in.Stats.Reboots["c"] = 2 }},
		{name: "never-rebooted", want: "other", text: "node b was never rebooted", mutate: func(in *CheckInput) { delete(in.Stats.Reboots, "b") }},
		{name: "suspended-lost-by-reboot", want: "suspended", text: "vm saved lost its suspended state in a reboot of c", mutate: func(in *CheckInput) {
			in.Stats.Migrations = in.Stats.Migrations[:5]
			in.After.VMs[2].Node, in.After.VMs[2].Power = "c", cluster.PowerStopped
			in.Stats.LostSuspendedVMs = []sim.KilledVM{{VM: "saved", Node: "c", Cause: "reboot"}}
		}},
		{name: "suspended-stopped-after", want: "suspended", text: "vm saved was suspended on c before the run and is stopped on a", mutate: func(in *CheckInput) {
			in.After.VMs[2].Power = cluster.PowerStopped
		}},
		{name: "suspended-gone", want: "suspended", text: "vm saved was suspended on c before the run and is gone", mutate: func(in *CheckInput) {
			in.After.VMs = in.After.VMs[:2]
		}},
		{name: "suspended-resumed", want: "other", text: "vm saved was suspended on c before the run and runs on a", mutate: func(in *CheckInput) {
			in.After.VMs[2].Power = cluster.PowerRunning
		}},
		{name: "intent-left-open", want: "other", text: "intent left open: resume node a", mutate: func(in *CheckInput) {
			in.OpenIntents = []runs.Entry{{Op: runs.OpResume, Node: "a", Seq: 9}}
		}},
		{name: "migration-refused", want: "other", text: "refused the migration of v1 to b", mutate: func(in *CheckInput) {
			in.Stats.Rejections = []sim.Rejection{{Op: "migrate", VM: "v1", Node: "b", Error: "target paused"}}
		}},
		{name: "still-migrating", want: "other", text: "v1 is still migrating to c", mutate: func(in *CheckInput) { in.After.VMs[0].MigratingTo = "c" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := cleanRun()
			if tt.mutate != nil {
				tt.mutate(&in)
			}
			f := Check(in)
			got := map[string][]string{
				"lost": f.LostVMs, "double": f.DoubleMigrations, "paused": f.LeftPaused, "reserve": f.ReserveViolations,
				"reboot": f.DoubleReboots, "suspended": f.LostSuspended, "other": f.Other,
			}
			for cat, list := range got {
				switch {
				case cat == tt.want && !containsText(list, tt.text):
					t.Errorf("%s findings %q lack %q", cat, list, tt.text)
				case cat != tt.want && len(list) > 0:
					t.Errorf("unexpected %s findings: %q", cat, list)
				}
			}
			if tt.want == "" && !f.Clean() {
				t.Errorf("findings in a clean run: %v", f.All())
			}
		})
	}
}

func containsText(list []string, text string) bool {
	for _, s := range list {
		if strings.Contains(s, text) {
			return true
		}
	}
	return false
}
