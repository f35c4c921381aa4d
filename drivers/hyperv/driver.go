package hyperv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/drivers"
	"github.com/droverhq/drover/drivers/hyperv/scripts"
)

// Driver is the Hyper-V failover cluster driver. It is safe for concurrent use.
type Driver struct {
	cfg   Config
	run   Runner
	log   *slog.Logger
	addrs []string // the configured nodes as host:port

	mu sync.Mutex
	// names maps cluster node names (lower case) to the address that answered as
	// that computer.
	names map[string]string
	// good is the address a cluster-wide script last succeeded on.
	good string
	// bootBefore is each node's boot time when this driver rebooted it.
	bootBefore map[string]string
	// flights are the migrations this driver runs, by VM.
	flights drivers.Flights
	// slots bounds concurrent migrations by the cluster's MaximumParallelMigrations
	// (nil until the cluster has told).
	slots chan struct{}
	// memMiB is each VM's memory from the last inventory, to turn a migration's
	// percentage into MiB.
	memMiB map[string]int64
}

var (
	_ drivers.Driver        = (*Driver)(nil)
	_ drivers.NativeDrainer = (*Driver)(nil)
	_ drivers.Config        = (*Config)(nil)
)

func newDriver(_ context.Context, cfg Config, env drivers.Env, run Runner) (*Driver, error) {
	log := env.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Driver{cfg: cfg, log: log, names: map[string]string{}, bootBefore: map[string]string{}, memMiB: map[string]int64{}}
	port := cfg.WinRM.Port
	if cfg.Transport == "ssh" {
		port = cfg.SSH.Port
	}
	switch {
	case run != nil:
		d.run = run
	case cfg.Transport == "ssh":
		r, err := newSSHRunner(cfg.SSH, env.BaseDir)
		if err != nil {
			return nil, drivers.PrefixFields("cluster.hyperv", err)
		}
		d.run = r
	default:
		r, err := newWinRMRunner(cfg.WinRM, env.BaseDir)
		if err != nil {
			return nil, drivers.PrefixFields("cluster.hyperv", err)
		}
		d.run = r
	}
	for _, n := range cfg.Nodes {
		a, err := splitAddr(n, port)
		if err != nil {
			return nil, err
		}
		d.addrs = append(d.addrs, a)
	}
	// A script over the command-line limit is a bug or a parameter too large; find
	// it before any host is touched.
	for _, op := range scripts.Names() {
		if _, err := scripts.Command(op, nil); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// NewWithRunner builds a driver that runs its scripts through r (tests, drover driver
// check with a recording runner).
func NewWithRunner(cfg Config, r Runner, log *slog.Logger) (*Driver, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return newDriver(context.Background(), cfg, drivers.Env{Logger: log}, r)
}

// Capabilities: boot IDs (LastBootUpTime), the owner mark (the node's Description),
// native drain with drain: cluster.
func (d *Driver) Capabilities() drivers.Capabilities {
	return drivers.Capabilities{BootID: true, PauseOwner: true, NativeDrain: d.cfg.Drain == "cluster"}
}

// Close forgets the clients; WinRM holds no session between commands.
func (d *Driver) Close() error { return nil }

// call runs op with params on addr and decodes the envelope's data into out.
func (d *Driver) call(ctx context.Context, addr, op string, params, out any) error {
	line, err := scripts.Command(op, params)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, d.cfg.CommandTimeout)
	defer cancel()
	res, err := d.run.Run(ctx, addr, line)
	if err != nil {
		return err
	}
	data, err := parseEnvelope(op, addr, res)
	if err != nil {
		return mapScriptError(err)
	}
	if out == nil || len(data) == 0 || string(data) == "null" {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s on %s: unexpected answer: %w", op, addr, err)
	}
	return nil
}

// mapScriptError gives the sentinel errors of package drivers to script failures.
func mapScriptError(err error) error {
	var se *ScriptError
	if !errors.As(err, &se) {
		return err
	}
	m := se.Message
	switch {
	case strings.Contains(m, "drover:paused_by_other:"):
		return fmt.Errorf("%w: %w", drivers.ErrPausedByOther, err)
	case strings.Contains(m, "was not found"), strings.Contains(m, "ObjectNotFound"):
		return fmt.Errorf("%w: %w", drivers.ErrNotFound, err)
	case strings.Contains(m, "is paused"), strings.Contains(m, "not a possible owner"), strings.Contains(m, "is not up"):
		return fmt.Errorf("%w: %w", drivers.ErrRejected, err)
	}
	return err
}

// isTransport reports whether err is the node not answering (as opposed to a script
// failing or a config problem).
func isTransport(err error) bool {
	return errors.Is(err, drivers.ErrUnavailable)
}

// clusterCall runs a cluster-wide script on any node that answers, the last good one
// first.
func (d *Driver) clusterCall(ctx context.Context, op string, params, out any) error {
	d.mu.Lock()
	order := []string{}
	if d.good != "" {
		order = append(order, d.good)
	}
	for _, a := range d.addrs {
		if a != d.good {
			order = append(order, a)
		}
	}
	d.mu.Unlock()
	var errs []error
	for _, a := range order {
		err := d.call(ctx, a, op, params, out)
		if err == nil {
			d.mu.Lock()
			d.good = a
			d.mu.Unlock()
			return nil
		}
		if !isTransport(err) || ctx.Err() != nil {
			return err
		}
		errs = append(errs, err)
	}
	return fmt.Errorf("%s: no node answered: %w", op, errors.Join(errs...))
}

// addrOf returns the address of the cluster node called name.
func (d *Driver) addrOf(ctx context.Context, name string) (string, error) {
	key := strings.ToLower(name)
	d.mu.Lock()
	a, ok := d.names[key]
	d.mu.Unlock()
	if ok {
		return a, nil
	}
	// The management address usually starts with the computer name.
	for _, a := range d.addrs {
		host, _, _ := net.SplitHostPort(a)
		if first, _, _ := strings.Cut(host, "."); strings.EqualFold(first, name) && net.ParseIP(host) == nil {
			return a, nil
		}
	}
	d.identify(ctx)
	d.mu.Lock()
	a, ok = d.names[key]
	d.mu.Unlock()
	if !ok {
		return "", fmt.Errorf("node %q: %w among the reachable cluster.hyperv.nodes", name, drivers.ErrNotFound)
	}
	return a, nil
}

// identify asks every address not yet known which computer it is.
func (d *Driver) identify(ctx context.Context) {
	d.mu.Lock()
	known := map[string]bool{}
	for _, a := range d.names {
		known[a] = true
	}
	d.mu.Unlock()
	var wg sync.WaitGroup
	for _, a := range d.addrs {
		if known[a] {
			continue
		}
		wg.Go(func() {
			var r readyData
			if err := d.call(ctx, a, scripts.Ready, nil, &r); err == nil && r.Computer != "" {
				d.learn(r.Computer, a)
			}
		})
	}
	wg.Wait()
}

func (d *Driver) learn(computer, addr string) {
	d.mu.Lock()
	d.names[strings.ToLower(computer)] = addr
	d.mu.Unlock()
}

// PauseNode suspends the node (no drain) and puts owner in its Description.
func (d *Driver) PauseNode(ctx context.Context, node, owner string) error {
	if err := d.clusterCall(ctx, scripts.Pause, map[string]string{"node": node, "owner": owner}, nil); err != nil {
		return fmt.Errorf("pause node %s: %w", node, err)
	}
	d.log.Info("node paused", "node", node)
	return nil
}

// ResumeNode resumes the node with the configured failback and clears Drover's mark.
func (d *Driver) ResumeNode(ctx context.Context, node string) error {
	if err := d.clusterCall(ctx, scripts.Resume, map[string]string{"node": node, "failback": d.cfg.Failback}, nil); err != nil {
		return fmt.Errorf("resume node %s: %w", node, err)
	}
	d.log.Info("node resumed", "node", node)
	return nil
}

// RebootNode schedules a restart reboot_delay ahead, so the command returns before the
// host goes down.
func (d *Driver) RebootNode(ctx context.Context, node string) error {
	addr, err := d.addrOf(ctx, node)
	if err != nil {
		return fmt.Errorf("reboot node: %w", err)
	}
	var r struct {
		Boot string `json:"boot"`
	}
	err = d.call(ctx, addr, scripts.Reboot, map[string]int{"delay_seconds": int(d.cfg.RebootDelay / time.Second)}, &r)
	var se *ScriptError
	if errors.As(err, &se) && strings.Contains(se.Message, "exit 1190") {
		// A restart is already scheduled (a repeated call): it is under way.
		d.log.Info("node reboot already scheduled", "node", node)
		return nil
	}
	if err != nil {
		return fmt.Errorf("reboot node %s: %w", node, err)
	}
	d.mu.Lock()
	d.bootBefore[strings.ToLower(node)] = r.Boot
	d.mu.Unlock()
	d.log.Info("node reboot scheduled", "node", node, "boot_before", r.Boot)
	return nil
}

type readyData struct {
	Computer       string   `json:"computer"`
	Boot           string   `json:"boot"`
	ClusterService string   `json:"cluster_service"`
	NodeState      string   `json:"node_state"`
	CSVsOffline    []string `json:"csvs_offline"`
	Failed         []string `json:"failed"`
}

// NodeReady: a new boot (when this driver rebooted it), the cluster service running,
// the node Up or Paused, every CSV online and no failed resource on the node. A node
// that does not answer is not ready (it is rebooting); a config error is an error.
func (d *Driver) NodeReady(ctx context.Context, node string) (bool, error) {
	r, err := d.readiness(ctx, node)
	if err != nil {
		var fe *drivers.FieldError
		if errors.As(err, &fe) || errors.Is(err, drivers.ErrNotFound) && !isTransport(err) {
			return false, err
		}
		d.log.Debug("node not ready", "node", node, "error", err)
		return false, nil
	}
	d.mu.Lock()
	before := d.bootBefore[strings.ToLower(node)]
	d.mu.Unlock()
	why := notReady(r, before)
	if why != "" {
		d.log.Debug("node not ready", "node", node, "reason", why)
		return false, nil
	}
	d.mu.Lock()
	delete(d.bootBefore, strings.ToLower(node))
	d.mu.Unlock()
	return true, nil
}

func (d *Driver) readiness(ctx context.Context, node string) (readyData, error) {
	var r readyData
	addr, err := d.addrOf(ctx, node)
	if err != nil {
		return r, err
	}
	err = d.call(ctx, addr, scripts.Ready, nil, &r)
	return r, err
}

// notReady says why r is not a ready node, "" when it is.
func notReady(r readyData, bootBefore string) string {
	switch {
	case bootBefore != "" && r.Boot == bootBefore:
		return "not rebooted yet (LastBootUpTime unchanged)"
	case r.ClusterService != "Running":
		return "cluster service " + r.ClusterService
	case r.NodeState != "Up" && r.NodeState != "Paused":
		return "cluster node " + r.NodeState
	case len(r.CSVsOffline) > 0:
		return "cluster shared volumes not online: " + strings.Join(r.CSVsOffline, ", ")
	case len(r.Failed) > 0:
		return "failed resources: " + strings.Join(r.Failed, ", ")
	}
	return ""
}

// nodeState maps a cluster node state to Drover's.
func nodeState(s string, rebooting bool) (cluster.NodeState, bool) {
	switch s {
	case "Up":
		return cluster.NodeUp, false
	case "Paused":
		return cluster.NodePaused, true
	}
	if rebooting {
		return cluster.NodeRebooting, true
	}
	return cluster.NodeDown, false
}
