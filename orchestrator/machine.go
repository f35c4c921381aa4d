package orchestrator

import (
	"errors"
	"fmt"

	"github.com/droverhq/drover/runs"
)

// This file is the node machine's decisions, as one pure function (raft's Step):
// given a node's record and what its state's actions came to (a nodeEvent), step
// decides the machine event, the next state, the record change written with the move,
// and the actions of the next state. It reads no clock, driver or store: processNode
// performs the actions (perform, I/O only) and the executor writes each decision
// (transition), so every decision is testable as a table (machine_test.go).

// eventKind is what a state's actions came to.
type eventKind int

const (
	// evtDone: the state's actions succeeded.
	evtDone eventKind = iota + 1
	// evtFailed: the node failed (a check, an action, or a safety guard); err says why.
	evtFailed
	// evtStopped: the operator stopped the run before the node was patched.
	evtStopped
	// evtSkipped: queued only, the node is not to be touched at its turn.
	evtSkipped
	// evtLeftPaused: resuming only, the node cannot be resumed and stays paused.
	evtLeftPaused
)

func (k eventKind) String() string {
	switch k {
	case evtDone:
		return "done"
	case evtFailed:
		return "failed"
	case evtStopped:
		return "stopped"
	case evtSkipped:
		return "skipped"
	case evtLeftPaused:
		return "left-paused"
	}
	return fmt.Sprintf("event(%d)", int(k))
}

// nodeEvent is all the node machine learns from outside: what the actions of the
// node's state came to, with the observations the decision needs.
type nodeEvent struct {
	kind eventKind
	// err: evtFailed's cause.
	err error
	// reason: evtStopped's and evtSkipped's skip reason, evtLeftPaused's cause.
	reason string
	// bootID: evtDone of queued, the node's boot ID before it is touched.
	bootID string
	// found: evtDone of patching, updates found installed by an earlier process
	// whose outcome was lost.
	found []runs.Update
}

// action is one thing the executor does for a node in a state; perform runs a
// state's actions in order and stops at the first that ends the state otherwise.
type action string

const (
	doCheck        action = "check"         // queued: the node may be taken out (ready, not paused by another, VMs can leave, reserve holds)
	doPreHook      action = "pre_hook"      // queued: policy.pre_hook
	doPause        action = "pause"         // pausing: PauseNode with the run's mark
	doDrain        action = "drain"         // draining: every VM moves away or is left per policy
	doInstall      action = "install"       // patching: the updater's install, retried
	doReboot       action = "reboot"        // rebooting: the guard (no VM state left), then RebootNode once
	doWaitBack     action = "wait_back"     // rebooting: ready with evidence of the reboot
	doCheckReady   action = "check_ready"   // verifying: the node answers ready
	doCheckUpdates action = "check_updates" // verifying: nothing installed is still pending
	doRestartLeft  action = "restart_left"  // verifying, resuming: start the VMs shut down for the patch
	doPostHook     action = "post_hook"     // verifying: policy.post_hook
	doResume       action = "resume"        // resuming: lift our pause, never another's
	doFailback     action = "failback"      // failing_back: the drained VMs come home
)

// nodeRules are the run's settings the node machine's decisions depend on.
type nodeRules struct {
	force    bool // policy.force: reboot even when no update asks for it
	failback bool // policy.failback is not none
	preHook  bool // policy.pre_hook is set
	postHook bool // policy.post_hook is set
	evacuate bool // drover evacuate: a drained node is left paused for good
}

// decision is what step decided: fire event (the move to next, checked and driven by
// the node's looplab/fsm), write set with the move, then perform actions.
type decision struct {
	event   string
	next    string
	set     func(*runs.NodeRecord) // nil: no change besides the state and its phase
	actions []action
}

// nodeTable is the transition table (nodeEvents) as a lookup, for step's decisions;
// the node's fsm checks the same table when the decision is fired.
var nodeTable = func() map[string]map[string]string {
	t := map[string]map[string]string{}
	for _, ev := range nodeEvents {
		for _, src := range ev.Src {
			if t[src] == nil {
				t[src] = map[string]string{}
			}
			t[src][ev.Name] = ev.Dst
		}
	}
	return t
}()

// step is the node machine. It returns ErrInvalidTransition for an event its state
// cannot take; the record comes from disk, so that is an error, not a panic.
func (r nodeRules) step(rec runs.NodeRecord, ev nodeEvent) (decision, error) {
	event, set, err := r.decide(rec, ev)
	if err != nil {
		return decision{}, err
	}
	next, ok := nodeTable[rec.State][event]
	if !ok {
		return decision{}, fmt.Errorf("node %s --%s->: %w", rec.State, event, ErrInvalidTransition)
	}
	probe := rec
	probe.State = next
	if set != nil {
		set(&probe)
	}
	return decision{event: event, next: next, set: set, actions: r.actions(probe)}, nil
}

// decide picks the machine event for ev in rec's state, and the record change.
func (r nodeRules) decide(rec runs.NodeRecord, ev nodeEvent) (string, func(*runs.NodeRecord), error) {
	invalid := fmt.Errorf("node %s cannot take a %s event: %w", rec.State, ev.kind, ErrInvalidTransition)
	if NodeTerminal(rec.State) {
		return "", nil, invalid
	}
	switch ev.kind {
	case evtFailed:
		if ev.err == nil {
			return "", nil, errors.New("node machine: a failed event without its cause")
		}
		msg := ev.err.Error()
		return r.abort(rec, func(r *runs.NodeRecord) { r.Failure = msg }, msg)
	case evtStopped:
		reason := ev.reason
		return r.abort(rec, func(r *runs.NodeRecord) { r.SkipReason = reason }, "")
	case evtSkipped:
		if rec.State != NodeQueued {
			return "", nil, invalid
		}
		reason := ev.reason
		return evSkip, func(r *runs.NodeRecord) { r.SkipReason = reason }, nil
	case evtLeftPaused:
		if rec.State != NodeResuming {
			return "", nil, invalid
		}
		reason := ev.reason
		set := func(r *runs.NodeRecord) { r.LeftPaused = reason }
		switch {
		case rec.Failure != "":
			return evFail, set, nil
		case rec.SkipReason != "":
			return evSkip, set, nil
		}
		return evFail, func(r *runs.NodeRecord) { r.LeftPaused, r.Failure = reason, "not resumed: "+reason }, nil
	case evtDone:
		return r.done(rec, ev)
	}
	return "", nil, invalid
}

// abort: something ended the node early. A node never touched fails or is skipped
// at once; one in maintenance is resumed first; a failure after the node is back
// does not undo its patch (it is noted in Errors, and the node goes on).
func (nodeRules) abort(rec runs.NodeRecord, set func(*runs.NodeRecord), failure string) (string, func(*runs.NodeRecord), error) {
	switch rec.State {
	case NodeQueued:
		if failure != "" {
			return evFail, set, nil
		}
		return evSkip, set, nil
	case NodeResuming, NodeFailingBack:
		var note func(*runs.NodeRecord)
		if failure != "" {
			note = func(r *runs.NodeRecord) { r.Errors = append(r.Errors, failure) }
		}
		if rec.State == NodeResuming {
			return evFailback, note, nil
		}
		return evFinish, note, nil
	}
	return evAbort, set, nil
}

// done: the state's actions succeeded; the next state follows.
func (r nodeRules) done(rec runs.NodeRecord, ev nodeEvent) (string, func(*runs.NodeRecord), error) {
	switch rec.State {
	case NodeQueued:
		boot := ev.bootID
		return evPause, func(r *runs.NodeRecord) { r.BootIDBefore = boot; r.Attempts++ }, nil
	case NodePausing:
		return evDrain, nil, nil
	case NodeDraining:
		if r.evacuate {
			return evLeave, func(r *runs.NodeRecord) { r.LeftPaused = evacuatedNote }, nil
		}
		return evPatch, nil, nil
	case NodePatching:
		// A reboot when an update asks for it, when updates were found installed by
		// an earlier process (what they asked is lost with its outcome), or forced.
		reboot := rec.RebootRequired || len(ev.found) > 0 || r.force
		found := ev.found
		set := func(r *runs.NodeRecord) {
			r.Installed = append(r.Installed, found...)
			r.RebootRequired = reboot
		}
		if reboot {
			return evReboot, set, nil
		}
		return evVerify, set, nil
	case NodeRebooting:
		return evVerify, nil, nil
	case NodeVerifying:
		return evResume, nil, nil
	case NodeResuming:
		switch {
		case rec.Failure != "":
			return evFail, nil, nil
		case rec.SkipReason != "":
			return evSkip, nil, nil
		}
		return evFailback, nil, nil
	case NodeFailingBack:
		return evFinish, nil, nil
	}
	return "", nil, fmt.Errorf("node machine: unknown state %q: %w", rec.State, ErrInvalidTransition)
}

// actions are what the executor does for a node in rec's state, in order.
func (r nodeRules) actions(rec runs.NodeRecord) []action {
	var out []action
	switch rec.State {
	case NodeQueued:
		out = append(out, doCheck)
		if r.preHook {
			out = append(out, doPreHook)
		}
	case NodePausing:
		out = append(out, doPause)
	case NodeDraining:
		out = append(out, doDrain)
	case NodePatching:
		out = append(out, doInstall)
	case NodeRebooting:
		if !rec.Rebooted {
			out = append(out, doReboot)
		}
		out = append(out, doWaitBack)
	case NodeVerifying:
		out = append(out, doCheckReady)
		if len(rec.Installed) > 0 && rec.RebootRequired {
			out = append(out, doCheckUpdates)
		}
		if leftToRestart(rec) {
			out = append(out, doRestartLeft)
		}
		if r.postHook {
			out = append(out, doPostHook)
		}
	case NodeResuming:
		out = append(out, doResume)
		if leftToRestart(rec) {
			out = append(out, doRestartLeft)
		}
	case NodeFailingBack:
		if r.failback {
			out = append(out, doFailback)
		}
	}
	return out
}

// leftToRestart reports whether a VM shut down for the patch is not started yet.
func leftToRestart(rec runs.NodeRecord) bool {
	for _, l := range rec.VMsLeft {
		if l.Action == "shutdown" && !l.Restarted {
			return true
		}
	}
	return false
}
