package cli

import (
	"bytes"
	"regexp"
	"strings"
	"testing"

	"github.com/droverhq/drover/orchestrator"
	"github.com/droverhq/drover/policies"
)

func TestPrintSchedulerInputs(t *testing.T) {
	p := &orchestrator.RunPlan{SchedulerInputs: []policies.NodeInputs{
		{Node: "a", Link: policies.Link{NICMiBs: 1192, StreamMiBs: 358}, LinkSource: policies.SourceMeasured, DirtyVMs: 2, VMs: 2, DirtySource: policies.SourceMeasured},
		{Node: "b", Link: policies.Link{NICMiBs: 95}, LinkSource: policies.SourceConfigured, VMs: 1, DirtySource: policies.SourceAssumed},
		{Node: "c", Link: policies.Link{NICMiBs: 150, StreamMiBs: 50}, LinkSource: policies.SourceLearned},
		{Node: "d", LinkSource: policies.SourceAssumed, DirtyVMs: 1, VMs: 2, DirtySource: policies.SourceMeasured + "+" + policies.SourceAssumed},
	}}
	var out bytes.Buffer
	printSchedulerInputs(&out, p)
	for _, re := range []string{
		`(?m)^a +measured +1192 +358 +measured \(2 measured of 2 VMs\)$`,
		`(?m)^b +configured +95 +- +assumed \(0 measured of 1 VM\)$`,
		`(?m)^c +learned +150 +50 +-$`,
		`(?m)^d +assumed +- +- +measured\+assumed \(1 measured of 2 VMs\)$`,
		`runs 2 migrations per node there until it learns them`,
	} {
		if !regexp.MustCompile(re).MatchString(out.String()) {
			t.Errorf("output does not match %s:\n%s", re, out.String())
		}
	}
	out.Reset()
	printSchedulerInputs(&out, &orchestrator.RunPlan{})
	if out.Len() != 0 {
		t.Errorf("no inputs printed %q", out.String())
	}
}

// TestPlan_NamesInputSources: `drover plan` on the simulator, whose nodes report
// their links and VMs their dirty rates, names every input measured.
func TestPlan_NamesInputSources(t *testing.T) {
	out, errOut, code := runCLI(t, "--config", testSetup(t, smallCluster, ""), "plan")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	_, section, ok := strings.Cut(out, "Drain scheduler inputs:\n")
	if !ok {
		t.Fatalf("no scheduler inputs in the plan:\n%s", out)
	}
	for _, n := range []string{"a", "b", "c"} {
		if !regexp.MustCompile(`(?m)^` + n + ` +measured `).MatchString(section) {
			t.Errorf("node %s's link not named measured:\n%s", n, section)
		}
	}
}
