package sim

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/drivers"
	"github.com/droverhq/drover/drivers/sim/internal/gencluster"
)

const clustersDir = "../../testdata/clusters"

func TestParseCluster_Defaults(t *testing.T) {
	c := mustParse(t, `
nodes: [{name: n1, memory_mib: 8192, cpus: 4, updates: [{name: kernel}]}]
vms: [{name: a, node: n1, memory_mib: 1024}]
`)
	want := ModelParams{SetupSeconds: 2, MaxDowntimeMs: 300, ProgressTimeoutSeconds: 150, MaxRounds: 30}
	if c.Model != want {
		t.Errorf("model = %+v, want %+v", c.Model, want)
	}
	n := c.Nodes[0]
	if n.NICMbps != 10000 || n.StreamMbps != 3000 || n.RebootSeconds != 120 || !n.Updates[0].Reboot {
		t.Errorf("node defaults = %+v", n)
	}
	v := c.VMs[0]
	if !v.Migratable || v.Power != cluster.PowerRunning || v.VCPUs != 1 {
		t.Errorf("vm defaults = %+v", v)
	}
	// Explicit zeros are kept where zero is allowed.
	c = mustParse(t, "model: {setup_seconds: 0}\nnodes: [{name: n1, memory_mib: 8192, cpus: 4, reboot_seconds: 0}]\nvms: []\n")
	if c.Model.SetupSeconds != 0 || c.Nodes[0].RebootSeconds != 0 {
		t.Errorf("explicit zeros replaced by defaults: %+v %+v", c.Model, c.Nodes[0])
	}
}

func TestParseCluster_Errors(t *testing.T) {
	const node = "nodes: [{name: n1, memory_mib: 8192, cpus: 4, networks: [{name: prod, vlan: 10}]}]\n"
	tests := []struct {
		name string
		yaml string
		want []string // each must appear in the error
	}{
		{"empty-file", "", []string{"cluster file: is empty"}},
		{"no-nodes", "vms: []\n", []string{"nodes: is empty"}},
		{"unknown-top-level-key", node + "vms: []\nfautls: []\n", []string{"fautls: unknown key in the top level at line 3", "known keys: faults, model, nodes, seed, vms"}},
		{"unknown-node-key", "nodes:\n  - {name: n1, memory_mib: 8192, cpus: 4, memory_gb: 8}\n", []string{"memory_gb: unknown key in a node at line 2", "memory_mib"}},
		{"unknown-vm-key", node + "vms:\n  - {name: a, node: n1, memory_mib: 1, dirty_rate: 3}\n", []string{"dirty_rate: unknown key in a vm at line 3", "dirty_mib_s"}},
		{"duplicate-key", "nodes: []\nnodes: []\n", []string{`mapping key "nodes" already defined`}},
		{"wrong-type", "nodes: [{name: n1, memory_mib: lots, cpus: 4}]\n", []string{"line 1", "lots"}},
		{"two-documents", node + "vms: []\n---\nseed: 1\n", []string{"more than one document"}},
		{"node-memory", "nodes: [{name: n1, memory_mib: 8192, cpus: 4}, {name: n2, memory_mib: 8192, cpus: 4}, {name: n3, memory_mib: 0, cpus: 4}]\n",
			[]string{"nodes[2].memory_mib: must be between 1 and 2^40, got 0 (give the node's memory in MiB"}},
		{"node-duplicate", "nodes: [{name: n1, memory_mib: 1, cpus: 1}, {name: n1, memory_mib: 1, cpus: 1}]\n", []string{`nodes[1].name: duplicate node "n1"`}},
		{"node-bad-name", "nodes: [{name: n/1, memory_mib: 1, cpus: 1}]\n", []string{`nodes[0].name: invalid name "n/1"`}},
		{"node-nan-nic", "nodes: [{name: n1, memory_mib: 1, cpus: 1, nic_mbps: .nan}]\n", []string{"nodes[0].nic_mbps: must be > 0 and <= 1e7"}},
		{"node-stream", "nodes: [{name: n1, memory_mib: 1, cpus: 1, stream_mbps: -5}]\n", []string{"nodes[0].stream_mbps"}},
		{"node-vlan", "nodes: [{name: n1, memory_mib: 1, cpus: 1, networks: [{name: prod, vlan: 5000}]}]\n", []string{"nodes[0].networks[0].vlan: out of range: 5000"}},
		{"node-dup-update", "nodes: [{name: n1, memory_mib: 1, cpus: 1, updates: [{name: k}, {name: k}]}]\n", []string{`nodes[0].updates[1].name: duplicate update "k"`}},
		{"model-downtime", node + "model: {max_downtime_ms: 0}\nvms: []\n", []string{"model.max_downtime_ms: must be > 0"}},
		{"model-rounds", node + "model: {max_rounds: 0}\nvms: []\n", []string{"model.max_rounds"}},
		{"vm-unknown-node", node + "vms: [{name: a, node: n9, memory_mib: 1}]\n", []string{`vms[0].node: unknown node "n9"`}},
		{"vm-duplicate", node + "vms: [{name: a, node: n1, memory_mib: 1}, {name: a, node: n1, memory_mib: 1}]\n", []string{`vms[1].name: duplicate vm "a"`}},
		{"vm-memory", node + "vms: [{name: a, node: n1, memory_mib: -1}]\n", []string{"vms[0].memory_mib: must be between 1 and 2^40"}},
		{"vm-too-big-for-node", node + "vms: [{name: a, node: n1, memory_mib: 6000}, {name: b, node: n1, memory_mib: 6000}]\n", []string{"vms[1].node: running vms on node n1 need more than its 8192 MiB"}},
		{"vm-vcpus", node + "vms: [{name: a, node: n1, memory_mib: 1, vcpus: 8}]\n", []string{"vms[0].vcpus: 8 vCPUs on node n1 with 4 CPUs"}},
		{"vm-power", node + "vms: [{name: a, node: n1, memory_mib: 1, power: on}]\n", []string{`vms[0].power: unknown power state "on"`}},
		{"vm-network", node + "vms: [{name: a, node: n1, memory_mib: 1, networks: [{name: prod, vlan: 11}]}]\n", []string{"vms[0].networks: network prod/11 is not offered by node n1"}},
		{"vm-hard-without-group", node + "vms: [{name: a, node: n1, memory_mib: 1, anti_affinity_hard: true}]\n", []string{"vms[0].anti_affinity_hard: set without anti_affinity"}},
		{"vm-preferred", node + "vms: [{name: a, node: n1, memory_mib: 1, preferred_node: n7}]\n", []string{`vms[0].preferred_node: unknown node "n7"`}},
		{"vm-reason-on-migratable", node + "vms: [{name: a, node: n1, memory_mib: 1, not_migratable_reason: gpu}]\n", []string{"vms[0].not_migratable_reason"}},
		{"fault-kind", node + "vms: []\nfaults: [{kind: meteor}]\n", []string{`faults[0].kind: unknown fault kind "meteor"`, "api_errors"}},
		{"fault-field-not-used", node + "vms: []\nfaults: [{kind: node_crash, node: n1, vm: a}]\n", []string{"faults[0].vm: not used by kind node_crash"}},
		{"fault-needs-one-mode", node + "vms: []\nfaults: [{kind: migration_fail}]\n", []string{"faults[0].times: 0 of times/always/probability set", "give exactly one of"}},
		{"fault-unknown-node", node + "vms: []\nfaults: [{kind: node_no_return, node: n5}]\n", []string{`faults[0].node: unknown node "n5"`}},
		{"fault-probability", node + "vms: []\nfaults: [{kind: api_errors, probability: 1.5}]\n", []string{"faults[0].probability: out of range"}},
		{"fault-status", node + "vms: []\nfaults: [{kind: api_errors, burst: 1, status: 404}]\n", []string{"faults[0].status: must be 500..599"}},
		{"fault-hang-delay", node + "vms: []\nfaults: [{kind: api_hang, burst: 1}]\n", []string{"faults[0].delay_ms"}},
		{"fault-unknown-key", node + "vms: []\nfaults: [{kind: api_hang, burst: 1, delay: 5}]\n", []string{"delay: unknown key in a fault at line 3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseCluster([]byte(tt.yaml))
			if err == nil {
				t.Fatalf("ParseCluster succeeded, want error containing %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "sim.file") {
				t.Errorf("error %q leaks Go type names", err)
			}
			if strings.Contains(tt.name, "node-") || strings.Contains(tt.name, "vm-") || strings.Contains(tt.name, "model-") {
				if _, ok := errors.AsType[*drivers.FieldError](err); !ok {
					t.Errorf("error %v holds no *drivers.FieldError", err)
				}
			}
		})
	}
}

func TestClusterFiles_Valid(t *testing.T) {
	for _, name := range []string{"demo.yaml", "medium.yaml"} {
		t.Run(name, func(t *testing.T) {
			c, err := LoadCluster(filepath.Join(clustersDir, name))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := NewModel(c, time.Time{}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestMediumCluster_UpToDate(t *testing.T) {
	got, err := os.ReadFile(filepath.Join(clustersDir, "medium.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, gencluster.Medium()) {
		t.Errorf("testdata/clusters/medium.yaml differs from the generator; run: go run ./drivers/sim/internal/gencluster/genmedium -out testdata/clusters/medium.yaml")
	}
}

func TestMediumCluster_Shape(t *testing.T) {
	c, err := LoadCluster(filepath.Join(clustersDir, "medium.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Nodes) != 16 || len(c.VMs) != 200 {
		t.Fatalf("%d nodes, %d vms; want 16, 200", len(c.Nodes), len(c.VMs))
	}
	sizes := map[int64]bool{}
	for _, v := range c.VMs {
		if v.MemoryMiB < 1024 || v.MemoryMiB > 32768 {
			t.Errorf("vm %s has %d MiB, want 1-32 GiB", v.Name, v.MemoryMiB)
		}
		sizes[v.MemoryMiB] = true
	}
	if len(sizes) < 5 {
		t.Errorf("only %d distinct vm sizes", len(sizes))
	}
	// Every node can be drained: a placement in the node's cpu group exists for
	// all its running migratable VMs (largest first, most free memory first,
	// honouring hard anti-affinity), and the drain completes in the model.
	for _, src := range c.Nodes {
		m := mustModel(t, c)
		if _, err := m.PauseNode(src.Name, ""); err != nil {
			t.Fatal(err)
		}
		inv := m.Inventory()
		var moving []cluster.VM
		for _, v := range inv.VMsOn(src.Name) {
			if v.Running() && v.Migratable {
				moving = append(moving, v)
			}
		}
		sort.SliceStable(moving, func(i, j int) bool { return moving[i].MemoryMiB > moving[j].MemoryMiB })
		var ids []string
		for _, v := range moving {
			to := pickTarget(m, src, v)
			if to == "" {
				t.Fatalf("drain %s: no target for %s (%d MiB)", src.Name, v.Name, v.MemoryMiB)
			}
			st, _, err := m.StartMigration(v.Name, src.Name, to)
			if err != nil {
				t.Fatalf("drain %s: %v", src.Name, err)
			}
			ids = append(ids, st.ID)
			if len(ids)%2 == 0 { // two at a time
				runUntilDone(t, m, ids[len(ids)-2])
				runUntilDone(t, m, ids[len(ids)-1])
			}
		}
		for _, id := range ids {
			if st := runUntilDone(t, m, id); st.Phase != PhaseCompleted {
				t.Errorf("drain %s: %s %s: %s", src.Name, st.VM, st.Phase, st.Error)
			}
		}
		if s := m.Stats(); len(s.Violations) > 0 {
			t.Errorf("drain %s: violations %v", src.Name, s.Violations)
		}
	}
}

func pickTarget(m *Model, src NodeSpec, v cluster.VM) string {
	inv := m.Inventory()
	best, bestFree := "", int64(0)
	for _, n := range inv.Nodes {
		if n.Name == src.Name || n.State != cluster.NodeUp || n.CPUGroup != src.CPUGroup {
			continue
		}
		conflict := slices.ContainsFunc(inv.VMs, func(o cluster.VM) bool {
			onTarget := o.Node == n.Name || o.MigratingTo == n.Name
			return v.AntiAffinityHard && o.AntiAffinity == v.AntiAffinity && onTarget
		})
		free, _ := m.FreeMiB(n.Name)
		if !conflict && free >= v.MemoryMiB && free > bestFree {
			best, bestFree = n.Name, free
		}
	}
	return best
}

func FuzzParseCluster(f *testing.F) {
	// Seeds stay small: a multi-KB seed (like demo.yaml, which
	// TestClusterFiles_Valid covers) stalls the coverage-guided engine for
	// minutes before it starts mutating.
	f.Add([]byte(`seed: 42
model: {setup_seconds: 2, max_downtime_ms: 300, progress_timeout_seconds: 150, max_rounds: 30}
nodes:
  - {name: n1, memory_mib: 8192, cpus: 4, nic_mbps: 10000, stream_mbps: 3000, reboot_seconds: 60, cpu_group: a,
     networks: [{name: prod, vlan: 10}], labels: {rack: r1}, fault_domain: r1, updates: [{name: kernel, version: "6.1"}, {name: tz, reboot: false}]}
  - {name: n2, memory_mib: 8192, cpus: 4, paused: true, networks: [{name: prod, vlan: 10}]}
vms:
  - {name: a, node: n1, memory_mib: 2048, vcpus: 2, dirty_mib_s: 20, anti_affinity: g, anti_affinity_hard: true, networks: [{name: prod, vlan: 10}], preferred_node: n2}
  - {name: b, node: n2, memory_mib: 1024, migratable: false, not_migratable_reason: gpu, power: stopped}
faults:
  - {kind: migration_fail, vm: a, times: 1}
  - {kind: node_no_return, node: n1}
  - {kind: install_fail, node: n1, update: kernel, always: true}
  - {kind: api_errors, probability: 0.1, status: 502, burst: 2, after_requests: 3, path: /v1/, after_apply: true}
  - {kind: api_hang, burst: 1, delay_ms: 100}
  - {kind: node_crash, node: n2, at_seconds: 30}
`))
	f.Add([]byte("nodes: [{name: n1, memory_mib: 1, cpus: 1}]\nvms: []\n"))
	f.Add([]byte("nodes: [{name: n1, memory_mib: 4096, cpus: 1}]\nvms: [{name: a, node: n1, memory_mib: 4096, power: stopped}]\nfaults: [{kind: api_errors, burst: 2}]\n"))
	f.Add([]byte("seed: -1\nnodes: {}\n"))
	f.Add([]byte("nodes: [{name: n1, memory_mib: 9223372036854775807, cpus: 1}]\nvms: [{name: a, node: n1, memory_mib: 9223372036854775807}, {name: b, node: n1, memory_mib: 9223372036854775807}]\n"))
	f.Add([]byte("&a [*a]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseCluster(data)
		if err != nil {
			return
		}
		m, err := NewModel(c, time.Time{})
		if err != nil {
			t.Fatalf("parsed cluster rejected by NewModel: %v", err)
		}
		inv := m.Inventory()
		if len(inv.Nodes) != len(c.Nodes) || len(inv.VMs) != len(c.VMs) {
			t.Fatalf("inventory has %d/%d, cluster %d/%d", len(inv.Nodes), len(inv.VMs), len(c.Nodes), len(c.VMs))
		}
		for _, n := range inv.Nodes {
			if free, _ := m.FreeMiB(n.Name); free < 0 {
				t.Fatalf("node %s over-committed by %d MiB after a successful parse", n.Name, -free)
			}
		}
		m.AdvanceTo(m.Now().Add(time.Hour))
	})
}

// TestDemoCluster_RollingRunIsShort checks demo.yaml's promise: a rolling run
// (drain 2 at a time, install, reboot, resume; failback moves every drained VM
// home again) takes a few model minutes, i.e. well under a wall minute at 30x.
func TestDemoCluster_RollingRunIsShort(t *testing.T) {
	c, err := LoadCluster(filepath.Join(clustersDir, "demo.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	m := mustModel(t, c)
	t0 := m.Now()
	for _, src := range c.Nodes {
		if _, err := m.PauseNode(src.Name, ""); err != nil {
			t.Fatal(err)
		}
		var moved []MigrationStatus
		var ids []string
		for _, v := range m.Inventory().VMsOn(src.Name) {
			if !v.Running() {
				continue
			}
			st, _, err := m.StartMigration(v.Name, src.Name, pickTarget(m, src, v))
			if err != nil {
				t.Fatalf("drain %s: %v", src.Name, err)
			}
			if ids = append(ids, st.ID); len(ids) == 2 {
				moved = append(moved, runUntilDone(t, m, ids[0]), runUntilDone(t, m, ids[1]))
				ids = nil
			}
		}
		for _, id := range ids {
			moved = append(moved, runUntilDone(t, m, id))
		}
		if _, err := m.InstallUpdates(src.Name); err != nil {
			t.Fatal(err)
		}
		m.RebootNode(src.Name)
		for n, _ := m.Node(src.Name); !n.Ready(); n, _ = m.Node(src.Name) {
			if _, ok := m.Step(); !ok {
				t.Fatalf("%s never came back", src.Name)
			}
		}
		m.ResumeNode(src.Name)
		for _, mv := range moved {
			if mv.Phase != PhaseCompleted {
				t.Fatalf("%s: %s", mv.VM, mv.Error)
			}
			st, _, err := m.StartMigration(mv.VM, "", src.Name)
			if err != nil {
				t.Fatalf("fail back %s: %v", mv.VM, err)
			}
			runUntilDone(t, m, st.ID)
		}
	}
	total := m.Now().Sub(t0)
	t.Logf("demo rolling run: %v of model time (%v of wall time at 30x)", total, total/30)
	if s := m.Stats(); s.VMsKilledByReboot != 0 || len(s.Violations) != 0 {
		t.Errorf("killed %d, violations %v", s.VMsKilledByReboot, s.Violations)
	}
	if total > 10*time.Minute {
		t.Errorf("rolling run took %v of model time, want under 10m (30 s of wall time at 30x)", total)
	}
}
