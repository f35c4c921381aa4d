package sim

import (
	"testing"
	"time"
)

// BenchmarkModel_Drain40 simulates a whole 40-VM drain (4 GiB VMs dirtying
// 40 MiB/s, 3 migrations at a time, one 10 Gb/s source, three targets) as a
// discrete-event simulation. ns/op is the wall time of one simulated drain;
// model-s is the drain's duration in model time.
func BenchmarkModel_Drain40(b *testing.B) {
	c := drainCluster(b, 40, 4096, 40)
	var last drainResult
	for b.Loop() {
		m, err := NewModel(c, time.Time{})
		if err != nil {
			b.Fatal(err)
		}
		last = drainNode(b, m, "src", []string{"t1", "t2", "t3"}, 3)
	}
	if len(last.failed) > 0 {
		b.Fatalf("%d migrations failed", len(last.failed))
	}
	b.ReportMetric(last.elapsed.Seconds(), "model-s")
	b.ReportMetric(last.transferredMiB, "MiB-sent")
}

// BenchmarkModel_DrainMedium drains the busiest node of medium.yaml's
// 200-VM cluster (4 at a time, least-loaded target of the cpu group).
func BenchmarkModel_DrainMedium(b *testing.B) {
	c, err := LoadCluster(clustersDir + "/medium.yaml")
	if err != nil {
		b.Fatal(err)
	}
	var targets []string
	for _, n := range c.Nodes[1:8] {
		targets = append(targets, n.Name)
	}
	var last drainResult
	for b.Loop() {
		m, _ := NewModel(c, time.Time{})
		last = drainNode(b, m, c.Nodes[0].Name, targets, 4)
	}
	b.ReportMetric(last.elapsed.Seconds(), "model-s")
	b.ReportMetric(float64(len(last.failed)), "failed")
}
