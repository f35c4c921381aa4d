package main

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/cmd/internal/chaos"
)

var crashSeed = flag.Uint64("crash.seed", 0, "seed of TestApply_KillAndResume (0 = from the clock)")

// TestApply_KillAndResume kill -9s a real `drover apply` at 20+ moments of a run
// against a separate `drover sim serve`, resumes it each time with `drover runs
// resume ID`, and checks the cluster afterwards (see chaos.Check): every node
// patched once, the same VMs all running, no node left paused, no VM moved twice,
// none killed by a reboot, no migration refused, the reserve kept.
func TestApply_KillAndResume(t *testing.T) {
	if testing.Short() {
		t.Skip("starts ~25 processes and runs ~20 s of wall time")
	}
	bin := droverBinary(t)
	seed := *crashSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (replay: go test ./cmd/drover -run TestApply_KillAndResume -crash.seed=%d)", seed, seed)
	procs := &chaos.Procs{}
	t.Cleanup(procs.KillAll)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	res, err := chaos.Run(ctx, chaos.Options{
		Drover:      bin,
		ClusterFile: filepath.Join(moduleRoot(t), "testdata", "clusters", "chaos.yaml"),
		Dir:         dir,
		Seed:        seed,
		TimeScale:   40,
		Kills:       22,
		Cover:       chaos.CoreMoments,
		MaxKills:    40,
		Failback:    "immediate",
		MaxParallel: 4, PerNode: 2, ReserveNodes: 1,
		HangMs: 120,
		Procs:  procs,
		Logf:   t.Logf,
	})
	if err != nil {
		dumpLogs(t, dir)
		t.Fatalf("round: %v", err)
	}
	t.Logf("run %s: %d kills, %d resumed, %d late kills in %s; moments %v", res.RunID, res.Kills, res.Resumed, res.LateKills, res.Wall.Round(time.Millisecond), res.Moments)
	if res.Kills < 20 {
		t.Errorf("%d kills, want at least 20 (the run ended too soon)", res.Kills)
	}
	if res.Resumed != res.Kills {
		t.Errorf("%d kills but %d resumes", res.Kills, res.Resumed)
	}
	for _, m := range chaos.CoreMoments {
		if res.Moments[m] == 0 {
			t.Errorf("no kill landed at %s", m)
		}
	}
	for _, f := range res.Findings.All() {
		t.Error(f)
	}
	if res.Report.Resumes == 0 {
		t.Errorf("the report counts no resume after %d kills", res.Kills)
	}
	if t.Failed() {
		dumpLogs(t, dir)
	}
}

// dumpLogs shows the end of the round's logs: the temporary folder goes away.
func dumpLogs(t *testing.T, dir string) {
	t.Helper()
	for _, name := range []string{"drover.log", "sim.log"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		if len(lines) > 80 {
			lines = lines[len(lines)-80:]
		}
		t.Logf("--- last lines of %s:\n%s", name, strings.Join(lines, "\n"))
	}
}
