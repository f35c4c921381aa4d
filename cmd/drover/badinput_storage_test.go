package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// storageConfig is a drover.yaml of the embedded sim cluster with local disks, plus
// extra lines.
func storageConfig(t *testing.T, extra string) string {
	t.Helper()
	file := filepath.Join(moduleRoot(t), "testdata", "clusters", "local-storage.yaml")
	return "state: state.db\ncluster:\n  driver: sim\n  sim:\n    cluster_file: " + file + "\n    time_scale: 1000\n" + extra
}

func TestCLI_LocalStorageBadInput(t *testing.T) {
	bin := droverBinary(t)
	tests := []struct {
		name, policy, want string
	}{
		{name: "unknown-mode", policy: "policy:\n  local_storage: copy\n",
			want: `drover: policy.local_storage: unknown mode "copy" (use migrate, fail, shutdown or skip, or leave it out to migrate where the driver can)`},
		{name: "mode-of-wrong-type", policy: "policy:\n  local_storage: [migrate]\n", want: "policy.local_storage"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, "drover.yaml"), storageConfig(t, tt.policy))
			code, stderr := runDrover(t, bin, dir, nil, "--config", "drover.yaml", "plan")
			msg := errorMessage(stderr, dir, "")
			if code != 2 || !bytes.Contains([]byte(msg), []byte(tt.want)) {
				t.Fatalf("exit %d, %q; want exit 2 and %q", code, msg, tt.want)
			}
			if _, err := os.Stat(filepath.Join(dir, "state.db")); err == nil {
				t.Error("a bad policy left a state file behind")
			}
		})
	}
}

func TestCLI_PlanJSONShowsDiskMiB(t *testing.T) {
	bin := droverBinary(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "drover.yaml"), storageConfig(t, ""))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--config", "drover.yaml", "plan", "--json")
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("plan --json: %v", err)
	}
	var plan struct {
		Nodes []struct {
			Node       string `json:"node"`
			Migrations []struct {
				VM       string  `json:"vm"`
				To       string  `json:"to"`
				DiskMiB  *int64  `json:"disk_mib"`
				Duration float64 `json:"duration"`
			} `json:"migrations"`
		} `json:"nodes"`
	}
	if err := json.Unmarshal(out, &plan); err != nil {
		t.Fatalf("plan --json is not the plan: %v\n%s", err, out)
	}
	seen := map[string]int64{}
	for _, n := range plan.Nodes {
		for _, m := range n.Migrations {
			if m.DiskMiB == nil {
				t.Fatalf("move of %s has no disk_mib: %s", m.VM, out)
			}
			seen[m.VM] = *m.DiskMiB
			if m.VM == "db" && m.To == "n3" {
				t.Errorf("db planned onto n3, which has 20480 MiB free for its 40960 MiB disk")
			}
		}
	}
	if seen["db"] != 40960 || seen["cache"] != 10240 || seen["web"] != 0 {
		t.Errorf("disk_mib per VM %v, want db 40960, cache 10240, web 0", seen)
	}
}
