package orchestrator_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/drivers"
	"github.com/droverhq/drover/orchestrator"
	"github.com/droverhq/drover/orchestrator/readiness"
	"github.com/droverhq/drover/runs"
)

// failingUpdater fails Scan on one node.
type failingUpdater struct {
	drivers.Updater
	node string
}

func (u failingUpdater) Scan(ctx context.Context, node string) ([]cluster.Update, error) {
	if node == u.node {
		return nil, fmt.Errorf("ssh %s: connection refused", node)
	}
	return u.Updater.Scan(ctx, node)
}

// checksOf returns the analysis as "name=status" for the checks named, and the
// check of each name.
func checkOf(a readiness.Analysis, name string) (readiness.Check, bool) {
	for _, c := range a.Checks {
		if c.Name == name {
			return c, true
		}
	}
	return readiness.Check{}, false
}

func TestAnalyze(t *testing.T) {
	dir := t.TempDir()
	okHook := writeScript(t, dir, "ok.sh", "exit 0")
	notExec := filepath.Join(dir, "plain.sh")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pinned := small + "  - {name: pinned, node: b, memory_mib: 1024, vcpus: 1, migratable: false, not_migratable_reason: local disk}\n"
	down := strings.Replace(small, "vms:\n", "  - {name: d, memory_mib: 32768, cpus: 16, down: true}\nvms:\n", 1)
	netted := `
nodes:
  - {name: a, memory_mib: 32768, cpus: 16, cpu_group: g1, networks: [{name: prod, vlan: 10}], updates: [{name: k}]}
  - {name: b, memory_mib: 32768, cpus: 16, cpu_group: g1, networks: [{name: PROD, vlan: 10}, {name: dmz, vlan: 5}], updates: [{name: k}]}
  - {name: c, memory_mib: 32768, cpus: 16, cpu_group: g2, networks: [{name: prod, vlan: 10}, {name: dmz, vlan: 6}], updates: [{name: k}]}
vms:
  - {name: web, node: a, memory_mib: 2048, vcpus: 2, networks: [{name: Prod, vlan: 10}]}
`
	netted2 := netted + "  - {name: edge, node: b, memory_mib: 2048, vcpus: 2, networks: [{name: dmz, vlan: 5}]}\n"
	tests := []struct {
		name    string
		cluster string
		policy  func(*orchestrator.Policy)
		config  func(*readiness.AnalyzeConfig)
		ready   bool
		want    map[string]readiness.CheckStatus
		has     map[string]string // check name -> text in its message
		absent  []string          // checks that must not run
	}{
		{name: "ready", cluster: small, ready: true, want: map[string]readiness.CheckStatus{
			"run_timeouts": "pass", "hooks": "pass", "no_active_run": "pass", "driver_reachable": "pass", "inventory_valid": "pass",
			"nodes_up": "pass", "update_plugin": "pass", "node_order": "pass", "vms_movable": "pass", "reserve_now": "pass", "reserve_during_run": "pass"},
			has: map[string]string{"node_order": "b c a", "update_plugin": "4 updates pending on 3 nodes"}},
		{name: "reserve-cannot-hold-during-the-run", cluster: tightCluster, policy: func(p *orchestrator.Policy) { p.ReserveNodes = 1 },
			want: map[string]readiness.CheckStatus{"reserve_now": "pass", "reserve_during_run": "fail"},
			has:  map[string]string{"reserve_during_run": "while a is out, with"}},
		{name: "reserve-overridden", cluster: tightCluster, ready: true, policy: func(p *orchestrator.Policy) { p.ReserveNodes, p.OverrideReserve = 1, true },
			want: map[string]readiness.CheckStatus{"reserve_during_run": "warn"}},
		{name: "reserve-broken-now", cluster: tightCluster, policy: func(p *orchestrator.Policy) { p.ReserveNodes = 2 },
			want: map[string]readiness.CheckStatus{"reserve_now": "fail", "reserve_during_run": "fail"}, has: map[string]string{"reserve_now": "over-committed"}},
		{name: "down-node-without-the-option", cluster: down, ready: true, want: map[string]readiness.CheckStatus{"nodes_up": "warn"}, has: map[string]string{"nodes_up": "d is down"}},
		{name: "down-node-with-require-all", cluster: down, policy: func(p *orchestrator.Policy) { p.RequireAllNodesOnline = true },
			want: map[string]readiness.CheckStatus{"nodes_up": "fail"}},
		{name: "non-migratable-fail", cluster: pinned, want: map[string]readiness.CheckStatus{"vms_movable": "fail"}, has: map[string]string{"vms_movable": "vm pinned (not migratable: local disk) on b"}},
		{name: "non-migratable-shutdown", cluster: pinned, ready: true, policy: func(p *orchestrator.Policy) { p.NonMigratable = orchestrator.NonMigratableShutdown },
			want: map[string]readiness.CheckStatus{"vms_movable": "pass"}, has: map[string]string{"vms_movable": "shut down and restarted"}},
		{name: "non-migratable-skip", cluster: pinned, ready: true, policy: func(p *orchestrator.Policy) { p.NonMigratable = orchestrator.NonMigratableSkip },
			want: map[string]readiness.CheckStatus{"vms_movable": "warn"}, has: map[string]string{"vms_movable": "LEFT RUNNING"}},
		// web's network matches b's by name case-insensitively; c has another CPU group.
		{name: "network-names-are-case-insensitive", cluster: netted, ready: true, want: map[string]readiness.CheckStatus{"vms_movable": "pass"}},
		// edge needs dmz on VLAN 5: a has no dmz, c has it on VLAN 6 (and another CPU group).
		{name: "network-vlan-and-cpu-group-must-match", cluster: netted2, want: map[string]readiness.CheckStatus{"vms_movable": "fail"},
			has: map[string]string{"vms_movable": "place vm edge"}},
		{name: "updater-fails-on-a-node", cluster: small, config: func(c *readiness.AnalyzeConfig) { c.Updater = failingUpdater{c.Updater, "c"} },
			want: map[string]readiness.CheckStatus{"update_plugin": "fail"}, has: map[string]string{"update_plugin": "c: ssh c: connection refused"}},
		{name: "driver-unreachable", cluster: small, config: func(c *readiness.AnalyzeConfig) {
			c.Driver, c.DriverErr = nil, errors.New("dial qemu+ssh://h1/system: no route to host")
		}, want: map[string]readiness.CheckStatus{"driver_reachable": "fail", "run_timeouts": "pass"},
			absent: []string{"inventory_valid", "vms_movable", "reserve_now"}, has: map[string]string{"driver_reachable": "no route to host"}},
		{name: "hooks-present", cluster: small, ready: true, policy: func(p *orchestrator.Policy) {
			p.PreHook.Command, p.PostHook.Command = []string{okHook}, []string{"sh", "-c", "true"}
		}, want: map[string]readiness.CheckStatus{"hooks": "pass"}, has: map[string]string{"hooks": okHook}},
		{name: "hook-missing-or-not-executable", cluster: small, policy: func(p *orchestrator.Policy) {
			p.PreHook.Command, p.PostHook.Command = []string{filepath.Join(dir, "missing.sh")}, []string{notExec}
		}, want: map[string]readiness.CheckStatus{"hooks": "fail"}, has: map[string]string{"hooks": "policy.post_hook: " + notExec}},
		{name: "warn-after-not-before-stop-after", cluster: small, policy: func(p *orchestrator.Policy) {
			p.WarnAfter, p.StopAfter = orchestrator.Duration(time.Hour), orchestrator.Duration(time.Hour)
		}, want: map[string]readiness.CheckStatus{"run_timeouts": "fail"}},
		{name: "health-check-fails-now", cluster: small, policy: func(p *orchestrator.Policy) { p.HealthGate.Command = []string{"false"} },
			want: map[string]readiness.CheckStatus{"health_gate": "fail"}},
		{name: "state-file-held-by-a-live-drover", cluster: small, config: func(c *readiness.AnalyzeConfig) {
			o := runs.Owner{PID: 4242, Host: "ops-1"}
			c.StoreErr = &runs.LockedError{Path: "/var/lib/drover/drover.db", Owner: &o}
		}, want: map[string]readiness.CheckStatus{"no_active_run": "fail"}, has: map[string]string{"no_active_run": "in use by another drover process"}},
		{name: "state-file-held-by-the-daemon", cluster: small, config: func(c *readiness.AnalyzeConfig) {
			o := runs.Owner{PID: 4242, Host: "ops-1", Command: runs.DaemonCommand}
			c.StoreErr = &runs.LockedError{Path: "/var/lib/drover/drover.db", Owner: &o}
		}, want: map[string]readiness.CheckStatus{"no_active_run": "fail"}, has: map[string]string{"no_active_run": "in use by the daemon, pid 4242 on ops-1 (serve)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.cluster)
			cfg := readiness.AnalyzeConfig{Cluster: "test", Policy: testPolicy(tt.policy), Driver: h.drv, Updater: h.drv}
			if tt.config != nil {
				tt.config(&cfg)
			}
			a := readiness.Analyze(context.Background(), cfg)
			if a.Ready != tt.ready {
				t.Errorf("ready = %v, want %v", a.Ready, tt.ready)
			}
			for name, want := range tt.want {
				c, ok := checkOf(a, name)
				if !ok || c.Status != want {
					t.Errorf("check %s = %+v, want %s", name, c, want)
				}
				if c.Status != readiness.CheckPass && c.Remedy == "" {
					t.Errorf("check %s is %s without a remedy", name, c.Status)
				}
			}
			for name, text := range tt.has {
				if c, _ := checkOf(a, name); !strings.Contains(c.Message, text) {
					t.Errorf("check %s message %q, want it to contain %q", name, c.Message, text)
				}
			}
			for _, name := range tt.absent {
				if c, ok := checkOf(a, name); ok {
					t.Errorf("check %s ran without an inventory: %+v", name, c)
				}
			}
			if t.Failed() {
				for _, c := range a.Checks {
					t.Logf("%s %s: %s (%s)", c.Status, c.Name, c.Message, c.Remedy)
				}
			}
		})
	}
}

func TestAnalyze_RunLocks(t *testing.T) {
	// A run interrupted by a process that is gone leaves a stale lock (warn); the same
	// lock held by a live process is a failure.
	for _, alive := range []runs.Liveness{runs.Dead, runs.Alive, runs.Unknown} {
		t.Run(fmt.Sprint(alive), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHarness(t, small)
				ctx, cancel := context.WithCancel(context.Background())
				h.events.check = func(e orchestrator.Event) {
					if e.Kind == orchestrator.EventMigrationStarted {
						cancel()
					}
				}
				id := h.start(ctx, testPolicy(nil))
				if _, err := h.eng.Execute(ctx, id); !errors.Is(err, orchestrator.ErrInterrupted) {
					t.Fatalf("Execute = %v", err)
				}
				a := readiness.Analyze(context.Background(), readiness.AnalyzeConfig{
					Cluster: "test", Policy: testPolicy(nil), Driver: h.drv, Updater: h.drv, Store: h.store,
					Alive: func(runs.Owner) runs.Liveness { return alive },
				})
				c, _ := checkOf(a, "no_active_run")
				want := map[runs.Liveness]readiness.CheckStatus{runs.Dead: "warn", runs.Alive: "fail", runs.Unknown: "fail"}[alive]
				if c.Status != want || !strings.Contains(c.Message, id) || !strings.Contains(c.Remedy, id) {
					t.Errorf("no_active_run = %+v, want %s naming run %s", c, want, id)
				}
			})
		})
	}
}

func TestAnalyze_HTTPHealthGate(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.Error(w, "degraded", http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	h := newHarness(t, small)
	for _, tc := range []struct {
		path string
		want readiness.CheckStatus
	}{{"/healthz", "pass"}, {"/storage", "fail"}} {
		a := readiness.Analyze(context.Background(), readiness.AnalyzeConfig{
			Cluster: "test", Policy: testPolicy(func(p *orchestrator.Policy) { p.HealthGate.URL = srv.URL + tc.path }),
			Driver: h.drv, Updater: h.drv, HTTPClient: srv.Client(),
		})
		if c, _ := checkOf(a, "health_gate"); c.Status != tc.want {
			t.Errorf("GET %s: health_gate = %+v, want %s", tc.path, c, tc.want)
		}
	}
}
