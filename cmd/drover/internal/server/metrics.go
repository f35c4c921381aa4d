package server

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/droverhq/drover/orchestrator"
	"github.com/droverhq/drover/runs"
)

// metrics are the daemon's Prometheus metrics, in a registry of its own (no global
// registry: two servers in one test process do not collide).
type metrics struct {
	reg         *prometheus.Registry
	phase       *prometheus.HistogramVec
	migrations  *prometheus.CounterVec
	failed      *prometheus.CounterVec
	migDuration *prometheus.HistogramVec
	bytes       *prometheus.CounterVec
	quarantined prometheus.Gauge
	handler     http.Handler
}

func newMetrics(s *Server) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		phase: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "drover_node_phase_duration_seconds",
			Help:    "Time nodes spent in each phase (draining, patching, rebooting, ...), in cluster time, observed when a node finishes.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 15), // 1 s .. ~4.5 h
		}, []string{"cluster", "phase"}),
		migrations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "drover_migrations_total",
			Help: "Live migrations that finished, by kind (drain, failback).",
		}, []string{"cluster", "kind"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "drover_migrations_failed_total",
			Help: "Live migration attempts that failed.",
		}, []string{"cluster"}),
		migDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "drover_migration_duration_seconds",
			Help:    "Duration of finished live migrations, in cluster time.",
			Buckets: prometheus.ExponentialBuckets(0.5, 2, 14), // 0.5 s .. ~68 min
		}, []string{"cluster"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "drover_migrated_bytes_total",
			Help: "Memory moved by finished live migrations, counted when their node finishes.",
		}, []string{"cluster"}),
		quarantined: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "drover_state_records_quarantined",
			Help: "Unreadable run records moved aside in the state file (see `drover state check`).",
		}),
	}
	m.reg.MustRegister(m.phase, m.migrations, m.failed, m.migDuration, m.bytes, m.quarantined, s.watch.gauge,
		&stateCollector{s: s}, &haCollector{s: s},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	m.handler = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
	return m
}

// observer feeds the event-driven metrics of one cluster; a node that finishes is
// read back from the store for its phases and bytes.
func (m *metrics) observer(cluster string, store *runs.Store) orchestrator.Observer {
	return orchestrator.ObserverFunc(func(ev orchestrator.Event) {
		switch ev.Kind {
		case orchestrator.EventNodeState:
			if orchestrator.NodeTerminal(ev.State) {
				if rec, err := nodeRecord(store, ev.RunID, ev.Node); err == nil {
					m.nodeFinished(cluster, rec)
				}
			}
		case orchestrator.EventMigrationDone:
			kind := "drain"
			if ev.Node != "" && ev.To == ev.Node {
				kind = "failback"
			}
			m.migrations.WithLabelValues(cluster, kind).Inc()
			m.migDuration.WithLabelValues(cluster).Observe(ev.Seconds)
		case orchestrator.EventMigrationFailed:
			m.failed.WithLabelValues(cluster).Inc()
		}
	})
}

// nodeFinished observes a finished node's phases and bytes moved.
func (m *metrics) nodeFinished(cluster string, rec runs.NodeRecord) {
	for _, p := range rec.Phases {
		if p.Seconds > 0 {
			m.phase.WithLabelValues(cluster, p.Name).Observe(p.Seconds)
		}
	}
	var mib float64
	for _, mg := range rec.Migrations {
		if mg.OK {
			mib += mg.TransferredMiB
		}
	}
	if mib > 0 {
		m.bytes.WithLabelValues(cluster).Add(mib * (1 << 20))
	}
}

// stateCollector reads the state file at scrape time: runs by state, the active
// run's progress, the next scheduled run.
type stateCollector struct{ s *Server }

var (
	descRuns = prometheus.NewDesc("drover_runs", "Runs in the state file, by cluster and state.", []string{"cluster", "state"}, nil)
	descProg = prometheus.NewDesc("drover_active_run_progress_ratio", "Share of the active run's nodes that are finished (done, failed or skipped); 0 without an active run.", []string{"cluster"}, nil)
	descAct  = prometheus.NewDesc("drover_active_run", "1 while the daemon executes a run of the cluster.", []string{"cluster"}, nil)
	descNext = prometheus.NewDesc("drover_next_run_timestamp_seconds", "Unix time of the next scheduled run; 0 when none is scheduled (no schedule, or paused).", []string{"cluster"}, nil)
	descUp   = prometheus.NewDesc("drover_state_file_readable", "1 when the last scrape could read the state file.", nil, nil)
)

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRuns, descProg, descAct, descNext, descUp} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	all, err := s.cfg.Store.Runs("")
	readable := 1.0
	if err != nil {
		readable = 0
	}
	counts := map[string]map[runs.State]int{}
	for _, name := range s.names {
		counts[name] = map[runs.State]int{}
		for _, st := range []runs.State{runs.StateRunning, runs.StateWaitingApproval, runs.StateSucceeded, runs.StatePartiallyFailed, runs.StateFailed, runs.StateStopped} {
			counts[name][st] = 0
		}
	}
	for _, r := range all {
		if counts[r.Cluster] == nil {
			counts[r.Cluster] = map[runs.State]int{}
		}
		counts[r.Cluster][r.State]++
	}
	for cl, byState := range counts {
		for st, n := range byState {
			ch <- prometheus.MustNewConstMetric(descRuns, prometheus.GaugeValue, float64(n), cl, string(st))
		}
	}
	for _, name := range s.names {
		cl := s.clusters[name]
		active := cl.activeRun()
		ratio, on := 0.0, 0.0
		if active != "" {
			on = 1
			if nodes, err := s.cfg.Store.Nodes(active); err == nil && len(nodes) > 0 {
				done := 0
				for _, n := range nodes {
					if orchestrator.NodeTerminal(n.State) {
						done++
					}
				}
				ratio = float64(done) / float64(len(nodes))
			} else if err != nil {
				readable = 0
			}
		}
		ch <- prometheus.MustNewConstMetric(descProg, prometheus.GaugeValue, ratio, name)
		ch <- prometheus.MustNewConstMetric(descAct, prometheus.GaugeValue, on, name)
		next := 0.0
		if t := cl.nextRun(); !t.IsZero() {
			next = float64(t.UnixNano()) / 1e9
		}
		ch <- prometheus.MustNewConstMetric(descNext, prometheus.GaugeValue, next, name)
	}
	ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, readable)
}

func nodeRecord(store *runs.Store, runID, node string) (runs.NodeRecord, error) {
	var rec runs.NodeRecord
	err := store.View(func(tx *runs.Tx) error {
		var err error
		rec, err = tx.Node(runID, node)
		return err
	})
	return rec, err
}
