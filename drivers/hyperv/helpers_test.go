package hyperv_test

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/droverhq/drover/drivers"
	"github.com/droverhq/drover/drivers/hyperv"
	"github.com/droverhq/drover/drivers/hyperv/wsmantest"
)

const (
	testUser = "HV\\drover"
	testPW   = "S3cret-pa55word!"
	pwEnv    = "DROVER_TEST_HYPERV_PASSWORD"
)

// threeNodes is the model most tests use: 3 nodes, 5 VM roles, one with local disks.
func threeNodes(maxParallel int, t wsmantest.Timing) *wsmantest.Model {
	upd := []wsmantest.Update{{Title: "2026-11 Cumulative Update for Microsoft server operating system version 24H2 for x64-based Systems (KB5070001)", KB: "5070001", ID: "a1b2"}}
	return wsmantest.NewModel("HVCLUSTER01", maxParallel, t,
		[]wsmantest.NodeSpec{{Name: "HV1", MemoryMiB: 65536, CPUs: 32, Updates: upd}, {Name: "HV2", MemoryMiB: 65536, CPUs: 32, Updates: upd}, {Name: "HV3", MemoryMiB: 65536, CPUs: 32, Updates: upd}},
		[]wsmantest.VMSpec{
			{Name: "sql01", Node: "HV1", MemoryMiB: 8192, CPUs: 4, Preferred: []string{"HV1"}, AntiAffinity: []string{"SQL"}},
			{Name: "sql02", Node: "HV2", MemoryMiB: 8192, CPUs: 4, Preferred: []string{"HV2"}, AntiAffinity: []string{"SQL"}},
			{Name: "web01", Node: "HV1", MemoryMiB: 2048, Dynamic: true, CPUs: 2},
			{Name: "web02", Node: "HV1", MemoryMiB: 2048, Dynamic: true, CPUs: 2},
			{Name: "build01", Node: "HV3", MemoryMiB: 4096, CPUs: 8, LocalDisks: []string{`D:\VMs\build01.vhdx`}},
		})
}

// startCluster serves m over WinRM on loopback; the cluster stops when the test ends.
func startCluster(t *testing.T, m *wsmantest.Model) *wsmantest.Cluster {
	t.Helper()
	c, err := wsmantest.StartCluster(m, testUser, testPW)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// winrmSection is the config section for c, with overrides applied.
func winrmSection(t *testing.T, c *wsmantest.Cluster, over func(map[string]any, map[string]any)) map[string]any {
	t.Helper()
	ca, err := c.CA.WriteCAFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	nodes := []any{}
	for _, a := range c.Addrs() {
		nodes = append(nodes, a)
	}
	w := map[string]any{"https": true, "auth": "basic", "username": testUser, "password_env": pwEnv, "ca_file": ca, "operation_timeout": "2s"}
	raw := map[string]any{"cluster": "HVCLUSTER01", "nodes": nodes, "winrm": w, "poll_interval": "50ms", "reboot_delay": "1s", "command_timeout": "20s"}
	if over != nil {
		over(raw, w)
	}
	return raw
}

func openDriver(t *testing.T, raw map[string]any) (*hyperv.Driver, error) {
	t.Helper()
	t.Setenv(pwEnv, testPW)
	cfg := hyperv.NewConfig()
	if err := drivers.Decode(raw, cfg); err != nil {
		t.Fatalf("decode: %v", err)
	}
	d, err := cfg.Open(context.Background(), drivers.Env{Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { _ = d.Close() })
	return d.(*hyperv.Driver), nil
}

func mustDriver(t *testing.T, c *wsmantest.Cluster, over func(map[string]any, map[string]any)) *hyperv.Driver {
	t.Helper()
	d, err := openDriver(t, winrmSection(t, c, over))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func noRejected(t *testing.T, m *wsmantest.Model) {
	t.Helper()
	if r := m.Stats().Rejected; len(r) > 0 {
		t.Errorf("the server refused commands that are not shipped scripts: %q", r)
	}
}

// openWithCurrentEnv opens a driver with whatever password the environment holds.
func openWithCurrentEnv(t *testing.T, raw map[string]any) drivers.Driver {
	t.Helper()
	cfg := hyperv.NewConfig()
	if err := drivers.Decode(raw, cfg); err != nil {
		t.Fatal(err)
	}
	d, err := cfg.Open(t.Context(), drivers.Env{})
	if err != nil {
		t.Fatal(err)
	}
	return d
}
