package orchestrator

import (
	"errors"
	"fmt"
	"testing"
)

// TestNodeMachine_Transitions fires every event in every state. The legal moves are
// written out here, apart from nodeEvents, so that a change of the table shows up as
// a failing row: each legal move writes its record (once, with the new state) and
// moves; each illegal one writes nothing, stays, and says ErrInvalidTransition.
func TestNodeMachine_Transitions(t *testing.T) {
	legal := map[string]map[string]string{
		NodeQueued:      {evPause: NodePausing, evFail: NodeFailed, evSkip: NodeSkipped},
		NodePausing:     {evDrain: NodeDraining, evAbort: NodeResuming},
		NodeDraining:    {evPatch: NodePatching, evAbort: NodeResuming},
		NodePatching:    {evReboot: NodeRebooting, evVerify: NodeVerifying, evAbort: NodeResuming},
		NodeRebooting:   {evVerify: NodeVerifying, evAbort: NodeResuming},
		NodeVerifying:   {evResume: NodeResuming, evAbort: NodeResuming},
		NodeResuming:    {evFailback: NodeFailingBack, evFail: NodeFailed, evSkip: NodeSkipped},
		NodeFailingBack: {evFinish: NodeDone},
		NodeDone:        {},
		NodeFailed:      {},
		NodeSkipped:     {},
	}
	events := []string{evPause, evDrain, evPatch, evReboot, evVerify, evResume, evAbort, evFailback, evFinish, evFail, evSkip}
	for state, moves := range legal {
		for _, ev := range events {
			want, ok := moves[ev]
			name := fmt.Sprintf("%s-%s-illegal", state, ev)
			if ok {
				name = fmt.Sprintf("%s-%s-to-%s", state, ev, want)
			}
			t.Run(name, func(t *testing.T) {
				m := newNodeMachine(state)
				var wrote []string
				got, err := m.fire(ev, func(dst string) error { wrote = append(wrote, dst); return nil })
				if ok {
					if err != nil || got != want || m.current() != want || fmt.Sprint(wrote) != fmt.Sprint([]string{want}) {
						t.Errorf("fire = %q, %v; machine in %q; writes %v; want %q with one write", got, err, m.current(), wrote, want)
					}
					return
				}
				if !errors.Is(err, ErrInvalidTransition) || m.current() != state || len(wrote) > 0 {
					t.Errorf("fire = %q, %v; machine in %q; writes %v; want ErrInvalidTransition, no write, still %q", got, err, m.current(), wrote, state)
				}
			})
		}
	}
}

// TestNodeMachine_FailedWriteDoesNotMove: a transition whose record write fails does
// not happen, and the machine still works afterwards.
func TestNodeMachine_FailedWriteDoesNotMove(t *testing.T) {
	m := newNodeMachine(NodeQueued)
	boom := errors.New("disk full")
	if _, err := m.fire(evPause, func(string) error { return boom }); !errors.Is(err, boom) || m.current() != NodeQueued {
		t.Fatalf("fire with a failing write = %v, machine in %q; want the write's error, still queued", err, m.current())
	}
	if got, err := m.fire(evPause, nil); err != nil || got != NodePausing {
		t.Errorf("fire after a failed write = %q, %v; want pausing", got, err)
	}
}
