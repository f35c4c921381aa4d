package libvirt_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/runs/report"
)

// The lab where scheduling matters (`make lab-bench`): hostA's link shaped to
// benchShapeMbit, four light guests and two that dirty benchHeavyMiBs of memory per
// second. Each strategy drains hostA benchRuns times (interleaved, the guests
// gathered back on hostA before each), with the same policy.migration_timeout.
const (
	benchShapeMbit = 200
	benchHeavyMiBs = 14
	benchTimeout   = "20s"
)

var (
	benchGuests = []string{"vm1", "vm2", "vm3", "vm4", "vm5", "vm6"}
	benchSpec   = fmt.Sprintf("vm1:hostA vm2:hostA vm3:hostA vm4:hostA vm5:hostA:dirty=%d vm6:hostA:dirty=%d", benchHeavyMiBs, benchHeavyMiBs)
	// benchStrategies are the drover flags of each strategy.
	benchStrategies = []struct {
		name string
		args []string
	}{
		{"serial", []string{"--set", "policy.drain_scheduler=fixed", "--max-parallel-migrations", "1"}},
		{"fixed-2", []string{"--set", "policy.drain_scheduler=fixed", "--max-migrations-per-node", "2"}},
		{"fixed-8", []string{"--set", "policy.drain_scheduler=fixed", "--max-migrations-per-node", "8"}},
		{"drover", nil},
	}
)

// TestBenchLabDrain prints, per strategy, exactly:
//
//	lab-bench: strategy=NAME runs=N drain_median_s=S failed_migrations=F vs_drover=R
//
// It measures and asserts nothing about who wins: the figures are the result. Run:
//
//	DROVER_LIBVIRT_LAB=1 go test -count=1 -v -timeout 40m -run TestBenchLabDrain ./drivers/libvirt/
//
// (BENCH_RUNS=N sets the runs per strategy, default 2.)
func TestBenchLabDrain(t *testing.T) {
	if os.Getenv("DROVER_LIBVIRT_LAB") != "1" {
		t.Skip("set DROVER_LIBVIRT_LAB=1 (as root, after lab/lab.sh deps) to run the lab bench")
	}
	runs := 2
	if v := os.Getenv("BENCH_RUNS"); v != "" {
		if _, err := fmt.Sscan(v, &runs); err != nil || runs < 1 {
			t.Fatalf("BENCH_RUNS=%q: want a positive number", v)
		}
	}
	bin := droverBinary(t)
	t.Setenv("LAB_SHAPE_MBIT", fmt.Sprint(benchShapeMbit))
	t.Setenv("LAB_GUESTS", benchSpec)
	l := startLab(t)
	for _, vm := range benchGuests {
		if !poll(guestBootTimeout, func() bool { _, err := l.run("heartbeat", vm); return err == nil }) {
			t.Fatalf("vm %s never printed a heartbeat", vm)
		}
	}
	cfg := benchConfig(t, l.script)
	state := filepath.Join(t.TempDir(), "drover.db")

	type result struct {
		drains []float64
		failed int
	}
	results := map[string]*result{}
	for rep := range runs {
		for _, st := range benchStrategies {
			benchGather(t, l)
			// The gathered guests are new QEMU processes with no dirty rate yet:
			// an inventory starts their calculation (1 s), as one some time
			// before a drain does; apply's inventories then read it.
			if out, err := exec.Command(bin, "--config", cfg, "--state", state, "inventory").CombinedOutput(); err != nil {
				t.Fatalf("drover inventory: %v\n%s", err, out)
			}
			time.Sleep(2 * time.Second)
			drain, failed := benchDrain(t, bin, cfg, state, st.args)
			t.Logf("run %d %s: drain %.1f s, %d failed migrations", rep+1, st.name, drain, failed)
			r := results[st.name]
			if r == nil {
				r = &result{}
				results[st.name] = r
			}
			r.drains = append(r.drains, drain)
			r.failed += failed
		}
	}
	base := median(results["drover"].drains)
	for _, st := range benchStrategies {
		r := results[st.name]
		m := median(r.drains)
		fmt.Printf("lab-bench: strategy=%s runs=%d drain_median_s=%.1f failed_migrations=%d vs_drover=%.2f\n", st.name, len(r.drains), m, r.failed, m/base)
	}
}

// benchConfig is testdata/libvirt/lab.yaml with its lab.sh paths absolute and every
// host's nic_mbps set to the shaped link's rate.
func benchConfig(t *testing.T, script string) string {
	t.Helper()
	raw, err := os.ReadFile(labYAML)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(raw), "\n") {
		line = strings.ReplaceAll(line, "../../drivers/libvirt/lab/lab.sh", script)
		out = append(out, line)
		if trimmed := strings.TrimSpace(line); strings.HasPrefix(trimmed, "migration_uri:") {
			indent := line[:len(line)-len(strings.TrimLeft(line, " "))]
			out = append(out, fmt.Sprintf("%snic_mbps: %d", indent, benchShapeMbit))
		}
	}
	p := filepath.Join(t.TempDir(), "lab-bench.yaml")
	if err := os.WriteFile(p, []byte(strings.Join(out, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// benchGather brings every guest back to hostA, one at a time (each alone on the
// link, so even a heavy dirtier converges).
func benchGather(t *testing.T, l *lab) {
	t.Helper()
	for _, vm := range benchGuests {
		if out, err := l.run("migrate", vm, "hostA"); err != nil {
			t.Fatalf("gather %s on hostA: %v\n%s", vm, err, out)
		}
	}
}

// benchDrain runs `drover apply` of hostA with the strategy's flags and returns its
// draining phase's seconds and the failed migration attempts of the run.
func benchDrain(t *testing.T, bin, cfg, state string, args []string) (float64, int) {
	t.Helper()
	full := append([]string{"--config", cfg, "--state", state, "--log-level", "warn", "apply", "--yes", "--json", "--nodes", "hostA", "--force",
		"--set", "policy.migration_timeout=" + benchTimeout}, args...)
	cmd := exec.Command(bin, full...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(15 * time.Minute):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("drover apply %v did not end in 15 minutes\n%s", args, stderr.String())
	}
	var rep report.Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil || len(rep.Nodes) != 1 {
		t.Fatalf("drover apply %v: no report (%v)\nstdout:\n%s\nstderr:\n%s", args, err, stdout.String(), stderr.String())
	}
	n := rep.Nodes[0]
	drain := 0.0
	for _, ph := range n.Phases {
		if ph.Name == "draining" {
			drain += ph.Seconds
		}
	}
	if n.State != "done" {
		t.Logf("drover apply %v: hostA %s: %s", args, n.State, n.Failure)
	}
	return drain, len(n.FailedMigrations)
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
