package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCLI_BadInputHarden: the hardening's bad inputs (issue 10) to the real binary:
// each fails with the exit code and the exact message (key and fix), and writes
// nothing.
func TestCLI_BadInputHarden(t *testing.T) {
	bin := droverBinary(t)
	demo := filepath.Join(moduleRoot(t), "testdata", "clusters", "demo.yaml")
	embedded := "state: state.db\ncluster:\n  driver: sim\n  sim:\n    cluster_file: " + demo + "\n"
	host, _ := os.Hostname()
	tests := []struct {
		name, config string
		args         []string
		env          []string
		code         int
		want         string
	}{
		{"retries-1e9", embedded + "policy: {retries_per_node: 1000000000}\n", []string{"plan"}, nil, 2,
			"drover: policy.retries_per_node: 1000000000 is out of range (give a whole number from 0 to 100)"},
		{"max-parallel-nodes-flag", embedded, []string{"apply", "--yes", "--max-parallel-nodes", "100000"}, nil, 2,
			"drover: policy.max_parallel_nodes: 100000 is out of range (give a whole number from 1 to 1024)"},
		{"max-parallel-migrations-env", embedded, []string{"plan"}, []string{"DROVER_POLICY_MAX_PARALLEL_MIGRATIONS=100000"}, 2,
			"drover: policy.max_parallel_migrations: 100000 is out of range (set by environment variable DROVER_POLICY_MAX_PARALLEL_MIGRATIONS) (give a whole number from 1 to 1024)"},
		{"cluster-name-escape", strings.Replace(embedded, "cluster:\n", "cluster:\n  name: \"lab\\e[2J\"\n", 1), []string{"inventory"}, nil, 2,
			"drover: cluster.name: control or formatting character U+001B at byte 3 (use printable characters only)"},
		{"scan-cache-too-long", embedded + "server: {scan_cache: 2h}\n", []string{"serve"}, nil, 2,
			"drover: server.scan_cache: 2h0m0s is longer than 1h: answers would describe a cluster long gone (give a duration up to 1h, e.g. 60s, or -1s to scan on every request)"},
		{"token-over-plain-http", "", []string{"runs", "list", "--server", "http://drover-test.invalid:8086"}, []string{"DROVER_TOKEN=x"}, 2,
			"drover: --server drover-test.invalid:8086: plain http to a host that is not loopback would send the token in clear: use https://, or --insecure-http if the network between you and the daemon is trusted"},
		{"state-subcommand-missing", embedded, []string{"state"}, nil, 2,
			"drover: missing subcommand: check or repair; see 'drover state --help'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			args := tt.args
			if tt.config != "" {
				writeFile(t, filepath.Join(dir, "drover.yaml"), tt.config)
				args = append([]string{"--config", "drover.yaml"}, args...)
			}
			before := snapshot(t, dir)
			code, stderr := runDrover(t, bin, dir, tt.env, args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d\n%s", code, tt.code, stderr)
			}
			if got := errorMessage(stderr, dir, host); got != tt.want {
				t.Errorf("message:\n got  %s\n want %s", got, tt.want)
			}
			if after := snapshot(t, dir); after != before {
				t.Errorf("files changed:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}
