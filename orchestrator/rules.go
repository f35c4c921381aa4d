package orchestrator

import (
	"context"
	"net/http"

	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/drivers"
	"github.com/droverhq/drover/policies"
	"github.com/droverhq/drover/runs"
)

// The engine's own rules that readiness analysis (orchestrator/readiness) applies
// too: exported here, not copied, so that `drover analyze` and a run decide alike.

// ResolveLocalStorage is policy.local_storage as a run resolves it for the driver.
func (p Policy) ResolveLocalStorage(caps drivers.Capabilities) (Policy, error) {
	return p.resolveLocalStorage(caps)
}

// MovableInventory is inv with the VMs whose local disks may not move marked not
// migratable, as a run sees it.
func (p Policy) MovableInventory(inv cluster.Inventory) cluster.Inventory {
	return p.movableInventory(inv)
}

// LocalStorageRule is the planner's view of a resolved policy.local_storage.
func (p Policy) LocalStorageRule() policies.LocalStorage { return p.localStorage() }

// OrderNodes is the order a run takes the nodes in, and the nodes it leaves out
// (with the reason).
func OrderNodes(inv cluster.Inventory, p Policy, pending map[string][]cluster.Update) ([]string, map[string]string, error) {
	return orderNodes(inv, p, pending)
}

// ScanNodes asks the updater for every node's pending updates, as Prepare does.
func ScanNodes(ctx context.Context, u drivers.Updater, inv cluster.Inventory) (pending map[string][]cluster.Update, failed map[string]error, asked int) {
	return scanNodes(ctx, u, inv)
}

// GateCheckNow runs the health gate's check once, as between two nodes of a run.
func GateCheckNow(ctx context.Context, g HealthGate, clusterName string, client *http.Client) error {
	return gateCheck(ctx, g, map[string]string{"DROVER_PHASE": hookGate, "DROVER_CLUSTER": clusterName}, client)
}

// CheckForeignPauses is the error a new run gets when nodes are paused by another
// drover run (nil when none); store (may be nil) tells this state file's
// unfinished runs apart.
func CheckForeignPauses(inv cluster.Inventory, store *runs.Store, clusterName string) error {
	return checkForeignPauses(inv, store, clusterName)
}

// NotReady lists the nodes of inv (or only those named in want) that are not ready,
// with their state.
func NotReady(inv cluster.Inventory, want []string) []string { return notReady(inv, want) }

// Unreachable lists the nodes that do not answer, as "name (down)".
func Unreachable(inv cluster.Inventory) []string { return unreachable(inv) }

// PausedByRun is the ID of the drover run whose mark a paused node carries ("" when
// none).
func PausedByRun(n cluster.Node) string { return pausedByRun(n) }

// OwnPauseNote says what to do with a node a drover run paused.
func OwnPauseNote(node, runID string) string { return ownPauseNote(node, runID) }
