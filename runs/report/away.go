package report

import (
	"encoding/json"
	"fmt"
	"sort"

	"github.com/droverhq/drover/runs"
)

// VMAway is a VM the run moved off its node and left elsewhere when it should
// not have: its node failed or was not patched, or failback was asked for and did
// not bring it back.
type VMAway struct {
	VM string `json:"vm"`
	// Home is the node the run drained it from; Now where the run's last move of it
	// left it (the platform may have moved it since).
	Home string `json:"home"`
	Now  string `json:"now"`
	// HomeState is the state of the home node in the run (failed, skipped, done).
	HomeState string `json:"home_state"`
}

// String says it for people: "vm v3 is away from its home node b (failed): the
// run left it on c".
func (a VMAway) String() string {
	why := a.HomeState
	if a.HomeState == "done" {
		why = "done; failback did not bring it back"
	}
	return fmt.Sprintf("vm %s is away from its home node %s (%s): the run left it on %s", a.VM, a.Home, why, a.Now)
}

// vmsAway lists the VMs left away from home after a failure, a stop, or a failback
// that did not happen. With policy.failback none, VMs of a node that was done stay
// where the drain put them by design and are not listed.
func vmsAway(r runs.Run, nodes []runs.NodeRecord) []VMAway {
	var pol struct {
		Failback string `json:"failback"`
	}
	_ = json.Unmarshal(r.Options, &pol) // no readable policy: failback none
	// Only failback=immediate brings every drained VM home; policy mode moves VMs
	// to their preferred node, which the records do not hold.
	failback := pol.Failback == "immediate"
	state := map[string]string{}
	var moves []runs.Migration
	for _, n := range nodes {
		state[n.Name] = n.State
		for _, m := range n.Migrations {
			if m.OK {
				moves = append(moves, m)
			}
		}
	}
	sort.SliceStable(moves, func(i, j int) bool { return moves[i].StartedAt.Before(moves[j].StartedAt) })
	home, now := map[string]string{}, map[string]string{}
	for _, m := range moves {
		if _, ok := home[m.VM]; !ok && m.Kind == runs.KindDrain {
			home[m.VM] = m.From
		}
		now[m.VM] = m.To
	}
	var away []VMAway
	for vm, h := range home {
		if now[vm] == h {
			continue
		}
		if st := state[h]; st != "done" || failback {
			away = append(away, VMAway{VM: vm, Home: h, Now: now[vm], HomeState: state[h]})
		}
	}
	sort.Slice(away, func(i, j int) bool { return away[i].VM < away[j].VM })
	return away
}
