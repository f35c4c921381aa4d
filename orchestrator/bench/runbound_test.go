package bench

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

func TestRunLowerBound(t *testing.T) {
	nodes := func(ts ...float64) []NodeTime {
		out := make([]NodeTime, len(ts))
		for i, s := range ts {
			out[i] = NodeTime{Node: fmt.Sprintf("n%d", i), Seconds: s}
		}
		return out
	}
	tests := []struct {
		name     string
		times    []NodeTime
		parallel int
		again    float64
		want     float64
	}{
		{name: "one-at-a-time-sums", times: nodes(10, 20, 30), parallel: 1, want: 60},
		// Equal nodes: batches × one node.
		{name: "equal-nodes-batches", times: nodes(5, 5, 5, 5, 5), parallel: 2, want: 15},
		// 10, 1, 1 on two slots: 10 alone on one slot, the two 1s on the other;
		// "batches × slowest" would say 11, which a schedule beats.
		{name: "long-node-alone", times: nodes(10, 1, 1), parallel: 2, want: 10},
		// Of the 3 longest (8, 8, 8) two share a slot: 16 > Σ/P = 14.
		{name: "pigeonhole", times: nodes(8, 8, 8, 4), parallel: 2, want: 16},
		{name: "parallel-zero-is-one", times: nodes(3, 4), parallel: 0, want: 7},
		// Moving again costs 6 s of source NIC; 2 s of it fit in the slack.
		{name: "move-again-beyond-slack", times: []NodeTime{{Node: "a", Seconds: 10, Slack: 2}, {Node: "b", Seconds: 10}}, parallel: 1, again: 6, want: 24},
		{name: "move-again-absorbed", times: []NodeTime{{Node: "a", Seconds: 10, Slack: 7}, {Node: "b", Seconds: 10}}, parallel: 1, again: 6, want: 20},
		{name: "no-nodes", times: nil, parallel: 3, want: 0},
		{name: "cannot-converge", times: nodes(5, math.Inf(1)), parallel: 1, want: math.Inf(1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := RunLowerBound(tt.times, tt.parallel, tt.again)
			if got.Seconds != tt.want && math.Abs(got.Seconds-tt.want) > 1e-9 {
				t.Errorf("RunLowerBound = %v (%+v), want %v", got.Seconds, got, tt.want)
			}
			if !math.IsInf(tt.want, 1) && got.Seconds != max(got.LongestNode, got.Spread, got.Batches) {
				t.Errorf("bound %v is not the largest of its terms %+v", got.Seconds, got)
			}
		})
	}
}

// TestRunLowerBound_NoRunBeatsIt plays whole runs of small random clusters (some
// patching two nodes at once) under every strategy: none may end before the bound.
func TestRunLowerBound_NoRunBeatsIt(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	checked := 0
	for i := range 12 {
		c := newCluster(uint64(i + 1))
		nodes := 3 + rng.IntN(3)
		for n := range nodes {
			nic := []float64{1000, 10000}[rng.IntN(2)]
			addNode(c, fmt.Sprintf("n%d", n), 512, 64, nic, 3000, float64(30+rng.IntN(90)))
			for range rng.IntN(5) {
				addVM(c, fmt.Sprintf("n%d", n), int64(512*(1+rng.IntN(8))), 30*rng.Float64())
			}
		}
		sc := Scenario{Name: fmt.Sprintf("random-%d", i), Cluster: c, ParallelNodes: 1 + i%2}
		inv, err := initialInventory(sc)
		if err != nil {
			t.Fatal(err)
		}
		b := ScenarioRunBound(sc, inv)
		for _, st := range Strategies() {
			out, err := Run(sc, st)
			if err != nil {
				t.Fatalf("%s/%s: %v", sc.Name, st.Name, err)
			}
			if !b.Converges || out.NodesFailed > 0 {
				continue
			}
			checked++
			if out.RunSeconds < b.Seconds-1e-6 {
				t.Errorf("%s/%s: run %.3f s beats the bound %.3f s (%+v)", sc.Name, st.Name, out.RunSeconds, b.Seconds, b)
			}
		}
	}
	if checked < 40 {
		t.Errorf("only %d of 60 runs were checked against the bound", checked)
	}
}
