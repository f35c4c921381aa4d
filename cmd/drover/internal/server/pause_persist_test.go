package server

import (
	"net/http"
	"testing"
	"testing/synctest"

	"github.com/droverhq/drover/orchestrator/schedule"
)

// TestServer_PauseSwitchSurvivesRestart: a schedule paused through the API stays
// paused after the daemon restarts (a reboot of its host must not re-arm it), and
// an unpause survives a restart too.
func TestServer_PauseSwitchSurvivesRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		opts := envOptions{schedule: &schedule.Spec{Cron: "0 3 * * *"}}
		e := newEnv(t, opts)
		if rec := e.do("POST", "/api/v1/clusters/demo/pause", operatorSecret, ""); rec.Code != http.StatusOK {
			t.Fatalf("pause: %d %s", rec.Code, rec.Body.String())
		}
		e.open(opts) // the daemon restarts on the same state file
		if info := decode[ClusterInfo](t, e.do("GET", "/api/v1/clusters/demo", viewerSecret, "")); !info.Paused || !info.NextRun.IsZero() {
			t.Errorf("after a restart: paused=%v next run %s, want still paused", info.Paused, info.NextRun)
		}
		if rec := e.do("POST", "/api/v1/clusters/demo/unpause", operatorSecret, ""); rec.Code != http.StatusOK {
			t.Fatalf("unpause: %d %s", rec.Code, rec.Body.String())
		}
		e.open(opts)
		if info := decode[ClusterInfo](t, e.do("GET", "/api/v1/clusters/demo", viewerSecret, "")); info.Paused {
			t.Error("after unpause and a restart: paused, want armed")
		}
		e.s.Shutdown()
	})
}
