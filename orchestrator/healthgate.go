package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/runs"
)

// This file holds the health gate between nodes and the checks that the cluster
// is online enough to go on.

// requireOnline refuses to start a run unless every node is up (with
// policy.require_all_nodes_online) or a majority is.
func requireOnline(inv cluster.Inventory, p Policy) error {
	down := notReady(inv, nil)
	if p.RequireAllNodesOnline && len(down) > 0 {
		return fmt.Errorf("policy.require_all_nodes_online: %d of %d nodes are not up (%s); bring them up, or unset the option to patch the others", len(down), len(inv.Nodes), strings.Join(down, ", "))
	}
	// The same rule as analyze's nodes_up check: with most of the cluster down (or
	// unreachable), taking one more node out is unsafe, and a run that skips every
	// node must not report success.
	if up := len(inv.Nodes) - len(down); up*2 <= len(inv.Nodes) {
		return fmt.Errorf("only %d of %d nodes are up (%s): no majority; bring nodes up (or make them reachable) before maintenance", up, len(inv.Nodes), strings.Join(down, ", "))
	}
	return nil
}

// notReady lists the nodes of inv (or only those named in want, which must exist)
// that are not ready, with their state.
func notReady(inv cluster.Inventory, want []string) []string {
	var out []string
	if want == nil {
		for _, n := range inv.Nodes {
			if !n.Ready() {
				out = append(out, fmt.Sprintf("%s is %s", n.Name, n.State))
			}
		}
		return out
	}
	for _, name := range want {
		n, ok := inv.Node(name)
		switch {
		case !ok:
			out = append(out, name+" is gone from the inventory")
		case !n.Ready():
			out = append(out, fmt.Sprintf("%s is %s", name, n.State))
		}
	}
	return out
}

// maintained reports the first node of the run that was paused (and so maintained,
// whatever its outcome), "" when none was yet.
func (rs *runState) maintained() string {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for _, name := range rs.order {
		if !rs.nodes[name].StartedAt.IsZero() {
			return name
		}
	}
	return ""
}

// beforeNode applies the gates between nodes before the queued node name starts:
// the canary's approval, then the health gate. A node in progress (a resumed run)
// goes on without them. It returns a run event when the run must not go on.
func (e *Engine) beforeNode(ctx context.Context, rs *runState, name string) (string, error) {
	if rs.node(name).State != NodeQueued {
		return "", nil
	}
	if rs.maintained() == "" {
		return "", nil // the first node: nothing to gate yet
	}
	if rs.policy.Canary {
		r, err := e.cfg.Store.Run(rs.id)
		if err != nil {
			return "", fmt.Errorf("read run %s: %w", rs.id, err)
		}
		if !r.Approved {
			return evRunWait, nil
		}
	}
	err := e.healthGate(ctx, rs, name)
	if rs.stopped() {
		return evRunStop, rs.pol.stopError()
	}
	var gf *gateFailure
	if !errors.As(err, &gf) {
		return "", err
	}
	msg := fmt.Sprintf("health gate failed before node %s: %v", name, gf.err)
	e.log.Error("health gate failed", "run_id", rs.id, "node", name, "error", gf.err)
	e.emit(Event{Kind: EventWarning, RunID: rs.id, Node: name, Message: msg})
	if _, err := e.journal(rs, runs.Entry{Op: opGate, Status: runs.StatusEvent, Node: name, Detail: "failed before " + name + ": " + gf.err.Error()}); err != nil {
		return "", err
	}
	// The nodes left are said to be left, with why, rather than left queued.
	for _, n := range rs.order {
		if rs.node(n).State != NodeQueued {
			continue
		}
		if err := e.transition(rs, n, evSkip, func(r *runs.NodeRecord) { r.SkipReason = "not started: " + msg }); err != nil {
			return "", err
		}
	}
	return evRunStop, errors.New(msg)
}

// gateFailure is a health gate that did not pass (as opposed to an interrupted run or
// a store error).
type gateFailure struct{ err error }

func (g *gateFailure) Error() string { return g.err.Error() }

// healthGate waits until the nodes the run depends on are ready again (up to
// health_gate.ready_timeout), then runs the optional check with its retries.
func (e *Engine) healthGate(ctx context.Context, rs *runState, next string) error {
	g := rs.policy.HealthGate
	wctx, cancel := context.WithTimeout(ctx, e.clock.WallDuration(orDefault(g.ReadyTimeout.D(), 15*time.Minute)))
	defer cancel()
	poll := time.NewTicker(e.clock.WallDuration(rs.policy.PollInterval.D()))
	defer poll.Stop()
	var missing []string
	for {
		inv, err := e.cfg.Driver.Inventory(wctx)
		switch {
		case err == nil:
			if missing = notReady(inv, rs.gateNodes()); len(missing) == 0 {
				return e.gateCheckWithRetries(ctx, rs, next)
			}
		case wctx.Err() == nil: // a call cut by the deadline keeps the last finding
			missing = []string{"inventory unreadable: " + err.Error()}
		}
		select {
		case <-poll.C:
			continue
		case <-rs.stop:
			return nil
		case <-wctx.Done():
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%w: %v", ErrInterrupted, ctx.Err())
		}
		return &gateFailure{fmt.Errorf("nodes not ready within policy.health_gate.ready_timeout (%s): %s", g.ReadyTimeout.D(), strings.Join(missing, "; "))}
	}
}

// gateCheckWithRetries runs the health gate's optional check, with its retries.
func (e *Engine) gateCheckWithRetries(ctx context.Context, rs *runState, next string) error {
	g := rs.policy.HealthGate
	if len(g.Command) == 0 && g.URL == "" {
		return nil
	}
	env := map[string]string{"DROVER_NODE": next, "DROVER_RUN_ID": rs.id, "DROVER_PHASE": hookGate, "DROVER_CLUSTER": e.cfg.Cluster}
	var last error
	for attempt := 0; attempt <= g.Retries; attempt++ {
		if attempt > 0 {
			t := time.NewTimer(e.clock.WallDuration(g.Interval.D()))
			select {
			case <-t.C:
			case <-rs.stop:
				t.Stop()
				return nil
			case <-ctx.Done():
				t.Stop()
				return fmt.Errorf("%w: %v", ErrInterrupted, ctx.Err())
			}
		}
		if last = gateCheck(ctx, g, env, nil); last == nil {
			_, err := e.journal(rs, runs.Entry{Op: opGate, Status: runs.StatusEvent, Node: next, Detail: "passed before " + next})
			return err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%w: %v", ErrInterrupted, ctx.Err())
		}
		e.log.Warn("health check failed", "run_id", rs.id, "node", next, "attempt", attempt+1, "error", last)
	}
	return &gateFailure{fmt.Errorf("check failed %d times, last: %w", g.Retries+1, last)}
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// gateNodes lists the nodes that must be ready for the run to go on: with
// policy.require_all_nodes_online every node of the cluster (nil), else every node of
// the run except those it already failed or found down before their turn. A node
// that goes down mid-run stops the run before another node is paused.
func (rs *runState) gateNodes() []string {
	if rs.policy.RequireAllNodesOnline {
		return nil
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	out := []string{}
	for _, name := range rs.order {
		r := rs.nodes[name]
		if r.State == NodeFailed || (r.State == NodeSkipped && strings.HasPrefix(r.SkipReason, "node is ")) {
			continue
		}
		out = append(out, name)
	}
	return out
}

// gateCheck runs the health gate's check once: the command must exit 0, the URL must
// answer a GET with 2xx, within health_gate.timeout. client nil = a default client.
func gateCheck(ctx context.Context, g HealthGate, env map[string]string, client *http.Client) error {
	timeout := orDefault(g.Timeout.D(), 30*time.Second)
	if len(g.Command) > 0 {
		res := runCommand(ctx, g.Command, timeout, env)
		if res.Err != nil {
			if res.Output != "" {
				return fmt.Errorf("%s: %w: %s", g.Command[0], res.Err, res.Output)
			}
			return fmt.Errorf("%s: %w", g.Command[0], res.Err)
		}
		return nil
	}
	u, err := url.Parse(g.URL)
	if err != nil {
		return errors.New("health_gate.url cannot be parsed")
	}
	shown := RedactURL(u.String())
	if client == nil {
		client = &http.Client{}
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(cctx, http.MethodGet, g.URL, nil)
	if err != nil {
		return fmt.Errorf("GET %s: %w", shown, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		// *url.Error repeats the URL, credentials included: keep only its cause.
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err
		}
		if cctx.Err() != nil && ctx.Err() == nil {
			err = fmt.Errorf("no answer within %s", timeout)
		}
		return fmt.Errorf("GET %s: %v", shown, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("GET %s: %s", shown, resp.Status)
	}
	return nil
}
