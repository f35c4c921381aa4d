package readiness

import (
	"fmt"
	"strings"

	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/drivers"
	"github.com/droverhq/drover/orchestrator"
	"github.com/droverhq/drover/policies"
)

// The checks in this file are verdicts on what Analyze gathered: they read no
// driver, store or file.

func orNone(list []string) string {
	if len(list) == 0 {
		return "(none)"
	}
	return strings.Join(list, " ")
}

// checkTimeouts: warn_after must come before stop_after (CAU's WarnAfter < StopAfter).
func checkTimeouts(p orchestrator.Policy) Check {
	c := Check{Name: "run_timeouts", Status: CheckPass}
	switch {
	case p.WarnAfter > 0 && p.StopAfter > 0 && p.WarnAfter >= p.StopAfter:
		c.Status = CheckFail
		c.Message = fmt.Sprintf("policy.warn_after (%s) is not less than policy.stop_after (%s): the run would stop before it warns", p.WarnAfter.D(), p.StopAfter.D())
		c.Remedy = "lower policy.warn_after below policy.stop_after"
	case p.WarnAfter > 0 || p.StopAfter > 0:
		c.Message = fmt.Sprintf("warn after %s, stop after %s", durOrNever(p.WarnAfter), durOrNever(p.StopAfter))
	default:
		c.Message = "no run time limits (policy.warn_after and policy.stop_after are 0)"
	}
	return c
}

func durOrNever(d orchestrator.Duration) string {
	if d <= 0 {
		return "never"
	}
	return d.D().String()
}

// checkNodesUp: every node up (policy.require_all_nodes_online), or a majority.
func checkNodesUp(inv cluster.Inventory, p orchestrator.Policy) Check {
	c := Check{Name: "nodes_up", Status: CheckPass}
	down := orchestrator.NotReady(inv, nil)
	var paused, ours []string
	ourRun := ""
	for _, n := range inv.Nodes {
		if id := orchestrator.PausedByRun(n); n.Ready() && id != "" {
			ours, ourRun = append(ours, orchestrator.OwnPauseNote(n.Name, id)), id
		} else if n.Ready() && n.Paused {
			paused = append(paused, n.Name)
		}
	}
	up := len(inv.Nodes) - len(down)
	switch {
	case len(inv.Nodes) == 0:
		c.Status, c.Message, c.Remedy = CheckFail, "the cluster has no nodes", "check the driver's settings"
		return c
	case p.RequireAllNodesOnline && len(down) > 0:
		c.Status = CheckFail
		c.Message = fmt.Sprintf("%d of %d nodes are not up (%s) and policy.require_all_nodes_online is set", len(down), len(inv.Nodes), strings.Join(down, "; "))
		c.Remedy = "bring them up, or unset policy.require_all_nodes_online to patch the other nodes"
		return c
	case up*2 <= len(inv.Nodes):
		c.Status = CheckFail
		c.Message = fmt.Sprintf("only %d of %d nodes are up (%s): no majority", up, len(inv.Nodes), strings.Join(down, "; "))
		c.Remedy = "bring nodes up before maintenance: with most of the cluster down, taking one more out is unsafe"
		return c
	case len(down) > 0:
		c.Status = CheckWarn
		c.Message = fmt.Sprintf("%d of %d nodes up; %s: the run leaves them out", up, len(inv.Nodes), strings.Join(down, "; "))
		c.Remedy = "bring them up to patch them too (policy.require_all_nodes_online makes this a failure)"
	default:
		c.Message = fmt.Sprintf("all %d nodes are up", len(inv.Nodes))
	}
	if len(ours) > 0 {
		c.Status = CheckWarn
		c.Message += "; left paused by an interrupted Drover run: " + strings.Join(ours, ", ")
		c.Remedy = "resume run " + ourRun + " (drover runs resume " + ourRun + "): it continues where it stopped"
	}
	if len(paused) > 0 {
		c.Status = CheckWarn
		c.Message += fmt.Sprintf("; paused by someone else (left alone, take no VMs): %s", strings.Join(paused, ", "))
		if c.Remedy == "" {
			c.Remedy = "resume them on the platform to include them"
		}
	}
	return c
}

// checkRebootEvidence: how a reboot will be proven. Without boot IDs the run relies
// on seeing each node down; policy.reboot_evidence=first_ready accepts less.
func checkRebootEvidence(caps drivers.Capabilities, p orchestrator.Policy) Check {
	c := Check{Name: "reboot_evidence", Status: CheckPass, Message: "nodes report boot IDs: a reboot is proven by a new boot ID"}
	switch {
	case p.RebootEvidence == orchestrator.RebootEvidenceFirstReady:
		c.Status = CheckWarn
		c.Message = "policy.reboot_evidence=first_ready: where no new boot ID or downtime is seen, the first ready answer after the reboot command counts as the reboot, and it may come from the old system before it goes down"
		c.Remedy = "give the driver boot IDs (libvirt: boot_id_command) and set policy.reboot_evidence=strict"
	case !caps.BootID:
		c.Status = CheckWarn
		c.Message = "the driver reports no boot IDs: a reboot is proven only by seeing the node down (polled every policy.poll_interval); a node that reboots faster than that fails"
		c.Remedy = "give the driver boot IDs (libvirt: boot_id_command), or lower policy.poll_interval; policy.reboot_evidence=first_ready accepts weaker evidence"
	}
	return c
}

// maxListed bounds the VMs a check names.
const maxListed = 8

// checkVMsMovable: every VM of the nodes to maintain that holds state on its node
// (running or suspended) can move to some other node (capacity, CPU group, networks
// by name and VLAN, anti-affinity), each on its own with its node out, or is handled
// by policy.non_migratable; a VM of unknown power state blocks its node. It sorts the
// VMs with the run's own classification (policies.SplitVMs).
func checkVMsMovable(inv cluster.Inventory, p orchestrator.Policy, run []string, caps drivers.Capabilities) Check {
	c := Check{Name: "vms_movable", Status: CheckPass}
	placer := policies.NewPlacer(inv, policies.PlacementOptions{CPUOvercommit: p.CPUOvercommit, MemoryHeadroomMiB: p.MemoryHeadroomMiB})
	var stuck, shutdown, skipped, noTarget []string
	movable := 0
	for _, node := range run {
		split := policies.SplitVMs(inv.VMsOn(node), policies.SplitOptions{Mode: policies.NonMigratableMode(p.NonMigratable), MigrateSuspended: caps.MigrateSuspended, LocalStorage: p.LocalStorageRule()})
		for _, b := range split.Blocking {
			stuck = append(stuck, fmt.Sprintf("vm %s (%s) on %s", b.VM, b.Reason, node))
		}
		for _, v := range split.Shutdown {
			shutdown = append(shutdown, v.Name)
		}
		for _, n := range split.Skip {
			skipped = append(skipped, n.VM)
		}
		for _, vm := range split.Migrate {
			target, err := placer.Place(vm, nil)
			if err != nil {
				noTarget = append(noTarget, err.Error())
				continue
			}
			placer.Cancel(vm, target)
			movable++
		}
	}
	var msgs, remedies []string
	if len(noTarget) > 0 {
		c.Status = CheckFail
		msgs = append(msgs, fmt.Sprintf("%d VMs cannot move anywhere: %s", len(noTarget), firstN(noTarget, maxListed)))
		remedies = append(remedies, "free memory or vCPUs (or storage_mib for local disks) on other nodes, give every node the VM's networks (same name, same VLAN) and CPU group, or relax hard anti-affinity")
	}
	if len(stuck) > 0 {
		c.Status = CheckFail
		msgs = append(msgs, fmt.Sprintf("%d VMs cannot leave their nodes, so those nodes will not be patched: %s", len(stuck), firstN(stuck, maxListed)))
		remedies = append(remedies, "set policy.non_migratable to shutdown (stopped and restarted) or skip (left on the node, goes down with the reboot), policy.local_storage likewise for VMs with local disks, make the VMs migratable, resume or stop suspended VMs, or fix VMs of unknown power state")
	}
	// Which mode covers a VM is per VM (local_storage decides for local disks), so
	// the two outcomes are reported apart.
	modes := fmt.Sprintf("policy.non_migratable=%s", p.NonMigratable)
	if p.LocalStorage != "" {
		modes += fmt.Sprintf(", policy.local_storage=%s for VMs with local disks", p.LocalStorage)
	}
	if len(shutdown) > 0 {
		msgs = append(msgs, fmt.Sprintf("%d VMs that cannot move will be shut down and restarted after the patch (%s): %s", len(shutdown), modes, firstN(shutdown, maxListed)))
	}
	if len(skipped) > 0 {
		if c.Status == CheckPass {
			c.Status = CheckWarn
		}
		remedies = append(remedies, "policy.non_migratable=shutdown (policy.local_storage=shutdown for VMs with local disks) stops them cleanly instead")
		msgs = append(msgs, fmt.Sprintf("%d VMs that cannot move will be LEFT RUNNING through the reboot (%s): %s", len(skipped), modes, firstN(skipped, maxListed)))
	}
	msgs = append([]string{fmt.Sprintf("%d VMs on the nodes to maintain can move", movable)}, msgs...)
	c.Message = strings.Join(msgs, "; ")
	c.Remedy = strings.Join(remedies, "; ")
	return c
}

func firstN(list []string, n int) string {
	if len(list) <= n {
		return strings.Join(list, "; ")
	}
	return strings.Join(list[:n], "; ") + fmt.Sprintf("; and %d more", len(list)-n)
}

func reserveOptions(p orchestrator.Policy) policies.ReserveOptions {
	return policies.ReserveOptions{Placement: policies.PlacementOptions{CPUOvercommit: p.CPUOvercommit, MemoryHeadroomMiB: p.MemoryHeadroomMiB}}
}

// reserveFinding says why a reserve check failed: what the survivors lack in
// aggregate (exact), or which VMs found no room (first-fit, an estimate).
func reserveFinding(r policies.ReserveResult) string {
	failing := "with " + strings.Join(r.WorstFailure, ", ") + " failing"
	if len(r.WorstFailure) == 0 {
		failing = "with no further failure"
	}
	if r.ShortfallMiB > 0 || r.ShortfallVCPUs > 0 {
		return fmt.Sprintf("%s the survivors lack %d MiB and %d vCPUs (exact)", failing, r.ShortfallMiB, r.ShortfallVCPUs)
	}
	if len(r.Unplaced) > 0 {
		return fmt.Sprintf("%s no node is found for %s (first-fit estimate: another arrangement may exist)", failing, firstN(r.Unplaced, 4))
	}
	return failing + ": " + r.Basis
}

const reserveRemedy = "add capacity or free memory on the nodes, lower policy.reserve_nodes, or (knowingly) pause anyway with --override-reserve"

// checkReserveNow: the cluster keeps its N-k reserve as it is.
func checkReserveNow(inv cluster.Inventory, p orchestrator.Policy) Check {
	c := Check{Name: "reserve_now", Status: CheckPass}
	k := p.ReserveNodes
	if k == 0 {
		c.Message = "no reserve required (policy.reserve_nodes is 0)"
		return c
	}
	r := policies.ReserveCheck(inv, k, nil, reserveOptions(p))
	switch {
	case !r.Holds:
		c.Status, c.Remedy = CheckFail, reserveRemedy
		c.Message = "the cluster is over-committed already: " + reserveFinding(r)
	case !r.Proven:
		c.Status = CheckWarn
		c.Message = fmt.Sprintf("N-%d reserve holds by estimate: %s", k, r.Basis)
		c.Remedy = "the check could not try every failure set; keep more spare capacity to be sure"
	default:
		c.Message = fmt.Sprintf("N-%d reserve holds: %s", k, r.Basis)
	}
	return c
}

// checkReserveDuringRun: the reserve holds while each node of the run is out.
func checkReserveDuringRun(inv cluster.Inventory, p orchestrator.Policy, run []string) Check {
	c := Check{Name: "reserve_during_run", Status: CheckPass}
	k := p.ReserveNodes
	if k == 0 {
		c.Message = "no reserve required (policy.reserve_nodes is 0)"
		return c
	}
	results := policies.ReserveDuringRun(inv, k, run, reserveOptions(p))
	var broken, estimated []string
	for i, r := range results {
		switch {
		case !r.Holds:
			broken = append(broken, fmt.Sprintf("while %s is out, %s", run[i], reserveFinding(r)))
		case !r.Proven:
			estimated = append(estimated, run[i])
		}
	}
	switch {
	case len(broken) > 0 && p.OverrideReserve:
		c.Status = CheckWarn
		c.Message = fmt.Sprintf("N-%d reserve breaks for %d of %d nodes, overridden by policy.override_reserve: %s", k, len(broken), len(run), firstN(broken, maxListed))
		c.Remedy = "while such a node is out, one more failure may leave VMs without a node: resume quickly"
	case len(broken) > 0:
		c.Status, c.Remedy = CheckFail, reserveRemedy
		c.Message = fmt.Sprintf("N-%d reserve breaks for %d of %d nodes (they would not be paused): %s", k, len(broken), len(run), firstN(broken, maxListed))
	case len(estimated) > 0:
		c.Status = CheckWarn
		c.Message = fmt.Sprintf("N-%d reserve holds while each node is out, by estimate for %s", k, strings.Join(estimated, ", "))
		c.Remedy = "the check could not try every failure set; keep more spare capacity to be sure"
	default:
		c.Message = fmt.Sprintf("N-%d reserve holds while each of the %d nodes is out", k, len(run))
	}
	return c
}
