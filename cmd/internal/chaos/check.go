package chaos

import (
	"fmt"
	"sort"
	"strings"

	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/drivers/sim"
	"github.com/droverhq/drover/runs"
	"github.com/droverhq/drover/runs/report"
)

// Findings are broken invariants, each described in one line.
type Findings struct {
	// LostVMs: a VM that disappeared, ran before and does not after, or was killed
	// by a reboot or crash. One entry per VM.
	LostVMs []string
	// DoubleMigrations: a VM that left the same node twice, or moved more often
	// than its drain and failback explain.
	DoubleMigrations []string
	// LeftPaused: a node paused after the run.
	LeftPaused []string
	// ReserveViolations: a pause that left fewer nodes than the N-k reserve needs,
	// or a second node paused while one was still in maintenance.
	ReserveViolations []string
	// DoubleReboots: a node rebooted more than once in the run.
	DoubleReboots []string
	// LostSuspended: a VM suspended before the run whose saved state is gone (a
	// reboot or crash of the node that held it, stopped or missing after the run).
	// One entry per VM.
	LostSuspended []string
	// Other: the run did not succeed, a node was not patched, the platform
	// refused a migration, an intent was left open.
	Other []string
}

// Clean reports whether nothing was found.
func (f Findings) Clean() bool {
	return len(f.LostVMs)+len(f.DoubleMigrations)+len(f.LeftPaused)+len(f.ReserveViolations)+
		len(f.DoubleReboots)+len(f.LostSuspended)+len(f.Other) == 0
}

// All lists every finding with its category.
func (f Findings) All() []string {
	var out []string
	add := func(cat string, list []string) {
		for _, s := range list {
			out = append(out, cat+": "+s)
		}
	}
	add("lost vm", f.LostVMs)
	add("double migration", f.DoubleMigrations)
	add("left paused", f.LeftPaused)
	add("reserve violation", f.ReserveViolations)
	add("double reboot", f.DoubleReboots)
	add("lost suspended vm", f.LostSuspended)
	add("other", f.Other)
	return out
}

// Add merges g into f.
func (f *Findings) Add(g Findings) {
	f.LostVMs = append(f.LostVMs, g.LostVMs...)
	f.DoubleMigrations = append(f.DoubleMigrations, g.DoubleMigrations...)
	f.LeftPaused = append(f.LeftPaused, g.LeftPaused...)
	f.ReserveViolations = append(f.ReserveViolations, g.ReserveViolations...)
	f.DoubleReboots = append(f.DoubleReboots, g.DoubleReboots...)
	f.LostSuspended = append(f.LostSuspended, g.LostSuspended...)
	f.Other = append(f.Other, g.Other...)
}

// CheckInput is what a round leaves to check.
type CheckInput struct {
	Before, After cluster.Inventory
	Stats         sim.Stats
	Report        report.Report
	// Pending are the updates the sim still has pending per node after the run.
	Pending      map[string][]cluster.Update
	Failback     string
	ReserveNodes int
	OpenIntents  []runs.Entry
	// ExitCode of the drover process that finished the run.
	ExitCode int
}

// Check verifies a finished run against the live cluster and the sim's logs.
func Check(in CheckInput) Findings {
	var f Findings
	checkVMs(in, &f)
	checkSuspended(in, &f)
	checkMigrations(in, &f)
	for _, n := range in.After.Nodes {
		if n.Paused {
			f.LeftPaused = append(f.LeftPaused, fmt.Sprintf("node %s is paused after the run", n.Name))
		}
	}
	checkReserve(in, &f)
	checkRun(in, &f)
	return f
}

func checkVMs(in CheckInput, f *Findings) {
	lost := map[string]string{}
	for _, b := range in.Before.VMs {
		a, ok := in.After.VM(b.Name)
		switch {
		case b.Power == cluster.PowerSuspended:
			// checkSuspended
		case !ok:
			lost[b.Name] = "vm " + b.Name + " is gone from the inventory"
		case b.Running() && !a.Running():
			lost[b.Name] = fmt.Sprintf("vm %s ran on %s before the run and is %s on %s after it", b.Name, b.Node, a.Power, a.Node)
		}
		if ok && a.MigratingTo != "" {
			f.Other = append(f.Other, fmt.Sprintf("vm %s is still migrating to %s after the run", a.Name, a.MigratingTo))
		}
	}
	for _, k := range in.Stats.KilledVMs {
		if _, ok := lost[k.VM]; !ok {
			lost[k.VM] = fmt.Sprintf("vm %s was killed by a %s of %s", k.VM, k.Cause, k.Node)
		}
	}
	for _, a := range in.After.VMs {
		if _, ok := in.Before.VM(a.Name); !ok {
			f.Other = append(f.Other, "vm "+a.Name+" appeared during the run")
		}
	}
	f.LostVMs = append(f.LostVMs, sortedValues(lost)...)
}

// checkSuspended finds the suspended VMs whose saved state did not survive the
// run: the sim recorded the loss (a reboot or crash of the node holding one), or
// the VM is gone or stopped afterwards. One that runs afterwards kept its state
// but was resumed, which the run had no business doing.
func checkSuspended(in CheckInput, f *Findings) {
	lost := map[string]string{}
	for _, b := range in.Before.VMs {
		if b.Power != cluster.PowerSuspended {
			continue
		}
		a, ok := in.After.VM(b.Name)
		switch {
		case !ok:
			lost[b.Name] = "vm " + b.Name + " was suspended on " + b.Node + " before the run and is gone from the inventory"
		case a.Power == cluster.PowerRunning:
			f.Other = append(f.Other, fmt.Sprintf("vm %s was suspended on %s before the run and runs on %s after it", b.Name, b.Node, a.Node))
		case a.Power != cluster.PowerSuspended:
			lost[b.Name] = fmt.Sprintf("vm %s was suspended on %s before the run and is %s on %s after it", b.Name, b.Node, a.Power, a.Node)
		}
	}
	for _, k := range in.Stats.LostSuspendedVMs {
		lost[k.VM] = fmt.Sprintf("vm %s lost its suspended state in a %s of %s", k.VM, k.Cause, k.Node)
	}
	f.LostSuspended = append(f.LostSuspended, sortedValues(lost)...)
}

func checkMigrations(in CheckInput, f *Findings) {
	leaves := map[string]int{}
	perVM := map[string]int{}
	for _, m := range in.Stats.Migrations {
		if m.OK {
			leaves[m.VM+" from "+m.From]++
			perVM[m.VM]++
		}
	}
	for _, k := range sortedKeys(leaves) {
		if leaves[k] > 1 {
			f.DoubleMigrations = append(f.DoubleMigrations, fmt.Sprintf("vm %s %d times", k, leaves[k]))
		}
	}
	// With failback every VM moves at most twice: off its node for the drain and
	// back after the patch (VMs live on their home node between two drains).
	if in.Failback == "immediate" || in.Failback == "policy" {
		for _, vm := range sortedKeys(perVM) {
			if perVM[vm] > 2 {
				f.DoubleMigrations = append(f.DoubleMigrations, fmt.Sprintf("vm %s moved %d times (drain + failback is 2)", vm, perVM[vm]))
			}
		}
	}
	for _, r := range in.Stats.Rejections {
		if r.Op == "migrate" {
			f.Other = append(f.Other, fmt.Sprintf("the platform refused the migration of %s to %s: %s", r.VM, r.Node, r.Error))
		}
	}
	for _, v := range in.Stats.Violations {
		f.Other = append(f.Other, fmt.Sprintf("platform rule broken: %s on %s: %s", v.VM, v.Node, v.Detail))
	}
}

// checkReserve replays the sim's node events. At every pause, the nodes still in
// service must hold every running VM even after the k largest of them fail (a
// necessary condition of any N-k placement), and no other node may be in
// maintenance already: a rolling run has one node out at a time.
func checkReserve(in CheckInput, f *Findings) {
	capacity := map[string]int64{}
	for _, n := range in.Before.Nodes {
		capacity[n.Name] = n.MemoryMiB
	}
	var running int64
	for _, v := range in.Before.VMs {
		if v.Running() {
			running += v.MemoryMiB
		}
	}
	paused := map[string]bool{}
	down := map[string]bool{}
	for _, n := range in.Before.Nodes {
		paused[n.Name] = n.Paused
		down[n.Name] = !n.Ready()
	}
	for _, e := range in.Stats.NodeEvents {
		switch {
		case e.Event == "paused":
			paused[e.Node] = true
		case e.Event == "resumed":
			paused[e.Node] = false
		case e.Event == "reboot_started", e.Event == "did_not_return", strings.HasPrefix(e.Event, "crashed"):
			down[e.Node] = true
		case e.Event == "booted":
			down[e.Node] = false
		}
		if e.Event != "paused" {
			continue
		}
		var out []string
		var caps []int64
		for _, name := range sortedKeys(capacity) {
			if paused[name] || down[name] {
				out = append(out, name)
			} else {
				caps = append(caps, capacity[name])
			}
		}
		if len(out) > 1 {
			f.ReserveViolations = append(f.ReserveViolations, fmt.Sprintf("%s paused at %s while %v were out of service", e.Node, e.At.Format("15:04:05"), out))
			continue
		}
		sort.Slice(caps, func(i, j int) bool { return caps[i] > caps[j] })
		var left int64
		for i, c := range caps {
			if i >= in.ReserveNodes {
				left += c
			}
		}
		if left < running {
			f.ReserveViolations = append(f.ReserveViolations, fmt.Sprintf("%s paused at %s: after %d more failures %d MiB of nodes would remain for %d MiB of running VMs", e.Node, e.At.Format("15:04:05"), in.ReserveNodes, left, running))
		}
	}
}

func checkRun(in CheckInput, f *Findings) {
	rep := in.Report
	if rep.State != string(runs.StateSucceeded) {
		f.Other = append(f.Other, fmt.Sprintf("run %s ended %s: %s", rep.ID, rep.State, rep.Error))
	}
	if in.ExitCode != 0 {
		f.Other = append(f.Other, fmt.Sprintf("the drover process that finished the run exited %d", in.ExitCode))
	}
	inReport := map[string]bool{}
	for _, n := range rep.Nodes {
		inReport[n.Name] = true
		if n.State != "done" {
			f.Other = append(f.Other, fmt.Sprintf("node %s is %s in the report (%s%s)", n.Name, n.State, n.Failure, n.SkipReason))
		}
		if n.UpdatesInstalled == 0 {
			f.Other = append(f.Other, fmt.Sprintf("node %s: no update installed according to the report", n.Name))
		}
		if n.LeftPaused != "" {
			f.LeftPaused = append(f.LeftPaused, fmt.Sprintf("node %s reported left paused: %s", n.Name, n.LeftPaused))
		}
	}
	for _, n := range in.Before.Nodes {
		if !inReport[n.Name] {
			f.Other = append(f.Other, "node "+n.Name+" is missing from the report")
		}
		if p := in.Pending[n.Name]; len(p) > 0 {
			f.Other = append(f.Other, fmt.Sprintf("node %s still has %d pending updates in the sim", n.Name, len(p)))
		}
		switch r := in.Stats.Reboots[n.Name]; {
		case r > 1:
			f.DoubleReboots = append(f.DoubleReboots, fmt.Sprintf("node %s was rebooted %d times, want exactly 1", n.Name, r))
		case r == 0:
			f.Other = append(f.Other, fmt.Sprintf("node %s was never rebooted, want exactly 1 reboot", n.Name))
		}
	}
	for _, e := range in.OpenIntents {
		f.Other = append(f.Other, fmt.Sprintf("intent left open: %s node %s vm %s (seq %d)", e.Op, e.Node, e.VM, e.Seq))
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func sortedValues(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, k := range sortedKeys(m) {
		out = append(out, m[k])
	}
	return out
}
