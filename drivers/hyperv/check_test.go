package hyperv_test

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/drivers"
	"github.com/droverhq/drover/drivers/hyperv"
	"github.com/droverhq/drover/drivers/hyperv/wsmantest"
)

var updateFixtures = flag.Bool("update-fixtures", false, "rewrite testdata/fixtures/model-hvcluster01.json from the model")

func checks(cs []drivers.ReadinessCheck, err error) map[string]drivers.ReadinessCheck {
	if err != nil {
		panic(err)
	}
	out := map[string]drivers.ReadinessCheck{}
	for _, c := range cs {
		out[c.Name] = c
	}
	return out
}

func TestReadiness(t *testing.T) {
	m := threeNodes(2, wsmantest.Timing{})
	c := startCluster(t, m)
	d := mustDriver(t, c, nil)
	got := checks(d.Readiness(t.Context()))
	for _, name := range []string{"hyperv.reachable", "hyperv.quorum", "hyperv.nodes_up", "hyperv.live_migration", "hyperv.max_parallel_migrations", "hyperv.csvs"} {
		if got[name].Status != drivers.CheckPass {
			t.Errorf("%s: %+v; want pass", name, got[name])
		}
	}
	if nm := got["hyperv.not_migratable"]; nm.Status != drivers.CheckWarn || !strings.Contains(nm.Message, "build01") {
		t.Errorf("not_migratable: %+v; want a warning naming build01", nm)
	}
	m.SetCSVOffline("Cluster Disk 2", true)
	if err := d.PauseNode(t.Context(), "HV2", ""); err != nil {
		t.Fatal(err)
	}
	c.Endpoints["HV3"].Stop()
	got = checks(d.Readiness(t.Context()))
	if got["hyperv.csvs"].Status != drivers.CheckFail || !strings.Contains(got["hyperv.csvs"].Message, "Cluster Disk 2") {
		t.Errorf("csvs with one offline: %+v", got["hyperv.csvs"])
	}
	if got["hyperv.reachable"].Status != drivers.CheckFail || !strings.Contains(got["hyperv.reachable"].Message, c.Endpoints["HV3"].Addr()) {
		t.Errorf("reachable with HV3's listener gone: %+v", got["hyperv.reachable"])
	}
	if got["hyperv.nodes_up"].Status != drivers.CheckWarn || !strings.Contains(got["hyperv.nodes_up"].Message, "HV2") {
		t.Errorf("nodes_up with HV2 paused: %+v", got["hyperv.nodes_up"])
	}
}

// TestProbeReplay records every read-only probe against the model and replays the
// recording into a driver that reaches nothing: its inventory is the live one.
func TestProbeReplay(t *testing.T) {
	m := threeNodes(2, wsmantest.Timing{})
	c := startCluster(t, m)
	d := mustDriver(t, c, nil)
	probes, err := d.Probe(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	ops := map[string]int{}
	for _, p := range probes {
		ops[p.Op]++
		if p.ExitCode != 0 || p.Error != "" {
			t.Errorf("probe %s on %s: exit %d, %s", p.Op, p.Node, p.ExitCode, p.Error)
		}
	}
	if ops["cluster"] != 1 || ops["host"] != 3 || ops["ready"] != 3 || ops["wuscan"] != 3 || ops["migstatus"] != 5 {
		t.Errorf("probes by script: %v", ops)
	}
	for _, n := range m.Nodes() {
		if n.State != "Up" || n.Reboots != 0 || len(n.Pending) != 1 {
			t.Errorf("node %s changed by the probes: %+v", n.Name, n)
		}
	}
	if st := m.Stats(); st.MigrationsStarted != 0 {
		t.Errorf("the probes started %d migrations", st.MigrationsStarted)
	}
	data, err := json.Marshal(drivers.ProbeFile{Driver: "hyperv", RecordedAt: time.Now(), Probes: probes})
	if err != nil {
		t.Fatal(err)
	}
	live, err := d.Inventory(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	replayed := replayInventory(t, data, c.Addrs())
	if !reflect.DeepEqual(live, replayed) {
		t.Errorf("replayed inventory differs from the live one:\nlive     %+v\nreplayed %+v", live, replayed)
	}
	if *updateFixtures {
		if err := os.WriteFile(filepath.Join("testdata", "fixtures", "model-hvcluster01.json"), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func replayInventory(t *testing.T, fixtures []byte, nodes []string) cluster.Inventory {
	t.Helper()
	r, err := hyperv.NewReplayRunner(fixtures)
	if err != nil {
		t.Fatal(err)
	}
	cfg := hyperv.NewConfig()
	cfg.Nodes, cfg.WinRM.Auth, cfg.WinRM.PasswordEnv, cfg.WinRM.Username = nodes, "basic", pwEnv, "x"
	d, err := hyperv.NewWithRunner(*cfg, r, nil)
	if err != nil {
		t.Fatal(err)
	}
	inv, err := d.Inventory(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

// TestRecordedFixtures replays a recording kept in testdata (from drover driver check
// against the model; recordings of real clusters go next to it).
func TestRecordedFixtures(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("testdata", "fixtures", "*.json"))
	if len(files) == 0 {
		t.Fatal("no fixtures in testdata/fixtures")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var pf drivers.ProbeFile
			if err := json.Unmarshal(data, &pf); err != nil {
				t.Fatal(err)
			}
			seen := map[string]bool{}
			var nodes []string
			for _, p := range pf.Probes {
				if p.Op == "host" && !seen[p.Node] {
					seen[p.Node] = true
					nodes = append(nodes, p.Node)
				}
			}
			inv := replayInventory(t, data, nodes)
			if len(inv.Nodes) == 0 || len(inv.VMs) == 0 {
				t.Fatalf("replayed inventory is empty: %+v", inv)
			}
			for _, n := range inv.Nodes {
				if n.BootID == "" || n.MemoryMiB == 0 {
					t.Errorf("node %+v: no boot id or memory from the recording", n)
				}
			}
		})
	}
}
