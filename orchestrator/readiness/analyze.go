package readiness

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os/exec"
	"slices"
	"strings"

	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/drivers"
	"github.com/droverhq/drover/orchestrator"
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
	Policy  orchestrator.Policy
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
		if p, err = p.ResolveLocalStorage(cfg.Driver.Capabilities()); err != nil {
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
			order, skipped, err := orchestrator.OrderNodes(inv, p, pending)
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
				add(checkVMsMovable(p.MovableInventory(inv), p, run, cfg.Driver.Capabilities()))
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
		if err := orchestrator.GateCheckNow(ctx, g, cfg.Cluster, cfg.HTTPClient); err != nil {
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

// checkHooks: each configured hook's program exists and is executable.
func checkHooks(p orchestrator.Policy) Check {
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
	if down := orchestrator.Unreachable(inv); len(down) > 0 && len(down) == len(inv.Nodes) {
		c.Message = "no node answers: " + strings.Join(down, ", ")
		c.Remedy = "check that the hosts are up and reachable, and the driver's address and credentials"
		return inv, c
	}
	caps := cfg.Driver.Capabilities()
	c.Status, c.Remedy = CheckPass, ""
	c.Message = fmt.Sprintf("inventory read: %d nodes, %d VMs (power control %v, boot id %v)", len(inv.Nodes), len(inv.VMs), caps.PowerControl, caps.BootID)
	return inv, c
}

// checkUpdater: the update plug-in answers on every ready node. It returns the
// pending updates per node for the order.
func checkUpdater(ctx context.Context, u drivers.Updater, openErr error, inv cluster.Inventory, p orchestrator.Policy) (map[string][]cluster.Update, Check) {
	c := Check{Name: "update_plugin", Status: CheckPass}
	if u == nil {
		c.Status, c.Message, c.Remedy = CheckFail, "the update plug-in could not be opened", "check cluster.updater"
		if openErr != nil {
			c.Message += ": " + openErr.Error()
		}
		return map[string][]cluster.Update{}, c
	}
	pending, failed, asked := orchestrator.ScanNodes(ctx, u, inv)
	errs := make([]string, 0, len(failed))
	for _, name := range slices.Sorted(maps.Keys(failed)) {
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
	if down := orchestrator.Unreachable(inv); asked > 0 && len(down) > 0 {
		c.Message += "; not asked: " + strings.Join(down, ", ")
	}
	return pending, c
}

// checkPauseMarks: no node is paused by a drover run (another drover on this
// cluster, or this state file's interrupted run, which must be resumed instead).
func checkPauseMarks(inv cluster.Inventory, cfg AnalyzeConfig) Check {
	c := Check{Name: "pause_marks", Status: CheckPass, Message: "no node is paused by a drover run"}
	if err := orchestrator.CheckForeignPauses(inv, cfg.Store, cfg.Cluster); err != nil {
		c.Status = CheckFail
		c.Message = strings.TrimPrefix(err.Error(), "refusing to start: ")
		c.Remedy = "one drover per cluster: finish or resume the run named, or lift its pause on the platform if that run is gone"
	}
	return c
}

// notAsked is the update_plugin check when no node is ready to be asked: it fails,
// naming the nodes and why they do not answer, instead of "answered on all 0 ready
// nodes".
func notAsked(inv cluster.Inventory) (CheckStatus, string, string) {
	msg := "no node is ready, so the update plug-in was not asked"
	if down := orchestrator.Unreachable(inv); len(down) > 0 {
		msg += ": " + strings.Join(down, ", ")
	}
	return CheckFail, msg, "bring the nodes up, or fix the driver's access to them (see driver_reachable); then run analyze again"
}
