package server

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

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

// haCollector exports the election's state at each scrape (one read of etcd).
type haCollector struct{ s *Server }

var (
	haLeaderDesc    = prometheus.NewDesc("drover_ha_is_leader", "1 while this replica is the leader (runs the clusters), 0 on a follower.", nil, nil)
	haReplicasDesc  = prometheus.NewDesc("drover_ha_replicas", "Replicas registered in etcd (with a live lease).", nil, nil)
	haTermDesc      = prometheus.NewDesc("drover_ha_term", "The current leadership term (one per election won).", nil, nil)
	haTakeoverDesc  = prometheus.NewDesc("drover_ha_takeovers", "Leadership terms after the first: takeovers by another replica.", nil, nil)
	haLeaseDesc     = prometheus.NewDesc("drover_ha_lease_expiry_timestamp_seconds", "When this replica's etcd lease ends unless renewed (Unix time, local clock).", nil, nil)
	haFencedDesc    = prometheus.NewDesc("drover_ha_fenced_writes_total", "Writes of this replica that etcd accepted under its leadership fence.", nil, nil)
	haRefusedDesc   = prometheus.NewDesc("drover_ha_refused_writes_total", "Writes of this replica refused because its leadership fence was stale (it had been deposed).", nil, nil)
	haReachableDesc = prometheus.NewDesc("drover_ha_etcd_reachable", "1 when the scrape could read the election from etcd.", nil, nil)
)

func (c *haCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{haLeaderDesc, haReplicasDesc, haTermDesc, haTakeoverDesc, haLeaseDesc, haFencedDesc, haRefusedDesc, haReachableDesc} {
		ch <- d
	}
}

func (c *haCollector) Collect(ch chan<- prometheus.Metric) {
	if c.s.cfg.HA == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, err := c.s.cfg.HA.Status(ctx)
	reachable, leader := 0.0, 0.0
	if err == nil {
		reachable = 1
	}
	if st.IsLeader {
		leader = 1
	}
	ch <- prometheus.MustNewConstMetric(haReachableDesc, prometheus.GaugeValue, reachable)
	ch <- prometheus.MustNewConstMetric(haLeaderDesc, prometheus.GaugeValue, leader)
	ch <- prometheus.MustNewConstMetric(haLeaseDesc, prometheus.GaugeValue, float64(st.LeaseExpiry.UnixMilli())/1000)
	ch <- prometheus.MustNewConstMetric(haFencedDesc, prometheus.CounterValue, float64(st.FencedWrites))
	ch <- prometheus.MustNewConstMetric(haRefusedDesc, prometheus.CounterValue, float64(st.RefusedWrites))
	if err == nil {
		ch <- prometheus.MustNewConstMetric(haReplicasDesc, prometheus.GaugeValue, float64(len(st.Replicas)))
		ch <- prometheus.MustNewConstMetric(haTermDesc, prometheus.GaugeValue, float64(st.Term))
		ch <- prometheus.MustNewConstMetric(haTakeoverDesc, prometheus.GaugeValue, float64(st.Takeovers))
	}
}
