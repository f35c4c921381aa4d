package orchestrator

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/droverhq/drover/runs"
)

// TestNodeRules_Step puts every event kind to the node machine in every state. The
// expected decisions are written out here, apart from machine.go: each legal row
// names the machine event, the next state, the record it leaves and the actions of
// the next state; every other (state, event) pair must be refused with
// ErrInvalidTransition.
func TestNodeRules_Step(t *testing.T) {
	boom := errors.New("disk on fire")
	rules := nodeRules{}
	type row struct {
		name  string
		rules nodeRules
		rec   runs.NodeRecord
		ev    nodeEvent
		// want
		event, next string
		check       func(t *testing.T, r runs.NodeRecord)
		actions     []action
	}
	rec := func(state string, set ...func(*runs.NodeRecord)) runs.NodeRecord {
		r := runs.NodeRecord{State: state}
		for _, f := range set {
			f(&r)
		}
		return r
	}
	failure := func(want string) func(t *testing.T, r runs.NodeRecord) {
		return func(t *testing.T, r runs.NodeRecord) {
			if r.Failure != want {
				t.Errorf("failure = %q, want %q", r.Failure, want)
			}
		}
	}
	skip := func(want string) func(t *testing.T, r runs.NodeRecord) {
		return func(t *testing.T, r runs.NodeRecord) {
			if r.SkipReason != want || r.Failure != "" {
				t.Errorf("skip reason = %q, failure %q; want %q and no failure", r.SkipReason, r.Failure, want)
			}
		}
	}
	errorsNoted := func(want ...string) func(t *testing.T, r runs.NodeRecord) {
		return func(t *testing.T, r runs.NodeRecord) {
			if !slices.Equal(r.Errors, want) || r.Failure != "" {
				t.Errorf("errors = %q, failure %q; want errors %q and no failure (the patch stands)", r.Errors, r.Failure, want)
			}
		}
	}
	shutdownLeft := func(r *runs.NodeRecord) {
		r.VMsLeft = []runs.VMLeft{{VM: "db", Action: "shutdown"}}
	}
	legal := []row{
		// queued
		{name: "queued-done-pauses", rec: rec(NodeQueued), ev: nodeEvent{kind: evtDone, bootID: "b1"},
			event: evPause, next: NodePausing, actions: []action{doPause},
			check: func(t *testing.T, r runs.NodeRecord) {
				if r.BootIDBefore != "b1" || r.Attempts != 1 {
					t.Errorf("boot id %q, attempts %d; want b1, 1", r.BootIDBefore, r.Attempts)
				}
			}},
		{name: "queued-failed-fails-untouched", rec: rec(NodeQueued), ev: nodeEvent{kind: evtFailed, err: boom},
			event: evFail, next: NodeFailed, check: failure("disk on fire")},
		{name: "queued-stopped-skips", rec: rec(NodeQueued), ev: nodeEvent{kind: evtStopped, reason: "stopped"},
			event: evSkip, next: NodeSkipped, check: skip("stopped")},
		{name: "queued-skipped-skips", rec: rec(NodeQueued), ev: nodeEvent{kind: evtSkipped, reason: "node is down"},
			event: evSkip, next: NodeSkipped, check: skip("node is down")},
		// pausing
		{name: "pausing-done-drains", rec: rec(NodePausing), ev: nodeEvent{kind: evtDone},
			event: evDrain, next: NodeDraining, actions: []action{doDrain}},
		{name: "pausing-failed-resumes", rec: rec(NodePausing), ev: nodeEvent{kind: evtFailed, err: boom},
			event: evAbort, next: NodeResuming, check: failure("disk on fire"), actions: []action{doResume}},
		{name: "pausing-stopped-resumes", rec: rec(NodePausing), ev: nodeEvent{kind: evtStopped, reason: "stopped"},
			event: evAbort, next: NodeResuming, check: skip("stopped"), actions: []action{doResume}},
		// draining
		{name: "draining-done-patches", rec: rec(NodeDraining), ev: nodeEvent{kind: evtDone},
			event: evPatch, next: NodePatching, actions: []action{doInstall}},
		{name: "draining-done-evacuated-stays-paused", rules: nodeRules{evacuate: true}, rec: rec(NodeDraining), ev: nodeEvent{kind: evtDone},
			event: evLeave, next: NodeDone,
			check: func(t *testing.T, r runs.NodeRecord) {
				if r.LeftPaused != evacuatedNote {
					t.Errorf("left paused = %q, want the evacuation named", r.LeftPaused)
				}
			}},
		{name: "draining-failed-resumes-and-restarts", rec: rec(NodeDraining, shutdownLeft), ev: nodeEvent{kind: evtFailed, err: boom},
			event: evAbort, next: NodeResuming, check: failure("disk on fire"), actions: []action{doResume, doRestartLeft}},
		{name: "draining-stopped-resumes", rec: rec(NodeDraining), ev: nodeEvent{kind: evtStopped, reason: "stopped"},
			event: evAbort, next: NodeResuming, check: skip("stopped"), actions: []action{doResume}},
		// patching
		{name: "patching-done-reboot-required", rec: rec(NodePatching, func(r *runs.NodeRecord) { r.RebootRequired = true }), ev: nodeEvent{kind: evtDone},
			event: evReboot, next: NodeRebooting, actions: []action{doReboot, doWaitBack}},
		{name: "patching-done-nothing-asks-a-reboot", rec: rec(NodePatching), ev: nodeEvent{kind: evtDone},
			event: evVerify, next: NodeVerifying, actions: []action{doCheckReady},
			check: func(t *testing.T, r runs.NodeRecord) {
				if r.RebootRequired {
					t.Error("reboot required set without a reason")
				}
			}},
		{name: "patching-done-forced", rules: nodeRules{force: true}, rec: rec(NodePatching), ev: nodeEvent{kind: evtDone},
			event: evReboot, next: NodeRebooting, actions: []action{doReboot, doWaitBack}},
		{name: "patching-done-found-installed-before-a-restart", rec: rec(NodePatching), ev: nodeEvent{kind: evtDone, found: []runs.Update{{Name: "kernel"}}},
			event: evReboot, next: NodeRebooting, actions: []action{doReboot, doWaitBack},
			check: func(t *testing.T, r runs.NodeRecord) {
				if !r.RebootRequired || len(r.Installed) != 1 || r.Installed[0].Name != "kernel" {
					t.Errorf("reboot required %v, installed %v; want true, [kernel]", r.RebootRequired, r.Installed)
				}
			}},
		{name: "patching-failed-resumes", rec: rec(NodePatching), ev: nodeEvent{kind: evtFailed, err: boom},
			event: evAbort, next: NodeResuming, check: failure("disk on fire"), actions: []action{doResume}},
		{name: "patching-stopped-resumes", rec: rec(NodePatching), ev: nodeEvent{kind: evtStopped, reason: "stopped"},
			event: evAbort, next: NodeResuming, check: skip("stopped"), actions: []action{doResume}},
		// rebooting
		{name: "rebooting-done-verifies", rules: nodeRules{postHook: true}, rec: rec(NodeRebooting, func(r *runs.NodeRecord) {
			r.Installed, r.RebootRequired = []runs.Update{{Name: "kernel"}}, true
		}, shutdownLeft), ev: nodeEvent{kind: evtDone},
			event: evVerify, next: NodeVerifying, actions: []action{doCheckReady, doCheckUpdates, doRestartLeft, doPostHook}},
		{name: "rebooting-failed-resumes", rec: rec(NodeRebooting), ev: nodeEvent{kind: evtFailed, err: boom},
			event: evAbort, next: NodeResuming, check: failure("disk on fire"), actions: []action{doResume}},
		{name: "rebooting-stopped-resumes", rec: rec(NodeRebooting), ev: nodeEvent{kind: evtStopped, reason: "stopped"},
			event: evAbort, next: NodeResuming, check: skip("stopped"), actions: []action{doResume}},
		// verifying
		{name: "verifying-done-resumes", rec: rec(NodeVerifying), ev: nodeEvent{kind: evtDone},
			event: evResume, next: NodeResuming, actions: []action{doResume}},
		{name: "verifying-failed-resumes", rec: rec(NodeVerifying), ev: nodeEvent{kind: evtFailed, err: boom},
			event: evAbort, next: NodeResuming, check: failure("disk on fire"), actions: []action{doResume}},
		{name: "verifying-stopped-resumes", rec: rec(NodeVerifying), ev: nodeEvent{kind: evtStopped, reason: "stopped"},
			event: evAbort, next: NodeResuming, check: skip("stopped"), actions: []action{doResume}},
		// resuming
		{name: "resuming-done-fails-back", rules: nodeRules{failback: true}, rec: rec(NodeResuming), ev: nodeEvent{kind: evtDone},
			event: evFailback, next: NodeFailingBack, actions: []action{doFailback}},
		{name: "resuming-done-no-failback", rec: rec(NodeResuming), ev: nodeEvent{kind: evtDone},
			event: evFailback, next: NodeFailingBack},
		{name: "resuming-done-after-a-failure-fails", rec: rec(NodeResuming, func(r *runs.NodeRecord) { r.Failure = "drain failed" }), ev: nodeEvent{kind: evtDone},
			event: evFail, next: NodeFailed, check: failure("drain failed")},
		{name: "resuming-done-after-a-stop-skips", rec: rec(NodeResuming, func(r *runs.NodeRecord) { r.SkipReason = "stopped" }), ev: nodeEvent{kind: evtDone},
			event: evSkip, next: NodeSkipped, check: skip("stopped")},
		{name: "resuming-left-paused-fails", rec: rec(NodeResuming), ev: nodeEvent{kind: evtLeftPaused, reason: "node is down"},
			event: evFail, next: NodeFailed, check: func(t *testing.T, r runs.NodeRecord) {
				if r.LeftPaused != "node is down" || r.Failure != "not resumed: node is down" {
					t.Errorf("left paused %q, failure %q", r.LeftPaused, r.Failure)
				}
			}},
		{name: "resuming-left-paused-keeps-the-first-failure", rec: rec(NodeResuming, func(r *runs.NodeRecord) { r.Failure = "drain failed" }), ev: nodeEvent{kind: evtLeftPaused, reason: "node is down"},
			event: evFail, next: NodeFailed, check: func(t *testing.T, r runs.NodeRecord) {
				if r.LeftPaused != "node is down" || r.Failure != "drain failed" {
					t.Errorf("left paused %q, failure %q", r.LeftPaused, r.Failure)
				}
			}},
		{name: "resuming-left-paused-after-a-stop-skips", rec: rec(NodeResuming, func(r *runs.NodeRecord) { r.SkipReason = "stopped" }), ev: nodeEvent{kind: evtLeftPaused, reason: "node is down"},
			event: evSkip, next: NodeSkipped, check: func(t *testing.T, r runs.NodeRecord) {
				if r.LeftPaused != "node is down" || r.Failure != "" {
					t.Errorf("left paused %q, failure %q", r.LeftPaused, r.Failure)
				}
			}},
		{name: "resuming-failed-notes-and-fails-back", rules: nodeRules{failback: true}, rec: rec(NodeResuming), ev: nodeEvent{kind: evtFailed, err: boom},
			event: evFailback, next: NodeFailingBack, check: errorsNoted("disk on fire"), actions: []action{doFailback}},
		{name: "resuming-stopped-fails-back", rec: rec(NodeResuming), ev: nodeEvent{kind: evtStopped, reason: "stopped"},
			event: evFailback, next: NodeFailingBack, check: errorsNoted()},
		// failing back
		{name: "failing-back-done-finishes", rec: rec(NodeFailingBack), ev: nodeEvent{kind: evtDone},
			event: evFinish, next: NodeDone},
		{name: "failing-back-failed-notes-and-finishes", rec: rec(NodeFailingBack), ev: nodeEvent{kind: evtFailed, err: boom},
			event: evFinish, next: NodeDone, check: errorsNoted("disk on fire")},
		{name: "failing-back-stopped-finishes", rec: rec(NodeFailingBack), ev: nodeEvent{kind: evtStopped, reason: "stopped"},
			event: evFinish, next: NodeDone, check: errorsNoted()},
	}
	seen := map[string]bool{}
	for _, tc := range legal {
		seen[tc.rec.State+"/"+tc.ev.kind.String()] = true
		t.Run(tc.name, func(t *testing.T) {
			before := fmt.Sprintf("%+v", tc.rec)
			d, err := tc.rules.step(tc.rec, tc.ev)
			if err != nil {
				t.Fatalf("step = %v, want %s to %s", err, tc.event, tc.next)
			}
			if d.event != tc.event || d.next != tc.next {
				t.Errorf("step = %s to %s, want %s to %s", d.event, d.next, tc.event, tc.next)
			}
			if !slices.Equal(d.actions, tc.actions) {
				t.Errorf("actions = %v, want %v", d.actions, tc.actions)
			}
			if after := fmt.Sprintf("%+v", tc.rec); after != before {
				t.Errorf("step changed its input record: %s, was %s", after, before)
			}
			// The table the live machine fires must take the same move.
			m := newNodeMachine(tc.rec.State)
			if got, err := m.fire(d.event, nil); err != nil || got != d.next {
				t.Errorf("the node's fsm fires %s to %q, %v; the decision says %s", d.event, got, err, d.next)
			}
			r := tc.rec
			if d.set != nil {
				d.set(&r)
			}
			if tc.check != nil {
				tc.check(t, r)
			}
		})
	}

	// Every other pair is illegal: nothing is decided and nothing is written.
	states := []string{NodeQueued, NodePausing, NodeDraining, NodePatching, NodeRebooting, NodeVerifying, NodeResuming, NodeFailingBack, NodeDone, NodeFailed, NodeSkipped}
	kinds := []eventKind{evtDone, evtFailed, evtStopped, evtSkipped, evtLeftPaused, eventKind(99)}
	illegal := 0
	for _, s := range states {
		for _, k := range kinds {
			if seen[s+"/"+k.String()] {
				continue
			}
			illegal++
			t.Run(fmt.Sprintf("%s-%s-illegal", s, k), func(t *testing.T) {
				d, err := rules.step(runs.NodeRecord{State: s}, nodeEvent{kind: k, err: boom, reason: "r"})
				if !errors.Is(err, ErrInvalidTransition) || d.event != "" || d.set != nil {
					t.Errorf("step = %+v, %v; want ErrInvalidTransition and no decision", d, err)
				}
			})
		}
	}
	if want := len(states)*len(kinds) - len(seen); illegal != want || len(seen) != 26 {
		t.Errorf("%d legal (state, event) pairs and %d illegal ones; want 26 and %d", len(seen), illegal, want)
	}
}

// TestNodeRules_Actions: what a state does depends on the record (a reboot already
// done is not repeated; nothing installed needs no post-reboot check) and on the
// policy (hooks, failback).
func TestNodeRules_Actions(t *testing.T) {
	for _, tc := range []struct {
		name  string
		rules nodeRules
		rec   runs.NodeRecord
		want  []action
	}{
		{"queued", nodeRules{}, runs.NodeRecord{State: NodeQueued}, []action{doCheck}},
		{"queued-with-pre-hook", nodeRules{preHook: true}, runs.NodeRecord{State: NodeQueued}, []action{doCheck, doPreHook}},
		{"rebooting-already-rebooted-only-waits", nodeRules{}, runs.NodeRecord{State: NodeRebooting, Rebooted: true}, []action{doWaitBack}},
		{"verifying-restarted-vms-not-again", nodeRules{}, runs.NodeRecord{State: NodeVerifying, VMsLeft: []runs.VMLeft{{VM: "db", Action: "shutdown", Restarted: true}, {VM: "x", Action: "skipped"}}}, []action{doCheckReady}},
		{"failing-back-none", nodeRules{}, runs.NodeRecord{State: NodeFailingBack}, nil},
		{"done-nothing", nodeRules{failback: true, preHook: true, postHook: true}, runs.NodeRecord{State: NodeDone}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.rules.actions(tc.rec); !slices.Equal(got, tc.want) {
				t.Errorf("actions = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestNodeRules_FailedNeedsCause: a failure without its cause would leave a failed
// node with an empty reason; the machine refuses it.
func TestNodeRules_FailedNeedsCause(t *testing.T) {
	if _, err := (nodeRules{}).step(runs.NodeRecord{State: NodeDraining}, nodeEvent{kind: evtFailed}); err == nil {
		t.Error("step took a failed event without a cause")
	}
}
