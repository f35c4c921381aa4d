package server

import (
	"fmt"
	"net/http"

	"github.com/droverhq/drover/runs"
)

// The run actions of the API: stop, resume and approve.

func (s *Server) handleStop(w http.ResponseWriter, r *http.Request) {
	if err := decodeRequest(r, &emptyRequest{}); err != nil {
		writeFailure(w, err)
		return
	}
	run, c, ok := s.runOf(w, r)
	if !ok {
		return
	}
	if run.State.Terminal() {
		writeError(w, http.StatusConflict, ErrorBody{Error: fmt.Sprintf("run %s has already ended (%s)", run.ID, run.State), RunID: run.ID})
		return
	}
	c.eng.Stop(run.ID)
	if c.activeRun() != run.ID {
		// Not executing here (interrupted, or parked for approval): execute it so the
		// stop takes effect and the nodes are left explicit.
		if err := s.execute(c, run.ID); err != nil {
			writeFailure(w, err)
			return
		}
	}
	writeJSON(w, http.StatusAccepted, RunAction{ID: run.ID, Cluster: run.Cluster, State: run.State, Action: "stopping"})
}

func (s *Server) handleResume(w http.ResponseWriter, r *http.Request) {
	if err := decodeRequest(r, &emptyRequest{}); err != nil {
		writeFailure(w, err)
		return
	}
	run, c, ok := s.runOf(w, r)
	if !ok {
		return
	}
	switch {
	case run.State.Terminal():
		writeError(w, http.StatusConflict, ErrorBody{Error: fmt.Sprintf("run %s has already ended (%s); nothing to resume", run.ID, run.State), RunID: run.ID})
		return
	case run.State == runs.StateWaitingApproval && !run.Approved:
		writeError(w, http.StatusConflict, ErrorBody{Error: fmt.Sprintf("run %s waits for approval: approve it to continue", run.ID), RunID: run.ID})
		return
	case c.activeRun() == run.ID:
		writeError(w, http.StatusConflict, ErrorBody{Error: fmt.Sprintf("run %s is already running", run.ID), RunID: run.ID})
		return
	}
	if err := s.execute(c, run.ID); err != nil {
		writeFailure(w, err)
		return
	}
	writeJSON(w, http.StatusAccepted, RunAction{ID: run.ID, Cluster: run.Cluster, State: runs.StateRunning, Action: "resumed"})
}

// approver is the engine's approval of a canary run.
type approver interface {
	Approve(runID string) error
}

func (s *Server) handleApprove(w http.ResponseWriter, r *http.Request) {
	if err := decodeRequest(r, &emptyRequest{}); err != nil {
		writeFailure(w, err)
		return
	}
	run, c, ok := s.runOf(w, r)
	if !ok {
		return
	}
	a, ok := any(c.eng).(approver)
	if !ok {
		writeError(w, http.StatusNotImplemented, ErrorBody{Error: "this build cannot approve runs"})
		return
	}
	if run.State.Terminal() {
		writeError(w, http.StatusConflict, ErrorBody{Error: fmt.Sprintf("run %s has ended (%s): nothing to approve", run.ID, run.State), RunID: run.ID})
		return
	}
	if err := s.checkStoredPolicy(c, run.ID); err != nil {
		writeFailure(w, err)
		return
	}
	if err := a.Approve(run.ID); err != nil {
		writeFailure(w, err)
		return
	}
	action := "approved"
	if c.activeRun() != run.ID {
		if err := s.execute(c, run.ID); err != nil {
			writeFailure(w, err)
			return
		}
		action = "approved and resumed"
	}
	writeJSON(w, http.StatusAccepted, RunAction{ID: run.ID, Cluster: run.Cluster, State: runs.StateRunning, Action: action})
}
