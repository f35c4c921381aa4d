package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMakeDemo_UsesItsOwnStateFile: `make demo` writes its runs into its own state
// file (DEMO_STATE), never into the user's default one (issue 16).
func TestMakeDemo_UsesItsOwnStateFile(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo (about 20 s)")
	}
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make")
	}
	bin := droverBinary(t)
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	demoState := filepath.Join(dir, "demo", "demo.db")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// -o build: the test's binary is used as it is (no rebuild into bin/).
	cmd := exec.CommandContext(ctx, "make", "-s", "-C", moduleRoot(t), "-o", "build", "demo", "BIN="+bin, "DEMO_STATE="+demoState)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make demo: %v\n%s", err, out)
	}
	if _, err := os.Stat(demoState); err != nil {
		t.Errorf("make demo did not write its own state file %s: %v\n%s", demoState, err, out)
	}
	if _, err := os.Stat(filepath.Join(home, ".local", "state", "drover")); err == nil {
		t.Errorf("make demo wrote into the user's default state folder")
	}
}

// TestServe_StateFolderMissing: `serve --state DIR/x.db` in a folder that does not
// exist is a config error (exit 2) whose message gives the command that fixes it.
func TestServe_StateFolderMissing(t *testing.T) {
	bin := droverBinary(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "serve.yaml"), "cluster: {name: a, driver: sim, sim: {cluster_file: "+filepath.Join(moduleRoot(t), "testdata", "clusters", "demo.yaml")+"}}\nserver: {listen: 127.0.0.1:0}\n")
	missing := filepath.Join(dir, "r1")
	code, _, errOut := runDroverOut(t, bin, dir, nil, "--config", "serve.yaml", "serve", "--state", filepath.Join(missing, "serve.db"))
	if code != 2 {
		t.Fatalf("exit %d, want 2:\n%s", code, errOut)
	}
	if !strings.Contains(errOut, "mkdir -m 700 -p "+missing) {
		t.Errorf("the error does not give the fix:\n%s", errOut)
	}
	if _, err := os.Stat(missing); err == nil {
		t.Errorf("serve created %s although it refused to start", missing)
	}
}
