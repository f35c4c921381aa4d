package server

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/droverhq/drover/ha"
)

// Leadership is what the daemon needs of the HA election (ha.Elector): only the
// leader runs the clusters and answers mutations; every replica serves reads.
type Leadership interface {
	// Campaign blocks until this replica leads (or ctx ends).
	Campaign(ctx context.Context) error
	IsLeader() bool
	Leader(ctx context.Context) (ha.Info, error)
	Status(ctx context.Context) (ha.Status, error)
}

// FollowerError is the answer of a follower to a mutating call: it does not
// forward it (a forwarded stop or start could land on a leader that is itself
// being deposed); it names the leader, and the client sends the call there.
type FollowerError struct {
	Error   string `json:"error"`
	Replica string `json:"replica"`
	Leader  string `json:"leader,omitempty"`
	// LeaderAPI is the leader's API URL, also in the X-Drover-Leader header.
	LeaderAPI string `json:"leader_api,omitempty"`
}

// followerGate refuses mutating calls on a replica that does not lead now.
func (s *Server) followerGate(w http.ResponseWriter, r *http.Request) bool {
	if s.cfg.HA == nil || r.Method == http.MethodGet || r.Method == http.MethodHead || s.cfg.HA.IsLeader() {
		return false
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	st, _ := s.cfg.HA.Status(ctx)
	body := FollowerError{Replica: st.Replica}
	if l, err := s.cfg.HA.Leader(ctx); err == nil {
		body.Leader, body.LeaderAPI = l.Replica, l.API
		body.Error = fmt.Sprintf("replica %s is a follower: send %s %s to the leader, %s at %s", st.Replica, r.Method, r.URL.Path, l.Replica, l.API)
		w.Header().Set("X-Drover-Leader", l.API)
	} else {
		body.Error = fmt.Sprintf("replica %s is a follower and no leader is elected at the moment: retry in a few seconds", st.Replica)
	}
	w.Header().Set("Retry-After", "2")
	writeJSON(w, http.StatusServiceUnavailable, body)
	return true
}

// handleHA is GET /api/v1/ha: the replicas, the leader, this replica's lease.
func (s *Server) handleHA(w http.ResponseWriter, r *http.Request) {
	if s.cfg.HA == nil {
		writeError(w, http.StatusNotFound, ErrorBody{Error: "this daemon runs without ha: (one process, a bbolt state file)"})
		return
	}
	st, err := s.cfg.HA.Status(r.Context())
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, ErrorBody{Error: err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// leadThenStart waits to be elected, then does what a single daemon does at
// start-up: resume the interrupted runs (the same reconcile path as after a
// restart) and start the schedules.
func (s *Server) leadThenStart(ctx context.Context) {
	if err := s.cfg.HA.Campaign(s.runCtx); err != nil {
		if s.runCtx.Err() == nil {
			s.log.Error("cannot become the leader", "error", err)
		}
		return
	}
	if s.runCtx.Err() != nil {
		return
	}
	s.log.Info("this replica leads: resuming interrupted runs and starting the schedules")
	s.startWork(ctx)
}
