package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/droverhq/drover/orchestrator"
	"github.com/droverhq/drover/policies"
)

func TestPlan_Command(t *testing.T) {
	small := testSetup(t, smallCluster, "")
	tight := testSetup(t, tightCluster, "")
	tests := []struct {
		name string
		args []string
		code int
		out  []string
	}{
		{name: "plan", args: []string{"--config", small, "plan"}, out: []string{
			"Plan for cluster t: 3 nodes, 5 migrations", "estimates from model defaults", "Order: b c a",
			"1  b     planned  1", "b:\n  v3 -> c", "1 VM moved more than once, 0 nodes blocked"}},
		{name: "policy-flags-apply", args: []string{"--config", small, "plan", "--node-order", "explicit", "--nodes", "a,c"}, out: []string{"Order: a c\n"}},
		{name: "reserve-blocks-every-node", args: []string{"--config", tight, "plan", "--reserve-nodes", "1"}, code: 1, out: []string{
			"1  a     BLOCKED", "a:\n  CANNOT BE DRAINED: reserve N-1 does not hold while a is out", "3 nodes blocked"}},
		{name: "dry-run-prints-the-plan", args: []string{"--config", small, "apply", "--dry-run"}, out: []string{
			"Dry run: nothing will be changed", "Plan for cluster t: 3 nodes", "Order: b c a"}},
		{name: "bad-flag-value", args: []string{"--config", small, "plan", "--node-order", "random"}, code: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := runCLI(t, tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, out, errOut)
			}
			for _, s := range tt.out {
				if !strings.Contains(out, s) {
					t.Errorf("output lacks %q:\n%s", s, out)
				}
			}
		})
	}
}

func TestPlan_CommandJSON(t *testing.T) {
	out, errOut, code := runCLI(t, "--config", testSetup(t, smallCluster, ""), "plan", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var p orchestrator.RunPlan
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		t.Fatalf("not a plan: %v\n%s", err, out)
	}
	moved := map[string]string{}
	for _, n := range p.Nodes {
		if n.Status != policies.NodePlanned {
			t.Errorf("node %s %s", n.Node, n.Status)
		}
		for _, m := range n.Migrations {
			moved[m.VM] = m.To
			if m.From != n.Node || m.To == n.Node || m.Duration <= 0 {
				t.Errorf("node %s: migration %+v", n.Node, m)
			}
		}
	}
	if strings.Join(p.Order, " ") != "b c a" || len(moved) != 4 || p.ETA <= 0 {
		t.Errorf("order %v, %d VMs moved, eta %s; want b c a, all 4 VMs, an ETA", p.Order, len(moved), p.ETA)
	}
}
