package orchestrator_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/droverhq/drover/orchestrator"
)

// TestEngine_ReportNamesVMsAwayFromHome: node b does not come back from its
// reboot, so the VM drained off it stays on another node; the report names it,
// its home and where it is (as the platform says).
func TestEngine_ReportNamesVMsAwayFromHome(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, withFaults(small, "  - {kind: node_no_return, node: b}\n"))
		rep, err := h.apply(context.Background(), testPolicy(func(p *orchestrator.Policy) {
			p.MaxFailedNodes = 0
			p.RebootTimeout = orchestrator.Duration(5 * time.Minute)
		}))
		if err != nil {
			t.Fatal(err)
		}
		if h.node(rep, "b").State != orchestrator.NodeFailed {
			t.Fatalf("node b = %s, want failed", h.node(rep, "b").State)
		}
		away := rep.Summary.VMsAway
		if len(away) != 1 || away[0].VM != "v3" || away[0].Home != "b" || away[0].HomeState != "failed" {
			t.Fatalf("vms away = %+v, want v3 away from b (failed)", away)
		}
		if v, _ := h.inventory().VM("v3"); v.Node != away[0].Now {
			t.Errorf("report says v3 is on %s, the platform says %s", away[0].Now, v.Node)
		}
	})
}
