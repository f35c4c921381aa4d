package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/droverhq/drover/drivers/hyperv/wsmantest"
)

// hypervModel is a one-node model cluster served over WinRM on loopback.
func hypervModel(t *testing.T, password string) (*wsmantest.Cluster, string) {
	t.Helper()
	m := wsmantest.NewModel("HVCLUSTER01", 1, wsmantest.Timing{}, []wsmantest.NodeSpec{{Name: "HV1", MemoryMiB: 4096, CPUs: 4}}, nil)
	c, err := wsmantest.StartCluster(m, `HV\drover`, password)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c, c.Addrs()[0]
}

// TestCLI_BadInputHyperV: wrong hyperv configs exit 2 (config) or 1 (runtime) with a
// message naming the key and the fix, and never the password.
func TestCLI_BadInputHyperV(t *testing.T) {
	bin := droverBinary(t)
	password := "pw-" + randomHex(t, 10)
	c, addr := hypervModel(t, password)
	caDir := t.TempDir()
	ca, err := c.CA.WriteCAFile(caDir)
	if err != nil {
		t.Fatal(err)
	}
	section := func(nodes, winrm, extra string) string {
		if !strings.Contains(extra, "updater:") {
			extra += "  updater: {kind: windows_update}\n"
		}
		return fmt.Sprintf("state: state.db\ncluster:\n  name: hv\n  driver: hyperv\n  hyperv:\n    nodes: [%s]\n    winrm: {%s}\n    command_timeout: 10s\n%s", nodes, winrm, extra)
	}
	good := fmt.Sprintf("https: true, auth: basic, username: 'HV\\drover', password_env: HVPW, ca_file: %s, operation_timeout: 2s", ca)
	env := []string{"HVPW=" + password}
	tests := []struct {
		name, config string
		env          []string
		wantCode     int
		want         []string // substrings of stderr
	}{
		{"no-nodes", section("", good, ""), env, 2, []string{"cluster.hyperv.nodes: no nodes configured", "list the nodes' management addresses"}},
		{"basic-over-http", section(addr, "https: false, port: 5985, auth: basic, username: x, password_env: HVPW", ""), env, 2, []string{"cluster.hyperv.winrm.https: basic auth needs HTTPS", "set https: true"}},
		{"password-env-unset", section(addr, good, ""), nil, 1, []string{"cluster.hyperv.winrm.password_env", "environment variable HVPW is not set", "export HVPW"}},
		{"unreachable-endpoint", section(fmt.Sprintf("127.0.0.1:%d", closedPort(t)), good, ""), env, 1, []string{"platform unavailable", "check cluster.hyperv.nodes and winrm.port"}},
		{"wrong-password", section(addr, good, ""), []string{"HVPW=wrong-" + password}, 1, []string{"cluster.hyperv.winrm.username: the node refused the credentials (HTTP 401)", "check username and the password in $HVPW"}},
		{"tls-untrusted", section(addr, "https: true, auth: basic, username: 'HV\\drover', password_env: HVPW, operation_timeout: 2s", ""), env, 1, []string{"cluster.hyperv.winrm.ca_file: TLS: the node's certificate is not trusted", "set ca_file"}},
		{"script-over-the-command-line-limit", section(addr, good, "  updater:\n    kind: windows_update\n    windows_update:\n      criteria: \""+strings.Repeat("IsInstalled=0 and ", 200)+"IsHidden=0\"\n"), env, 2,
			[]string{"cluster.updater.windows_update.criteria", "encoded command exceeds the Windows command-line limit", "shorten the query"}},
		{"unknown-drain", section(addr, good, "    drain: fast\n"), env, 2, []string{"cluster.hyperv.drain: unknown drain \"fast\"", "use drover"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "drover.yaml"), []byte(tc.config), 0o600); err != nil {
				t.Fatal(err)
			}
			code, stdout, stderr := runDroverOut(t, bin, dir, tc.env, "--config", "drover.yaml", "inventory")
			if code != tc.wantCode {
				t.Errorf("exit %d; want %d\nstderr: %s", code, tc.wantCode, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
			if strings.Contains(stdout+stderr, password) {
				t.Errorf("the password appears in the output")
			}
		})
	}
}
