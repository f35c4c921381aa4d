package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRunsWatch_ASecondTerminalSeesACLIRun: while `apply` holds the state file,
// `runs list`, `runs show` and `runs watch` in another process answer from its
// status socket (0600, next to the state file) instead of exiting 2 "locked";
// watch follows the run to its end and prints the report (issue 16).
func TestRunsWatch_ASecondTerminalSeesACLIRun(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a simulated cluster")
	}
	bin := droverBinary(t)
	dir := t.TempDir()
	root := moduleRoot(t)
	writeFile(t, filepath.Join(dir, "drover.yaml"), "state: state.db\ncluster: {name: demo, driver: sim, sim: {cluster_file: "+
		filepath.Join(root, "testdata", "clusters", "demo.yaml")+", time_scale: 20}}\npolicy: {max_parallel_migrations: 4, failback: immediate}\n")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	apply := exec.CommandContext(ctx, bin, "--config", "drover.yaml", "apply", "--yes")
	apply.Dir = dir
	apply.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + filepath.Join(dir, "home")}
	var applyOut bytes.Buffer
	apply.Stdout, apply.Stderr = &applyOut, &applyOut
	if err := apply.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if apply.ProcessState == nil {
			_ = apply.Process.Kill()
			_ = apply.Wait()
		}
	})
	sock := filepath.Join(dir, "state.db.sock")
	deadline := time.Now().Add(30 * time.Second)
	for {
		if fi, err := os.Stat(sock); err == nil {
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("status socket mode %v, want 0600", fi.Mode().Perm())
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no status socket after 30 s:\n%s", applyOut.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	code, out, errOut := runDroverOut(t, bin, dir, nil, "--config", "drover.yaml", "runs", "list")
	if code != 0 || !strings.Contains(out, "running") {
		t.Errorf("runs list during apply: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = runDroverOut(t, bin, dir, nil, "--config", "drover.yaml", "runs", "show", "last")
	if code != 0 || !strings.Contains(out, "on cluster demo: running") {
		t.Errorf("runs show during apply: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = runDroverOut(t, bin, dir, nil, "--config", "drover.yaml", "runs", "watch", "last")
	if code != 0 || !strings.Contains(out, "on cluster demo: succeeded") || !strings.Contains(out, "node n") {
		t.Errorf("runs watch: exit %d, want 0 with the events and the succeeded report\n%s%s", code, out, errOut)
	}
	if err := apply.Wait(); err != nil {
		t.Fatalf("apply: %v\n%s", err, applyOut.String())
	}
	if _, err := os.Stat(sock); err == nil {
		t.Errorf("the status socket is left after apply ended")
	}
}
