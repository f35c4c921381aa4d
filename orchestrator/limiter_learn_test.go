package orchestrator

import (
	"fmt"
	"testing"
	"time"

	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/policies"
	"github.com/droverhq/drover/runs"
)

// learnCluster is a source with 8 VMs of 512 MiB and 4 empty targets, on links the
// platform does not report (libvirt's case).
func learnCluster() (cluster.Inventory, []policies.DrainJob) {
	inv := cluster.Inventory{Nodes: []cluster.Node{{Name: "src", State: cluster.NodeUp, MemoryMiB: 1 << 20, CPUs: 64}}}
	for i := range 4 {
		inv.Nodes = append(inv.Nodes, cluster.Node{Name: fmt.Sprintf("t%d", i+1), State: cluster.NodeUp, MemoryMiB: 1 << 20, CPUs: 64})
	}
	var jobs []policies.DrainJob
	for i := range 8 {
		v := cluster.VM{Name: fmt.Sprintf("v%d", i), Node: "src", MemoryMiB: 512, VCPUs: 1, Power: cluster.PowerRunning, Migratable: true}
		inv.VMs = append(inv.VMs, v)
		jobs = append(jobs, policies.DrainJob{VM: v})
	}
	return inv, jobs
}

// TestLimiter_LearnsDuringADrain: without history the drain starts with the
// fallback of 2 per node; once those two complete with job statistics showing that
// they did not share the link, the next decision runs more at once.
func TestLimiter_LearnsDuringADrain(t *testing.T) {
	inv, jobs := learnCluster()
	now := time.Unix(1000, 0)
	l := newLimiter(policies.DrainOptions{Mode: policies.DrainAdaptive, MaxPerNode: 8}, nil)
	l.setLinks(policies.LinksOf(inv))
	placer := policies.NewPlacer(inv, policies.PlacementOptions{})
	dec, _ := l.decide(now, jobs, placer, nil)
	if len(dec.Start) != policies.DefaultUnknownLinkPerNode {
		t.Fatalf("first decision started %d, want the fallback %d", len(dec.Start), policies.DefaultUnknownLinkPerNode)
	}
	for _, s := range dec.Start {
		if streams := l.done(s.Job.VM.Name, 500, 10, now); streams != 2 {
			t.Errorf("%s: %d streams recorded, want 2 (both ran from src)", s.Job.VM.Name, streams)
		}
	}
	rest := jobs[len(dec.Start):]
	dec2, _ := l.decide(now.Add(10*time.Second), rest, placer, nil)
	if len(dec2.Start) <= policies.DefaultUnknownLinkPerNode {
		t.Errorf("after two unshared streams of 50 MiB/s: %d started, want more than %d", len(dec2.Start), policies.DefaultUnknownLinkPerNode)
	}
}

// TestLimiter_StartsFromHistory: the samples the state file kept from past runs
// (timings with target and streams) inform the first decision of a run.
func TestLimiter_StartsFromHistory(t *testing.T) {
	inv, jobs := learnCluster()
	var ts []runs.Timing
	for i := range 6 {
		ts = append(ts, runs.Timing{Node: "src", To: fmt.Sprintf("t%d", i%4+1), Kind: "migration", Seconds: 10, MiB: 500, Streams: 1 + i%3, At: time.Unix(int64(i), 0)})
	}
	// Timings without target or streams (older state files) teach nothing.
	ts = append(ts, runs.Timing{Node: "src", Kind: "migration", Seconds: 1, MiB: 1})
	samples := LinkSamples(ts)
	if len(samples) != 6 {
		t.Fatalf("%d samples from the timings, want 6", len(samples))
	}
	l := newLimiter(policies.DrainOptions{Mode: policies.DrainAdaptive, MaxPerNode: 8}, samples)
	l.setLinks(policies.LinksOf(inv))
	dec, _ := l.decide(time.Unix(100, 0), jobs, policies.NewPlacer(inv, policies.PlacementOptions{}), nil)
	if len(dec.Start) <= 3 {
		t.Errorf("with history of 3 unshared streams: %d started, want more than 3", len(dec.Start))
	}
}
