package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/droverhq/drover/drivers"
	"github.com/droverhq/drover/drivers/hyperv/wsmantest"
)

// TestCLI_DriverCheckHyperV runs `drover driver check` against a model cluster: it
// records every read-only probe into a fixtures file, prints the readiness checks,
// and changes nothing on the cluster.
func TestCLI_DriverCheckHyperV(t *testing.T) {
	bin := droverBinary(t)
	password := "pw-" + randomHex(t, 10)
	m := wsmantest.NewModel("HVCLUSTER01", 1, wsmantest.Timing{},
		[]wsmantest.NodeSpec{{Name: "HV1", MemoryMiB: 4096, CPUs: 4}, {Name: "HV2", MemoryMiB: 4096, CPUs: 4}},
		[]wsmantest.VMSpec{{Name: "vm1", Node: "HV1", MemoryMiB: 512, CPUs: 1}, {Name: "db1", Node: "HV2", MemoryMiB: 512, CPUs: 1, LocalDisks: []string{`E:\db1.vhdx`}}})
	c, err := wsmantest.StartCluster(m, `HV\drover`, password)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	dir := t.TempDir()
	ca, err := c.CA.WriteCAFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf("cluster:\n  name: hv\n  driver: hyperv\n  hyperv:\n    nodes: [%s]\n    winrm: {https: true, auth: basic, username: 'HV\\drover', password_env: HVPW, ca_file: %s}\n  updater: {kind: windows_update}\n",
		strings.Join(c.Addrs(), ", "), ca)
	if err := os.WriteFile(filepath.Join(dir, "drover.yaml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runDroverOut(t, bin, dir, []string{"HVPW=" + password}, "--config", "drover.yaml", "driver", "check", "--out", "fixtures.json")
	if code != 0 {
		t.Fatalf("driver check: exit %d\n%s", code, stderr)
	}
	for _, want := range []string{"probes recorded, 0 failed", "pass  hyperv.reachable", "warn  hyperv.not_migratable", `E:\db1.vhdx`} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	data, err := os.ReadFile(filepath.Join(dir, "fixtures.json"))
	if err != nil {
		t.Fatal(err)
	}
	var pf drivers.ProbeFile
	if err := json.Unmarshal(data, &pf); err != nil || pf.Driver != "hyperv" || len(pf.Probes) < 9 {
		t.Fatalf("fixtures: %v, driver %q, %d probes", err, pf.Driver, len(pf.Probes))
	}
	if strings.Contains(string(data)+stdout+stderr, password) {
		t.Error("the password is in the fixtures or the output")
	}
	for _, n := range m.Nodes() {
		if n.State != "Up" || n.Reboots != 0 || n.Description != "" {
			t.Errorf("driver check changed node %s: %+v", n.Name, n)
		}
	}
	if st := m.Stats(); st.MigrationsStarted != 0 || len(st.Rejected) != 0 {
		t.Errorf("driver check: %d migrations started, rejected %q", st.MigrationsStarted, st.Rejected)
	}
	code, _, stderr = runDroverOut(t, bin, dir, nil, "--config", filepath.Join(moduleRoot(t), "testdata", "demo.yaml"), "driver", "check")
	if code != 2 || !strings.Contains(stderr, "driver sim records no probes") {
		t.Errorf("driver check on the sim driver: exit %d, %s", code, stderr)
	}
}
