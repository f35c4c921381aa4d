package dashboard

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/droverhq/drover/cmd/drover/internal/wire"
	"github.com/droverhq/drover/orchestrator"
	"github.com/droverhq/drover/runs"
)

// runState is GET /runs/{id}/state: the run so far, which the run page draws and
// then keeps up to date from the event stream. Times on the axis are cluster
// time (the simulator's may run faster than the wall clock): Origin is the axis'
// zero, Now the cluster's time now and Rate cluster seconds per wall second, so the
// page can move "now" between events.
type runState struct {
	Run       runInfo   `json:"run"`
	Executing bool      `json:"executing"`
	Operator  bool      `json:"operator"`
	Origin    time.Time `json:"origin"`
	Now       time.Time `json:"now"`
	Rate      float64   `json:"rate"`
	PlanETA   float64   `json:"plan_eta_s"`
	Plan      []planRow `json:"plan"`
	Nodes     []lane    `json:"nodes"`
	Log       []logLine `json:"log"`
}

type runInfo struct {
	ID        string     `json:"id"`
	Cluster   string     `json:"cluster"`
	State     runs.State `json:"state"`
	Approved  bool       `json:"approved"`
	Error     string     `json:"error,omitempty"`
	Resumes   int        `json:"resumes"`
	StartedAt time.Time  `json:"started_at"`
}

// planRow is a node's predicted place on the axis, in seconds from Origin.
type planRow struct {
	Node  string  `json:"node"`
	Start float64 `json:"start_s"`
	End   float64 `json:"end_s"`
}

// lane is a node's states so far.
type lane struct {
	Name     string    `json:"name"`
	State    string    `json:"state"`
	Failure  string    `json:"failure,omitempty"`
	Segments []segment `json:"segments"`
	// End is when the node finished (zero while it has not).
	End time.Time `json:"end,omitzero"`
}

// segment is one state of a node; End is zero while it lasts.
type segment struct {
	State string    `json:"state"`
	Start time.Time `json:"start"`
	End   time.Time `json:"end,omitzero"`
}

type logLine struct {
	At    time.Time `json:"at"`
	Level string    `json:"level"`
	Text  string    `json:"text"`
}

// logKept is how many journal entries the page starts with.
const logKept = 300

func (d *Dashboard) handleRunState(w http.ResponseWriter, r *http.Request, u user) {
	// The API decides whether the run exists and whether this user may read it.
	var rep struct {
		ID string `json:"id"`
	}
	if err := d.call(r, u, "GET", apiPath("/api/v1/runs/%s", r.PathValue("id")), nil, &rep); err != nil {
		http.Error(w, err.Error(), errorStatus(err))
		return
	}
	run, err := d.cfg.Store.Run(rep.ID)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	nodes, err := d.cfg.Store.Nodes(run.ID)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	journal, err := d.cfg.Store.Journal(run.ID)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	st := buildState(run, nodes, journal)
	st.Operator = u.Operator
	var ci wire.ClusterInfo
	if err := d.call(r, u, "GET", apiPath("/api/v1/clusters/%s", run.Cluster), nil, &ci); err == nil {
		st.Executing = ci.ActiveRun == run.ID
	}
	st.Rate = 1
	if d.cfg.Clock != nil && !run.State.Terminal() {
		if c := d.cfg.Clock(run.Cluster); c != nil {
			st.Now = c.Now()
			if wall := c.WallDuration(time.Hour); wall > 0 {
				st.Rate = float64(time.Hour) / float64(wall)
			}
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(st)
}

// buildState is the pure part of the state: lanes from the node records, the
// plan's rows, and the journal as log lines. Now is the last thing known.
func buildState(run runs.Run, nodes []runs.NodeRecord, journal []runs.Entry) runState {
	st := runState{
		Run:  runInfo{ID: run.ID, Cluster: run.Cluster, State: run.State, Approved: run.Approved, Error: run.Error, Resumes: run.Resumes, StartedAt: run.StartedAt},
		Plan: []planRow{}, Nodes: []lane{}, Log: []logLine{},
	}
	var plan orchestrator.RunPlan
	if len(run.Plan) > 0 && json.Unmarshal(run.Plan, &plan) == nil {
		st.Origin = plan.At
		st.PlanETA = plan.ETA.Seconds()
		for _, n := range plan.Nodes {
			st.Plan = append(st.Plan, planRow{Node: n.Node, Start: n.Start.Seconds(), End: n.End.Seconds()})
		}
	}
	latest := st.Origin
	seen := func(t time.Time) {
		if t.After(latest) {
			latest = t
		}
		if st.Origin.IsZero() || (!t.IsZero() && t.Before(st.Origin)) {
			st.Origin = t
		}
	}
	for _, n := range nodes {
		l := lane{Name: n.Name, State: n.State, Failure: n.Failure, Segments: []segment{}}
		terminal := orchestrator.NodeTerminal(n.State)
		for i, p := range n.Phases {
			s := segment{State: p.Name, Start: p.Start}
			seen(p.Start)
			if i < len(n.Phases)-1 || terminal {
				s.End = p.Start.Add(time.Duration(p.Seconds * float64(time.Second)))
				seen(s.End)
			}
			l.Segments = append(l.Segments, s)
		}
		if terminal && n.State != orchestrator.NodeSkipped {
			l.End = n.FinishedAt
			if k := len(l.Segments); k > 0 && !l.Segments[k-1].End.IsZero() {
				l.End = l.Segments[k-1].End
			}
		}
		st.Nodes = append(st.Nodes, l)
	}
	if len(journal) > logKept {
		journal = journal[len(journal)-logKept:]
	}
	for _, e := range journal {
		seen(e.At)
		st.Log = append(st.Log, logLine{At: e.At, Level: entryLevel(e), Text: entryText(e)})
	}
	st.Now = latest
	return st
}

func entryLevel(e runs.Entry) string {
	if e.Status == runs.StatusFailed {
		return "error"
	}
	return "info"
}

// entryText is a journal entry as a line of the event log.
func entryText(e runs.Entry) string {
	var b strings.Builder
	if e.Node != "" {
		b.WriteString(e.Node + ": ")
	}
	b.WriteString(strings.ReplaceAll(string(e.Op), "_", " "))
	if e.Status != runs.StatusEvent {
		b.WriteString(" " + string(e.Status))
	}
	if e.VM != "" {
		b.WriteString(" " + e.VM)
	}
	if e.From != "" || e.To != "" {
		b.WriteString(" " + e.From + " → " + e.To)
	}
	if e.Detail != "" {
		b.WriteString(": " + e.Detail)
	}
	return b.String()
}
