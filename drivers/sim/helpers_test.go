package sim

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/cluster"
)

// drainResult is what drainNode observed.
type drainResult struct {
	elapsed        time.Duration
	failed         []MigrationStatus
	transferredMiB float64
}

// drainNode moves every running VM off source with at most k migrations in
// flight, placing them round-robin on targets, as a tiny stand-in for the
// orchestrator's scheduler. It runs the model as a discrete-event simulation.
func drainNode(tb testing.TB, m *Model, source string, targets []string, k int) drainResult {
	tb.Helper()
	var queue []string
	for _, v := range m.Inventory().VMsOn(source) {
		if v.Power == cluster.PowerRunning {
			queue = append(queue, v.Name)
		}
	}
	start := m.Now()
	inflight := []string{}
	var res drainResult
	next := 0
	for len(queue) > 0 || len(inflight) > 0 {
		for len(inflight) < k && len(queue) > 0 {
			vm := queue[0]
			queue = queue[1:]
			to := targets[next%len(targets)]
			next++
			st, _, err := m.StartMigration(vm, source, to)
			if err != nil {
				tb.Fatalf("start migration of %s to %s: %v", vm, to, err)
			}
			inflight = append(inflight, st.ID)
		}
		if _, ok := m.Step(); !ok {
			tb.Fatalf("drain stalled with %d in flight", len(inflight))
		}
		keep := inflight[:0]
		for _, id := range inflight {
			st, err := m.Migration(id)
			if err != nil {
				tb.Fatal(err)
			}
			if !st.Done() {
				keep = append(keep, id)
				continue
			}
			res.transferredMiB += st.TransferredMiB
			if st.Phase != PhaseCompleted {
				res.failed = append(res.failed, st)
			}
		}
		inflight = keep
	}
	res.elapsed = m.Now().Sub(start)
	return res
}

// drainCluster is a source node with n VMs of memMiB dirtying at dirty MiB/s
// and three empty 10 Gb/s targets.
func drainCluster(tb testing.TB, n int, memMiB int64, dirty float64) *Cluster {
	tb.Helper()
	var b strings.Builder
	b.WriteString("seed: 1\nnodes:\n")
	for _, name := range []string{"src", "t1", "t2", "t3"} {
		fmt.Fprintf(&b, "  - {name: %s, memory_mib: 1048576, cpus: 64, nic_mbps: 10000, stream_mbps: 3000}\n", name)
	}
	b.WriteString("vms:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - {name: vm-%02d, node: src, memory_mib: %d, dirty_mib_s: %g}\n", i, memMiB, dirty)
	}
	c, err := ParseCluster([]byte(b.String()))
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

func mustModel(tb testing.TB, c *Cluster) *Model {
	tb.Helper()
	m, err := NewModel(c, time.Time{})
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

func mustParse(tb testing.TB, y string) *Cluster {
	tb.Helper()
	c, err := ParseCluster([]byte(y))
	if err != nil {
		tb.Fatalf("ParseCluster: %v", err)
	}
	return c
}
