package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/droverhq/drover/drivers/proxmox/pvesim"
)

// TestCLI_ProxmoxTokenStaysOut: the API token's secret appears nowhere drover writes:
// not in the output or debug logs of analyze, apply and the runs commands, not in the
// state file, not in the error of a refused token.
func TestCLI_ProxmoxTokenStaysOut(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a rolling run against pvesim")
	}
	bin := droverBinary(t)
	dir := t.TempDir()
	l := startPVE(t, dir, pvesim.DefaultTiming())
	writeFile(t, filepath.Join(dir, "drover.yaml"), l.config(nil))
	env := []string{"DROVER_PVE_TOKEN=" + l.secret}
	wrong := "pve-wrong-" + randomHex(t, 12)
	var all strings.Builder
	for _, run := range []struct {
		env  []string
		args []string
		code int
	}{
		{env, []string{"--config", "drover.yaml", "--log-level", "debug", "analyze"}, 0},
		{env, []string{"--config", "drover.yaml", "--log-level", "debug", "inventory", "--json"}, 0},
		{env, []string{"--config", "drover.yaml", "--log-level", "debug", "apply", "--yes", "--json"}, 0},
		{env, []string{"--config", "drover.yaml", "runs", "list", "--json"}, 0},
		{[]string{"DROVER_PVE_TOKEN=" + wrong}, []string{"--config", "drover.yaml", "--log-level", "debug", "inventory"}, 1},
	} {
		code, stdout, stderr := runDroverOut(t, bin, dir, run.env, run.args...)
		if code != run.code {
			t.Fatalf("drover %v: exit %d, want %d\n%s", run.args, code, run.code, stderr)
		}
		all.WriteString(stdout + stderr)
	}
	if !strings.Contains(all.String(), "succeeded") {
		t.Fatalf("the run did not succeed:\n%s", all.String())
	}
	state, err := os.ReadFile(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{l.secret, wrong} {
		if strings.Contains(all.String(), secret) {
			t.Errorf("a token secret appears in drover's output")
		}
		if strings.Contains(string(state), secret) {
			t.Errorf("a token secret appears in the state file")
		}
	}
	if v := l.c.Model.Violations(); len(v) > 0 {
		t.Errorf("schema violations: %v", v)
	}
}
