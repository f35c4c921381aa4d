package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/drivers/hyperv/wsmantest"
)

// TestCLI_SecretsStayOutHyperV patches a model Hyper-V cluster over WinRM with the
// password in cluster.hyperv.winrm.password_env, at log level debug, and greps every
// output and every file drover wrote for it; a wrong password's error must not carry
// either password.
func TestCLI_SecretsStayOutHyperV(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a rolling run over WinRM")
	}
	bin := droverBinary(t)
	password := "pw-" + randomHex(t, 12)
	wrong := "pw-wrong-" + randomHex(t, 8)
	upd := []wsmantest.Update{{Title: "CU (KB5070001)", KB: "5070001", ID: "u"}}
	m := wsmantest.NewModel("HVCLUSTER01", 2, wsmantest.Timing{Migration: 200 * time.Millisecond, Down: 300 * time.Millisecond, ServiceStart: 100 * time.Millisecond, Install: 100 * time.Millisecond},
		[]wsmantest.NodeSpec{{Name: "HV1", MemoryMiB: 16384, CPUs: 8, Updates: upd}, {Name: "HV2", MemoryMiB: 16384, CPUs: 8, Updates: upd}},
		[]wsmantest.VMSpec{{Name: "vm1", Node: "HV1", MemoryMiB: 1024, CPUs: 1}})
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
	cfg := fmt.Sprintf(`state: state.db
cluster:
  name: hv
  driver: hyperv
  hyperv:
    nodes: [%s]
    winrm: {https: true, auth: basic, username: 'HV\drover', password_env: HVPW, ca_file: %s, operation_timeout: 2s}
    poll_interval: 50ms
    reboot_delay: 1s
  updater:
    kind: windows_update
    windows_update: {poll_interval: 100ms}
policy:
  poll_interval: 100ms
  reboot_timeout: 1m
`, strings.Join(c.Addrs(), ", "), ca)
	if err := os.WriteFile(filepath.Join(dir, "drover.yaml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var outputs []string
	code, stdout, stderr := runDroverOut(t, bin, dir, []string{"HVPW=" + password}, "--config", "drover.yaml", "--log-level", "debug", "apply", "--yes", "--json")
	if code != 0 {
		t.Fatalf("apply: exit %d\n%s", code, stderr)
	}
	outputs = append(outputs, stdout, stderr)
	var rep struct {
		ID    string `json:"id"`
		State string `json:"state"`
	}
	if err := json.Unmarshal(lastLine(stdout), &rep); err != nil || rep.State != "succeeded" {
		t.Fatalf("apply report: %v %s", err, stdout)
	}
	_, stdout, stderr = runDroverOut(t, bin, dir, []string{"HVPW=" + password}, "--config", "drover.yaml", "--log-level", "debug", "runs", "report", rep.ID)
	outputs = append(outputs, stdout, stderr)
	code, stdout, stderr = runDroverOut(t, bin, dir, []string{"HVPW=" + wrong}, "--config", "drover.yaml", "--log-level", "debug", "inventory")
	if code != 1 || !strings.Contains(stderr, "cluster.hyperv.winrm.username") {
		t.Errorf("inventory with a wrong password: exit %d, %s", code, stderr)
	}
	outputs = append(outputs, stdout, stderr)
	for i, o := range outputs {
		for _, secret := range []string{password, wrong} {
			if strings.Contains(o, secret) {
				t.Errorf("output %d carries a password:\n%s", i, o)
			}
		}
	}
	files := 0
	_ = filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return nil
		}
		files++
		b, _ := os.ReadFile(p)
		if bytes.Contains(b, []byte(password)) || bytes.Contains(b, []byte(wrong)) {
			t.Errorf("%s carries a password", p)
		}
		return nil
	})
	if files < 2 {
		t.Errorf("only %d files under the run's folder; the state file is missing", files)
	}
}
