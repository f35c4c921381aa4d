package orchestrator

import (
	"fmt"
	"slices"
	"strings"

	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/policies"
	"github.com/droverhq/drover/runs"
)

// This file holds the failback hours (policy.failback_hours).

// failbackAllowed filters the failback jobs after the first nJoins (migrations already
// in flight, kept): policies.FailbackTargets decides which VMs go back now (mode,
// preferred node, allowed hours), then each must fit on the node. VMs held by the
// hours or by capacity are noted in the node's record.
func (e *Engine) failbackAllowed(rs *runState, name string, inv cluster.Inventory, jobs []migJob, nJoins int) ([]migJob, error) {
	cands := jobs[nJoins:]
	if len(cands) == 0 {
		return jobs, nil
	}
	mode, err := policies.ParseFailbackMode(rs.policy.Failback)
	if err != nil {
		return nil, failNode("failback: %w", err)
	}
	var prefs policies.FailbackPrefs
	if rs.policy.FailbackHours != "" {
		if prefs.Default, err = policies.ParseHoursWindow(rs.policy.FailbackHours, rs.policy.FailbackTZ); err != nil {
			return nil, failNode("failback: policy.failback_hours: %w", err)
		}
	}
	drained := make([]policies.DrainedVM, 0, len(cands))
	for _, j := range cands {
		drained = append(drained, policies.DrainedVM{VM: j.vm.Name, From: name, To: j.from})
	}
	moves, held := policies.FailbackTargets(mode, drained, inv, e.clock.Now(), prefs)
	allowed := map[string]bool{}
	for _, m := range moves {
		allowed[m.VM] = true
	}
	var notes []string
	for _, h := range held {
		if strings.HasPrefix(h.Reason, "outside failback hours") {
			notes = append(notes, fmt.Sprintf("failback of vm %s held: %s", h.VM, h.Reason))
		}
	}
	placer := policies.NewPlacer(inv, e.placementOptions(rs, inv))
	out := jobs[:nJoins:nJoins]
	for _, j := range cands {
		if !allowed[j.vm.Name] {
			continue
		}
		if err := placer.PlaceOn(j.vm, name); err != nil {
			notes = append(notes, fmt.Sprintf("failback of vm %s held: %v", j.vm.Name, err))
			continue
		}
		out = append(out, j)
	}
	if err := e.addNotes(rs, name, notes); err != nil {
		return nil, err
	}
	return out, nil
}

// addNotes appends the notes the node's record does not have yet.
func (e *Engine) addNotes(rs *runState, node string, notes []string) error {
	have := rs.node(node).Notes
	var add []string
	for _, n := range notes {
		if !slices.Contains(have, n) && !slices.Contains(add, n) {
			add = append(add, n)
		}
	}
	if len(add) == 0 {
		return nil
	}
	_, err := e.persist(rs, node, func(r *runs.NodeRecord) { r.Notes = append(r.Notes, add...) })
	return err
}
