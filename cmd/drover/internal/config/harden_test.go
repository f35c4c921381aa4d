package config

import (
	"errors"
	"strings"
	"testing"

	"github.com/droverhq/drover/drivers"
)

// TestServe_PolicyNeverLeaksBetweenClusters: the overrides of the first cluster
// (canary, non_migratable: skip, override_reserve) stay its own; the second cluster,
// which has no policy block, runs the top-level policy, whichever cluster the CLI
// selected (issue 10, item 1).
func TestServe_PolicyNeverLeaksBetweenClusters(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "c.yaml", "nodes: [{name: n1, memory_mib: 1024, cpus: 2}]\n")
	file := writeFile(t, dir, "drover.yaml", `state: state.db
policy: {max_parallel_migrations: 3}
clusters:
  - {name: a, driver: sim, sim: {cluster_file: c.yaml}, policy: {canary: true, non_migratable: skip, override_reserve: true, retries_per_node: 7}}
  - {name: b, driver: sim, sim: {cluster_file: c.yaml}}
`)
	for _, selected := range []string{"", "a", "b"} {
		t.Run("selected-"+selected, func(t *testing.T) {
			var sets []string
			if selected != "" {
				sets = []string{"cluster.name=" + selected}
			}
			cfg, err := Load(LoadOptions{File: file, Sets: sets})
			if err != nil {
				t.Fatal(err)
			}
			sc, err := cfg.Serve()
			if err != nil {
				t.Fatal(err)
			}
			a, b := sc.Clusters[0].Policy, sc.Clusters[1].Policy
			if !a.Canary || a.NonMigratable != "skip" || !a.OverrideReserve || a.RetriesPerNode != 7 || a.MaxParallelMigrations != 3 {
				t.Errorf("cluster a policy = %+v, want its overrides on the top-level policy", a)
			}
			if b.Canary || b.NonMigratable != "fail" || b.OverrideReserve || b.RetriesPerNode != 3 || b.MaxParallelMigrations != 3 {
				t.Errorf("cluster b policy = canary %v non_migratable %s override_reserve %v retries %d max_parallel_migrations %d, want the top-level policy (false fail false 3 3)",
					b.Canary, b.NonMigratable, b.OverrideReserve, b.RetriesPerNode, b.MaxParallelMigrations)
			}
			if selected == "b" && (cfg.Policy.Canary || cfg.Policy.NonMigratable != "fail") {
				t.Errorf("--cluster-name b: CLI policy = %+v, want the top-level one", cfg.Policy)
			}
		})
	}
}

// TestLoad_PolicyBounds: absurd numbers are refused with the key and the range
// (issue 10, item 9).
func TestLoad_PolicyBounds(t *testing.T) {
	tests := []struct {
		name, policy, field, want string
	}{
		{"retries-1e9", "retries_per_node: 1000000000", "policy.retries_per_node", "1000000000 is out of range (give a whole number from 0 to 100)"},
		{"parallel-nodes-100000", "max_parallel_nodes: 100000", "policy.max_parallel_nodes", "100000 is out of range (give a whole number from 1 to 1024)"},
		{"parallel-migrations", "max_parallel_migrations: 100000", "policy.max_parallel_migrations", "from 1 to 1024"},
		{"per-node", "max_migrations_per_node: 5000", "policy.max_migrations_per_node", "from 1 to 256"},
		{"reserve", "reserve_nodes: 99999", "policy.reserve_nodes", "from 0 to 1024"},
		{"gate-retries", "health_gate: {retries: 1000000}", "policy.health_gate.retries", "from 0 to 100"},
		{"overcommit", "cpu_overcommit: 1e9", "policy.cpu_overcommit", "up to 64"},
		{"node-name-escape", "nodes: [\"n1\\e[2J\"]", "policy.nodes[0]", "control or formatting character U+001B"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, dir, "c.yaml", "nodes: [{name: n1, memory_mib: 1024, cpus: 2}]\n")
			file := writeFile(t, dir, "drover.yaml", "state: state.db\ncluster: {driver: sim, sim: {cluster_file: c.yaml}}\npolicy:\n  "+tt.policy+"\n")
			_, err := Load(LoadOptions{File: file})
			fe, ok := errors.AsType[*drivers.FieldError](err)
			if !ok || fe.Field != tt.field || !strings.Contains(fe.Error(), tt.want) {
				t.Fatalf("err = %v, want a FieldError on %s saying %q", err, tt.field, tt.want)
			}
		})
	}
	// In a cluster's overrides too, named under its key.
	dir := t.TempDir()
	writeFile(t, dir, "c.yaml", "nodes: [{name: n1, memory_mib: 1024, cpus: 2}]\n")
	file := writeFile(t, dir, "drover.yaml", "state: state.db\nclusters: [{name: a, driver: sim, sim: {cluster_file: c.yaml}}, {name: b, driver: sim, sim: {cluster_file: c.yaml}, policy: {max_parallel_nodes: 100000}}]\n")
	cfg, err := Load(LoadOptions{File: file})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cfg.Serve(); err == nil || !strings.Contains(err.Error(), "clusters[1].policy.max_parallel_nodes: 100000 is out of range") {
		t.Fatalf("Serve err = %v, want clusters[1].policy.max_parallel_nodes out of range", err)
	}
}

// TestLoad_ControlCharactersInNames: a cluster name with CR, ESC or U+202E is
// refused (issue 10, item 11).
func TestLoad_ControlCharactersInNames(t *testing.T) {
	for _, tt := range []struct{ name, value string }{
		{"cr", `"lab\rok"`}, {"esc", `"lab\e[31m"`}, {"bidi", `"lab\u202Eevil"`}, {"c1", `"lab\u009B"`}, {"zero-width", `"la\u200Bb"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, dir, "c.yaml", "nodes: [{name: n1, memory_mib: 1024, cpus: 2}]\n")
			for _, body := range []string{
				"cluster: {name: " + tt.value + ", driver: sim, sim: {cluster_file: c.yaml}}\n",
				"clusters: [{name: " + tt.value + ", driver: sim, sim: {cluster_file: c.yaml}}]\n",
			} {
				file := writeFile(t, dir, "drover.yaml", "state: state.db\n"+body)
				_, err := Load(LoadOptions{File: file})
				fe, ok := errors.AsType[*drivers.FieldError](err)
				if !ok || !strings.HasSuffix(fe.Field, "name") || !strings.Contains(fe.Problem, "character") {
					t.Errorf("%s: err = %v, want a FieldError on the name about the character", body, err)
				}
			}
		})
	}
}

// TestServe_LimitsValidated: the daemon's limits have defaults and bounds.
func TestServe_LimitsValidated(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "c.yaml", "nodes: [{name: n1, memory_mib: 1024, cpus: 2}]\n")
	file := writeFile(t, dir, "drover.yaml", "state: state.db\ncluster: {driver: sim, sim: {cluster_file: c.yaml}}\n")
	cfg, err := Load(LoadOptions{File: file, Extra: ExtraDefaults{"server.listen": DefaultListen}})
	if err != nil {
		t.Fatal(err)
	}
	sc, err := cfg.Serve()
	if err != nil {
		t.Fatal(err)
	}
	if sc.Server.ScanCache != DefaultScanCache || sc.Server.MaxEventClients != DefaultMaxEventClients {
		t.Errorf("limits = %s, %d; want the defaults", sc.Server.ScanCache, sc.Server.MaxEventClients)
	}
	cfg, err = Load(LoadOptions{File: file, Sets: []string{"server.max_event_clients=100000"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cfg.Serve(); err == nil || !strings.Contains(err.Error(), "server.max_event_clients: 100000 out of range (give 1 to 10000)") {
		t.Errorf("err = %v", err)
	}
}
