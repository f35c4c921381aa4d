package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"strings"

	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/drivers"
	"github.com/droverhq/drover/policies"
	"github.com/droverhq/drover/runs"
)

// CheckStatus is the verdict of one readiness check.
type CheckStatus string

const (
	CheckPass CheckStatus = "pass"
	// CheckWarn: the run can go on, but something deserves a look.
	CheckWarn CheckStatus = "warn"
	// CheckFail: the run would fail or break a rule; Remedy says what to do.
	CheckFail CheckStatus = "fail"
)

// Check is one readiness check (CAU's Test-CauSetup style): what was checked, the
// verdict, what was found, and what to do about it.
type Check struct {
	Name    string      `json:"name"`
	Status  CheckStatus `json:"status"`
	Message string      `json:"message"`
	Remedy  string      `json:"remedy,omitempty"`
}

// Analysis is the readiness of a cluster for a run. Ready is false when any check
// failed.
type Analysis struct {
	Cluster string  `json:"cluster"`
	Ready   bool    `json:"ready"`
	Checks  []Check `json:"checks"`
}

// Count returns how many checks have status s.
func (a Analysis) Count(s CheckStatus) int {
	n := 0
	for _, c := range a.Checks {
		if c.Status == s {
			n++
		}
	}
	return n
}

// AnalyzeConfig is what Analyze looks at. Only Policy is required: a missing driver or
// store is itself a finding.
type AnalyzeConfig struct {
	Cluster string
	Policy  Policy
	// Driver is nil when it could not be opened; DriverErr says why.
	Driver    drivers.Driver
	DriverErr error
	// Updater is nil when it could not be opened; UpdaterErr says why.
	Updater    drivers.Updater
	UpdaterErr error
	// Store is the state file opened read-only, nil when there is none yet or it
	// could not be opened; StoreErr says why (a *runs.LockedError when a live
	// drover holds it).
	Store    *runs.Store
	StoreErr error
	// Alive checks a run lock's owner (default runs.CheckAlive).
	Alive func(runs.Owner) runs.Liveness
	// HTTPClient runs the health gate's HTTP check (nil: a default client).
	HTTPClient *http.Client
}

// Analyze checks whether the cluster is ready for a run with the given policy,
// changing nothing: the policy's own consistency, the hooks, the state file (no other
// run, no stale lock), the driver, the nodes, the update plug-in on every node, that
// every running VM of the run's nodes can move (or is covered by
// policy.non_migratable), the N-k reserve now and while each node is out, and the
// health gate's check. Checks that need the inventory are left out when the driver
// cannot give one; the driver's check then fails.
func Analyze(ctx context.Context, cfg AnalyzeConfig) Analysis {
	if cfg.Alive == nil {
		cfg.Alive = runs.CheckAlive
	}
	p := cfg.Policy
	a := Analysis{Cluster: cfg.Cluster}
	add := func(c Check) { a.Checks = append(a.Checks, c) }
	add(checkTimeouts(p))
	add(checkHooks(p))
	add(checkState(cfg))

	inv, c := checkDriver(ctx, cfg)
	add(c)
	if c.Status != CheckFail && cfg.Driver != nil {
		add(checkRebootEvidence(cfg.Driver.Capabilities(), p))
	}
	if c.Status != CheckFail && cfg.Driver != nil {
		var err error
		if p, err = p.resolveLocalStorage(cfg.Driver.Capabilities()); err != nil {
			add(Check{Name: "local_storage", Status: CheckFail, Message: err.Error(), Remedy: "set policy.local_storage to fail, shutdown or skip"})
		}
	}
	if c.Status != CheckFail {
		if err := inv.Validate(); err != nil {
			add(Check{Name: "inventory_valid", Status: CheckFail, Message: "the driver's inventory is inconsistent: " + err.Error(),
				Remedy: "fix the platform's names (unique node and VM names, VMs on known nodes) or report a driver bug"})
		} else {
			add(Check{Name: "inventory_valid", Status: CheckPass, Message: fmt.Sprintf("%d nodes, %d VMs, names unique and consistent", len(inv.Nodes), len(inv.VMs))})
			add(checkNodesUp(inv, p))
			add(checkPauseMarks(inv, cfg))
			pending, c := checkUpdater(ctx, cfg.Updater, cfg.UpdaterErr, inv, p)
			add(c)
			order, skipped, err := orderNodes(inv, p, pending)
			if err != nil {
				add(Check{Name: "node_order", Status: CheckFail, Message: err.Error(), Remedy: "fix policy.node_order, policy.nodes or policy.order_label"})
			} else {
				var run []string
				for _, n := range order {
					if _, skip := skipped[n]; !skip {
						run = append(run, n)
					}
				}
				add(Check{Name: "node_order", Status: CheckPass, Message: fmt.Sprintf("%d nodes to maintain in this order: %s (%d left out)", len(run), orNone(run), len(skipped))})
				add(checkVMsMovable(p.movableInventory(inv), p, run, cfg.Driver.Capabilities()))
				add(checkReserveNow(inv, p))
				add(checkReserveDuringRun(inv, p, run))
			}
		}
	}
	if rc, ok := cfg.Driver.(drivers.ReadinessChecker); ok {
		for _, c := range checkPlatform(ctx, rc) {
			add(c)
		}
	}
	if g := p.HealthGate; len(g.Command) > 0 || g.URL != "" {
		if err := gateCheck(ctx, g, map[string]string{"DROVER_PHASE": hookGate, "DROVER_CLUSTER": cfg.Cluster}, cfg.HTTPClient); err != nil {
			add(Check{Name: "health_gate", Status: CheckFail, Message: "the health check fails now: " + err.Error(),
				Remedy: "make the check pass (it gates every node after the first), or change policy.health_gate"})
		} else {
			add(Check{Name: "health_gate", Status: CheckPass, Message: "the health check passes now"})
		}
	}
	a.Ready = a.Count(CheckFail) == 0
	return a
}

// checkPlatform takes over the driver's own readiness checks (Hyper-V quorum and CSVs,
// vCenter privileges and DRS/HA settings, Proxmox token rights and Ceph health, ...).
// Their results are untrusted driver answers: an unknown status is a failure, so a
// driver cannot turn a problem into a pass by misspelling it.
func checkPlatform(ctx context.Context, rc drivers.ReadinessChecker) []Check {
	found, err := rc.Readiness(ctx)
	if err != nil {
		return []Check{{Name: "platform", Status: CheckFail, Message: "the platform's readiness checks could not run: " + err.Error(),
			Remedy: "check that the platform answers and the account may read its configuration"}}
	}
	out := make([]Check, 0, len(found))
	for _, f := range found {
		c := Check{Name: f.Name, Message: f.Message, Remedy: f.Remedy}
		switch f.Status {
		case drivers.CheckPass:
			c.Status = CheckPass
		case drivers.CheckWarn:
			c.Status = CheckWarn
		case drivers.CheckFail:
			c.Status = CheckFail
		default:
			c.Status = CheckFail
			c.Message = fmt.Sprintf("%s (the driver answered an unknown status %q)", f.Message, f.Status)
		}
		out = append(out, c)
	}
	return out
}

func orNone(list []string) string {
	if len(list) == 0 {
		return "(none)"
	}
	return strings.Join(list, " ")
}

// checkTimeouts: warn_after must come before stop_after (CAU's WarnAfter < StopAfter).
func checkTimeouts(p Policy) Check {
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

func durOrNever(d Duration) string {
	if d <= 0 {
		return "never"
	}
	return d.D().String()
}

// checkHooks: each configured hook's program exists and is executable.
func checkHooks(p Policy) Check {
	c := Check{Name: "hooks", Status: CheckPass}
	var ok, bad []string
	for _, h := range []struct {
		key  string
		argv []string
	}{{"policy.pre_hook", p.PreHook.Command}, {"policy.post_hook", p.PostHook.Command}, {"policy.health_gate", p.HealthGate.Command}} {
		if len(h.argv) == 0 {
			continue
		}
		path, err := exec.LookPath(h.argv[0])
		if err != nil {
			bad = append(bad, fmt.Sprintf("%s: %s is not an executable program (%v)", h.key, h.argv[0], unwrapExec(err)))
			continue
		}
		ok = append(ok, h.key+": "+path)
	}
	switch {
	case len(bad) > 0:
		c.Status = CheckFail
		c.Message = strings.Join(bad, "; ")
		c.Remedy = "give the full path of an existing program and make it executable (chmod +x); relative paths in the config file resolve against its folder"
	case len(ok) == 0:
		c.Message = "no hooks or health check command configured"
	default:
		c.Message = "found and executable: " + strings.Join(ok, "; ")
	}
	return c
}

func unwrapExec(err error) error {
	if ee, ok := errors.AsType[*exec.Error](err); ok {
		return ee.Err
	}
	return err
}

// checkState: no other run holds the cluster, and no run was left unfinished.
func checkState(cfg AnalyzeConfig) Check {
	c := Check{Name: "no_active_run", Status: CheckPass}
	if le, ok := errors.AsType[*runs.LockedError](cfg.StoreErr); ok {
		c.Status = CheckFail
		c.Message = le.Error()
		c.Remedy = "a run is probably in progress: wait for it, follow it with the daemon's API, or stop it with `drover runs stop ID`"
		if le.Owner != nil && le.Owner.Command == runs.DaemonCommand {
			c.Remedy = "the daemon holds the state file: run analyze through it (drover --server URL analyze), or stop the daemon"
		}
		return c
	}
	if cfg.StoreErr != nil {
		c.Status = CheckFail
		c.Message = "cannot read the state file: " + cfg.StoreErr.Error()
		c.Remedy = "fix or move the state file (config key state)"
		return c
	}
	if cfg.Store == nil {
		c.Message = "no state file yet: no run has been started"
		return c
	}
	var (
		lock     runs.Lock
		locked   bool
		open     *runs.Run
		previous int
	)
	err := cfg.Store.View(func(tx *runs.Tx) error {
		var err error
		if lock, locked, err = tx.Lock(cfg.Cluster); err != nil {
			return err
		}
		rs, err := tx.Runs(cfg.Cluster)
		if err != nil {
			return err
		}
		previous = len(rs)
		for _, r := range rs {
			if !r.State.Terminal() {
				open = &r
				break
			}
		}
		return nil
	})
	if err != nil {
		c.Status = CheckFail
		c.Message = "cannot read the state file: " + err.Error()
		c.Remedy = "fix or move the state file (config key state)"
		return c
	}
	if locked {
		switch cfg.Alive(lock.Owner) {
		case runs.Alive:
			c.Status = CheckFail
			c.Message = fmt.Sprintf("run %s is in progress, held by %s", lock.RunID, lock.Owner)
			c.Remedy = fmt.Sprintf("wait for it, or stop it with `drover runs stop %s`", lock.RunID)
		case runs.Unknown:
			c.Status = CheckFail
			c.Message = fmt.Sprintf("run %s is locked by %s, which this host cannot check", lock.RunID, lock.Owner)
			c.Remedy = "if that process is gone, resume the run here with `drover runs resume " + lock.RunID + " --force-recovery`"
		default:
			c.Status = CheckWarn
			c.Message = fmt.Sprintf("stale lock: run %s was interrupted (%s is gone)", lock.RunID, lock.Owner)
			c.Remedy = fmt.Sprintf("continue it with `drover runs resume %s` (apply offers the same) or end it with `drover runs stop %s`", lock.RunID, lock.RunID)
		}
		return c
	}
	if open != nil {
		c.Status = CheckWarn
		if open.State == runs.StateWaitingApproval {
			c.Message = fmt.Sprintf("run %s waits for approval of its canary node", open.ID)
			c.Remedy = fmt.Sprintf("check the canary node, then `drover runs approve %s`, or `drover runs stop %s`", open.ID, open.ID)
		} else {
			c.Message = fmt.Sprintf("run %s is unfinished", open.ID)
			c.Remedy = fmt.Sprintf("continue it with `drover runs resume %s` or end it with `drover runs stop %s`", open.ID, open.ID)
		}
		return c
	}
	c.Message = fmt.Sprintf("no run in progress (%d earlier runs of cluster %s)", previous, cfg.Cluster)
	return c
}

// checkDriver: the driver opened and answers with an inventory.
func checkDriver(ctx context.Context, cfg AnalyzeConfig) (cluster.Inventory, Check) {
	c := Check{Name: "driver_reachable", Status: CheckFail, Remedy: "check the driver's settings (cluster.<driver>) and that the platform's API answers"}
	if cfg.Driver == nil {
		c.Message = "the driver could not be opened"
		if cfg.DriverErr != nil {
			c.Message += ": " + cfg.DriverErr.Error()
		}
		c.Message += "; the checks that need the cluster were not run"
		return cluster.Inventory{}, c
	}
	inv, err := cfg.Driver.Inventory(ctx)
	if err != nil {
		c.Message = "the driver does not give an inventory: " + err.Error() + "; the checks that need the cluster were not run"
		return inv, c
	}
	if down := unreachable(inv); len(down) > 0 && len(down) == len(inv.Nodes) {
		c.Message = "no node answers: " + strings.Join(down, ", ")
		c.Remedy = "check that the hosts are up and reachable, and the driver's address and credentials"
		return inv, c
	}
	caps := cfg.Driver.Capabilities()
	c.Status, c.Remedy = CheckPass, ""
	c.Message = fmt.Sprintf("inventory read: %d nodes, %d VMs (power control %v, boot id %v)", len(inv.Nodes), len(inv.VMs), caps.PowerControl, caps.BootID)
	return inv, c
}

// checkNodesUp: every node up (policy.require_all_nodes_online), or a majority.
func checkNodesUp(inv cluster.Inventory, p Policy) Check {
	c := Check{Name: "nodes_up", Status: CheckPass}
	down := notReady(inv, nil)
	var paused, ours []string
	ourRun := ""
	for _, n := range inv.Nodes {
		if id := pausedByRun(n); n.Ready() && id != "" {
			ours, ourRun = append(ours, ownPauseNote(n.Name, id)), id
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

// checkUpdater: the update plug-in answers on every ready node. It returns the
// pending updates per node for the order.
func checkUpdater(ctx context.Context, u drivers.Updater, openErr error, inv cluster.Inventory, p Policy) (map[string][]cluster.Update, Check) {
	c := Check{Name: "update_plugin", Status: CheckPass}
	if u == nil {
		c.Status, c.Message, c.Remedy = CheckFail, "the update plug-in could not be opened", "check cluster.updater"
		if openErr != nil {
			c.Message += ": " + openErr.Error()
		}
		return map[string][]cluster.Update{}, c
	}
	pending, failed, asked := scanNodes(ctx, u, inv)
	errs := make([]string, 0, len(failed))
	for _, name := range sortedKeys(failed) {
		errs = append(errs, fmt.Sprintf("%s: %v", name, failed[name]))
	}
	updates, nodes := 0, 0
	for _, ups := range pending {
		updates += len(ups)
		if len(ups) > 0 {
			nodes++
		}
	}
	switch {
	case asked == 0:
		c.Status, c.Message, c.Remedy = notAsked(inv)
	case len(errs) > 0:
		c.Status = CheckFail
		c.Message = fmt.Sprintf("the update plug-in failed on %d of %d nodes: %s", len(errs), asked, strings.Join(errs, "; "))
		c.Remedy = "check the plug-in's settings (cluster.updater) and its access to those nodes (SSH keys, known_hosts)"
	case nodes == 0 && !p.Force:
		c.Status = CheckWarn
		c.Message = fmt.Sprintf("answered on all %d ready nodes: nothing is pending, a run would do nothing", asked)
		c.Remedy = "nothing to do; policy.force patches and reboots anyway"
	default:
		c.Message = fmt.Sprintf("answered on all %d ready nodes: %d updates pending on %d nodes", asked, updates, nodes)
	}
	if down := unreachable(inv); asked > 0 && len(down) > 0 {
		c.Message += "; not asked: " + strings.Join(down, ", ")
	}
	return pending, c
}

// checkRebootEvidence: how a reboot will be proven. Without boot IDs the run relies
// on seeing each node down; policy.reboot_evidence=first_ready accepts less.
func checkRebootEvidence(caps drivers.Capabilities, p Policy) Check {
	c := Check{Name: "reboot_evidence", Status: CheckPass, Message: "nodes report boot IDs: a reboot is proven by a new boot ID"}
	switch {
	case p.RebootEvidence == RebootEvidenceFirstReady:
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
func checkVMsMovable(inv cluster.Inventory, p Policy, run []string, caps drivers.Capabilities) Check {
	c := Check{Name: "vms_movable", Status: CheckPass}
	placer := policies.NewPlacer(inv, policies.PlacementOptions{CPUOvercommit: p.CPUOvercommit, MemoryHeadroomMiB: p.MemoryHeadroomMiB})
	var stuck, shutdown, skipped, noTarget []string
	movable := 0
	for _, node := range run {
		split := policies.SplitVMs(inv.VMsOn(node), policies.SplitOptions{Mode: policies.NonMigratableMode(p.NonMigratable), MigrateSuspended: caps.MigrateSuspended, LocalStorage: p.localStorage()})
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

func reserveOptions(p Policy) policies.ReserveOptions {
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
func checkReserveNow(inv cluster.Inventory, p Policy) Check {
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
func checkReserveDuringRun(inv cluster.Inventory, p Policy, run []string) Check {
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
