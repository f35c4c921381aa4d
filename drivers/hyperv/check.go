package hyperv

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/droverhq/drover/drivers"
	"github.com/droverhq/drover/drivers/hyperv/scripts"
)

var (
	_ drivers.ReadinessChecker = (*Driver)(nil)
	_ drivers.Prober           = (*Driver)(nil)
)

// Readiness is what Test-CauSetup and an administrator would check before a rolling
// run: every node reachable, quorum, nodes up, live migration on, shared volumes
// online, no failed resource, VMs that cannot move, reboots already pending.
func (d *Driver) Readiness(ctx context.Context) ([]drivers.ReadinessCheck, error) {
	s, err := d.read(ctx)
	if err != nil {
		return []drivers.ReadinessCheck{{Name: "hyperv.cluster", Status: drivers.CheckFail, Message: err.Error(),
			Remedy: "check cluster.hyperv.nodes, the transport settings and that the cluster service runs"}}, nil
	}
	var out []drivers.ReadinessCheck
	add := func(name string, st string, msg, remedy string) {
		out = append(out, drivers.ReadinessCheck{Name: name, Status: st, Message: msg, Remedy: remedy})
	}
	if len(s.errs) > 0 {
		var bad []string
		for a, e := range s.errs {
			bad = append(bad, a+": "+e.Error())
		}
		sort.Strings(bad)
		add("hyperv.reachable", drivers.CheckFail, "nodes not reachable over "+d.cfg.Transport+": "+strings.Join(bad, "; "),
			"enable the listener (winrm quickconfig -transport:https, or the OpenSSH server) and check cluster.hyperv.nodes")
	} else {
		add("hyperv.reachable", drivers.CheckPass, fmt.Sprintf("all %d nodes answer over %s", len(d.addrs), d.cfg.Transport), "")
	}
	add("hyperv.quorum", drivers.CheckPass, fmt.Sprintf("cluster %s, quorum %s", s.cluster.Name, s.cluster.Quorum), "")
	var down, paused, svc []string
	for _, n := range s.cluster.Nodes {
		switch n.State {
		case "Up":
		case "Paused":
			paused = append(paused, n.Name)
		default:
			down = append(down, n.Name+" ("+n.State+")")
		}
		if h, ok := s.hosts[strings.ToLower(n.Name)]; ok && h.ClusterService != "Running" {
			svc = append(svc, n.Name+" ("+h.ClusterService+")")
		}
	}
	switch {
	case len(down) > 0 || len(svc) > 0:
		add("hyperv.nodes_up", drivers.CheckFail, "nodes not up: "+strings.Join(append(down, svc...), ", "), "bring every node up (Start-ClusterNode) before a rolling run")
	case len(paused) > 0:
		add("hyperv.nodes_up", drivers.CheckWarn, "nodes already paused: "+strings.Join(paused, ", "), "resume them (Resume-ClusterNode) unless they are paused on purpose")
	default:
		add("hyperv.nodes_up", drivers.CheckPass, fmt.Sprintf("all %d nodes up", len(s.cluster.Nodes)), "")
	}
	var off, auth []string
	for _, h := range s.hosts {
		if !h.MigrationEnabled {
			off = append(off, h.Computer)
		}
		auth = append(auth, h.Computer+": "+h.MigrationAuth)
	}
	sort.Strings(off)
	sort.Strings(auth)
	if len(off) > 0 {
		add("hyperv.live_migration", drivers.CheckFail, "live migration disabled on "+strings.Join(off, ", "), "Enable-VMMigration on every node")
	} else {
		add("hyperv.live_migration", drivers.CheckPass, "live migration enabled; authentication "+strings.Join(auth, ", "), "")
	}
	add("hyperv.max_parallel_migrations", drivers.CheckPass, fmt.Sprintf("the cluster runs at most %d live migrations at once (MaximumParallelMigrations %d)", s.maxParallel(), s.cluster.MaxParallelMigrations), "")
	var csvOff []string
	for _, c := range s.cluster.CSVs {
		if c.State != "Online" {
			csvOff = append(csvOff, c.Name+" ("+c.State+")")
		}
	}
	if len(csvOff) > 0 {
		add("hyperv.csvs", drivers.CheckFail, "cluster shared volumes not online: "+strings.Join(csvOff, ", "), "bring them online (Get-ClusterSharedVolume) before a rolling run")
	} else {
		add("hyperv.csvs", drivers.CheckPass, fmt.Sprintf("%d cluster shared volumes online", len(s.cluster.CSVs)), "")
	}
	if len(s.cluster.Failed) > 0 {
		var f []string
		for _, r := range s.cluster.Failed {
			f = append(f, r.Name+" on "+r.Owner)
		}
		add("hyperv.failed_resources", drivers.CheckFail, "failed cluster resources: "+strings.Join(f, ", "), "repair them first (Get-ClusterResource | ? State -eq Failed)")
	}
	var stuck []string
	for _, v := range d.inventory(s).VMs {
		if !v.Migratable {
			stuck = append(stuck, v.Name+" ("+v.NotMigratableReason+")")
		}
	}
	if len(stuck) > 0 {
		add("hyperv.not_migratable", drivers.CheckWarn, "VMs that cannot live-migrate: "+strings.Join(stuck, "; "), "move their storage to cluster storage, or set policy.non_migratable")
	}
	var pending []string
	for _, h := range s.hosts {
		if h.RebootPending {
			pending = append(pending, h.Computer)
		}
	}
	sort.Strings(pending)
	if len(pending) > 0 {
		add("hyperv.reboot_pending", drivers.CheckWarn, "a reboot is already pending on "+strings.Join(pending, ", "), "")
	}
	return out, nil
}

// Probe runs every read-only script on every node (cluster view, host view,
// readiness, a migration status per VM role, a Windows Update scan with CAU's default
// criteria) and returns the raw answers. Nothing is changed on the cluster.
func (d *Driver) Probe(ctx context.Context) ([]drivers.Probe, error) {
	rec := &recorder{next: d.run}
	p := &Driver{cfg: d.cfg, run: rec, log: d.log, addrs: d.addrs, names: map[string]string{}, bootBefore: map[string]string{},
		memMiB: map[string]int64{}}
	s, err := p.read(ctx)
	for _, a := range p.addrs {
		_ = p.call(ctx, a, scripts.Ready, nil, nil)
		_ = p.call(ctx, a, scripts.WUScan, map[string]string{"criteria": DefaultCriteria}, nil)
	}
	if err == nil {
		for i, g := range s.cluster.Groups {
			if i >= 20 {
				break
			}
			if a, aerr := p.addrOf(ctx, g.Owner); aerr == nil {
				_ = p.call(ctx, a, scripts.MigStatus, map[string]string{"vm": g.Name}, nil)
			}
		}
	}
	return rec.probes(), err
}

// recorder is a Runner that keeps every answer.
type recorder struct {
	next Runner
	mu   sync.Mutex
	out  []drivers.Probe
}

func (r *recorder) Run(ctx context.Context, addr, cmdline string) (Output, error) {
	start := time.Now()
	out, err := r.next.Run(ctx, addr, cmdline)
	op, params, perr := scripts.Parse(cmdline)
	if perr != nil {
		op = "unknown"
	}
	p := drivers.Probe{Node: addr, Op: op, Params: params, Stdout: out.Stdout, Stderr: out.Stderr, ExitCode: out.ExitCode, Seconds: time.Since(start).Seconds()}
	if err != nil {
		p.Error = err.Error()
	}
	r.mu.Lock()
	r.out = append(r.out, p)
	r.mu.Unlock()
	return out, err
}

func (r *recorder) probes() []drivers.Probe {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := append([]drivers.Probe(nil), r.out...)
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Node != out[j].Node {
			return out[i].Node < out[j].Node
		}
		return out[i].Op < out[j].Op
	})
	return out
}

// ReplayRunner answers commands from recorded probes: the same node, script and
// parameters get the recorded answer; anything else is an error. Tests run the driver
// on it to read what a real cluster answered.
type ReplayRunner struct {
	probes []drivers.Probe
}

// NewReplayRunner reads fixtures as drover driver check writes them.
func NewReplayRunner(data []byte) (*ReplayRunner, error) {
	var f drivers.ProbeFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("read fixtures: %w", err)
	}
	if f.Driver != "hyperv" {
		return nil, fmt.Errorf("read fixtures: driver %q, want hyperv", f.Driver)
	}
	return &ReplayRunner{probes: f.Probes}, nil
}

func (r *ReplayRunner) Run(_ context.Context, addr, cmdline string) (Output, error) {
	op, params, err := scripts.Parse(cmdline)
	if err != nil {
		return Output{}, err
	}
	for _, p := range r.probes {
		if p.Node == addr && p.Op == op && sameJSON(p.Params, params) {
			if p.Error != "" {
				return Output{}, fmt.Errorf("%w: recorded: %s", drivers.ErrUnavailable, p.Error)
			}
			return Output{Stdout: p.Stdout, Stderr: p.Stderr, ExitCode: p.ExitCode}, nil
		}
	}
	return Output{}, fmt.Errorf("%w: no recorded answer for %s on %s with %s", drivers.ErrUnavailable, op, addr, params)
}

func sameJSON(a, b json.RawMessage) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return bytes.Equal(a, b)
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}
