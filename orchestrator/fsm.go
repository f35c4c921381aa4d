package orchestrator

import (
	"context"
	"errors"
	"fmt"

	"github.com/looplab/fsm"

	"github.com/droverhq/drover/runs"
)

// Node states. Each non-final state names the action in progress: a node in
// "draining" is being drained, and a resumed run repeats that (idempotent) action.
const (
	NodeQueued      = "queued"
	NodePausing     = "pausing"
	NodeDraining    = "draining"
	NodePatching    = "patching"
	NodeRebooting   = "rebooting"
	NodeVerifying   = "verifying"
	NodeResuming    = "resuming"
	NodeFailingBack = "failing_back"
	NodeDone        = "done"
	NodeFailed      = "failed"
	NodeSkipped     = "skipped"
)

// Node events.
const (
	evPause    = "pause"
	evDrain    = "drain"
	evPatch    = "patch"
	evReboot   = "reboot"
	evVerify   = "verify"
	evResume   = "resume"
	evAbort    = "abort" // something failed or the run was stopped: resume the node
	evFailback = "failback"
	evFinish   = "finish"
	evFail     = "fail"
	evSkip     = "skip"
	evLeave    = "leave_paused" // drover evacuate: drained, left paused for good
)

var nodeEvents = fsm.Events{
	{Name: evPause, Src: []string{NodeQueued}, Dst: NodePausing},
	{Name: evDrain, Src: []string{NodePausing}, Dst: NodeDraining},
	{Name: evPatch, Src: []string{NodeDraining}, Dst: NodePatching},
	{Name: evReboot, Src: []string{NodePatching}, Dst: NodeRebooting},
	{Name: evVerify, Src: []string{NodePatching, NodeRebooting}, Dst: NodeVerifying},
	{Name: evResume, Src: []string{NodeVerifying}, Dst: NodeResuming},
	{Name: evAbort, Src: []string{NodePausing, NodeDraining, NodePatching, NodeRebooting, NodeVerifying}, Dst: NodeResuming},
	{Name: evFailback, Src: []string{NodeResuming}, Dst: NodeFailingBack},
	{Name: evFinish, Src: []string{NodeFailingBack}, Dst: NodeDone},
	// A node fails from resuming (after it was resumed) or straight from queued
	// (a check failed before anything was touched).
	{Name: evFail, Src: []string{NodeQueued, NodeResuming}, Dst: NodeFailed},
	// A node is skipped before it is touched, or after it was resumed when the run
	// was stopped before the node was patched.
	{Name: evSkip, Src: []string{NodeQueued, NodeResuming}, Dst: NodeSkipped},
	{Name: evLeave, Src: []string{NodeDraining}, Dst: NodeDone},
}

// NodeTerminal reports whether a node state is final.
func NodeTerminal(state string) bool {
	return state == NodeDone || state == NodeFailed || state == NodeSkipped
}

// nodeInMaintenance reports whether a node in that state must not receive placements.
func nodeInMaintenance(state string) bool {
	switch state {
	case NodePausing, NodeDraining, NodePatching, NodeRebooting, NodeVerifying:
		return true
	}
	return false
}

// ErrInvalidTransition: the event is not allowed in the node's state. The state comes
// from disk, so this is an error to report, not a panic.
var ErrInvalidTransition = errors.New("invalid state transition")

// nodeMachine is one node's state machine for the life of a run's execution:
// looplab/fsm holds the transition table (nodeEvents) and the current state. A
// transition happens only if its record write succeeds: the write runs in the
// machine's before_event callback and cancels the event when it fails, so the
// machine, the record and the journal never disagree.
type nodeMachine struct{ m *fsm.FSM }

func newNodeMachine(state string) *nodeMachine {
	return &nodeMachine{m: fsm.NewFSM(state, nodeEvents, fsm.Callbacks{
		"before_event": func(_ context.Context, e *fsm.Event) {
			if len(e.Args) == 0 {
				return
			}
			if write, ok := e.Args[0].(func(dst string) error); ok {
				if err := write(e.Dst); err != nil {
					e.Cancel(err)
				}
			}
		},
	})}
}

// current is the node's state.
func (nm *nodeMachine) current() string { return nm.m.Current() }

// fire moves the machine by event, after write (may be nil) stored the move to the
// returned state. The context of Event only reaches the callbacks: a background one
// keeps an interrupted run from wedging the machine.
func (nm *nodeMachine) fire(event string, write func(dst string) error) (string, error) {
	from := nm.m.Current()
	if write == nil {
		write = func(string) error { return nil }
	}
	err := nm.m.Event(context.Background(), event, write)
	if ce, ok := errors.AsType[fsm.CanceledError](err); ok {
		return from, ce.Err
	}
	if err != nil {
		return from, fmt.Errorf("node %s --%s->: %w (%v)", from, event, ErrInvalidTransition, err)
	}
	return nm.m.Current(), nil
}

// Run events and transitions.
const (
	evRunWait    = "wait_approval"
	evRunApprove = "approve"
	evRunSucceed = "succeed"
	evRunPartial = "partially_fail"
	evRunFail    = "fail"
	evRunStop    = "stop"
)

var runEvents = fsm.Events{
	{Name: evRunWait, Src: []string{string(runs.StateRunning)}, Dst: string(runs.StateWaitingApproval)},
	{Name: evRunApprove, Src: []string{string(runs.StateWaitingApproval)}, Dst: string(runs.StateRunning)},
	{Name: evRunSucceed, Src: []string{string(runs.StateRunning)}, Dst: string(runs.StateSucceeded)},
	{Name: evRunPartial, Src: []string{string(runs.StateRunning)}, Dst: string(runs.StatePartiallyFailed)},
	{Name: evRunFail, Src: []string{string(runs.StateRunning), string(runs.StateWaitingApproval)}, Dst: string(runs.StateFailed)},
	{Name: evRunStop, Src: []string{string(runs.StateRunning), string(runs.StateWaitingApproval)}, Dst: string(runs.StateStopped)},
}

func nextRunState(state runs.State, event string) (runs.State, error) {
	m := fsm.NewFSM(string(state), runEvents, nil)
	if err := m.Event(context.Background(), event); err != nil {
		return state, fmt.Errorf("run %s --%s->: %w (%v)", state, event, ErrInvalidTransition, err)
	}
	return runs.State(m.Current()), nil
}
