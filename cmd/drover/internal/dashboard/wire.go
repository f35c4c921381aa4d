package dashboard

import (
	"time"

	"github.com/droverhq/drover/orchestrator"
	"github.com/droverhq/drover/orchestrator/schedule"
	"github.com/droverhq/drover/policies"
	"github.com/droverhq/drover/runs"
)

// The API's answers, as far as the dashboard reads them. They mirror the wire types
// of package server (which imports this package, so it cannot be imported here);
// JSON keeps them in step: an unknown field is ignored, a renamed one shows empty.

type clusterInfo struct {
	Name       string                `json:"name"`
	Driver     string                `json:"driver"`
	Schedule   string                `json:"schedule"`
	Paused     bool                  `json:"paused"`
	NextRun    time.Time             `json:"next_run"`
	WindowOpen bool                  `json:"window_open"`
	ActiveRun  string                `json:"active_run"`
	Windows    []policies.WindowSpec `json:"windows"`
}

type runSummary struct {
	ID         string     `json:"id"`
	Cluster    string     `json:"cluster"`
	State      runs.State `json:"state"`
	StartedAt  time.Time  `json:"started_at"`
	FinishedAt time.Time  `json:"finished_at"`
	Nodes      int        `json:"nodes"`
	Error      string     `json:"error"`
}

type preview struct {
	Cluster       string                `json:"cluster"`
	Order         []string              `json:"order"`
	Nodes         []runs.NodeRecord     `json:"nodes"`
	Plan          *orchestrator.RunPlan `json:"plan"`
	UnfinishedRun string                `json:"unfinished_run"`
	Predictions   map[string]struct {
		Prediction schedule.Prediction `json:"prediction"`
		Slot       schedule.Slot       `json:"slot"`
	} `json:"predictions"`
}

type runAction struct {
	ID     string `json:"id"`
	Action string `json:"action"`
}
