package dashboard_test

import (
	"os"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/droverhq/drover/cmd/drover/internal/server"
	"github.com/droverhq/drover/orchestrator/schedule"
	"github.com/droverhq/drover/policies"
)

// TestDashboardShots writes the screenshots of `make dashboard-shots` for a run of
// the demo cluster into $DROVER_SHOTS_DIR: clusters.png, plan.png, run.png (mid-run,
// the third node draining), history.png and report.png (the run's HTML report), at
// 1440x900. Without the variable it does nothing: the other browser tests cover the
// pages.
func TestDashboardShots(t *testing.T) {
	if os.Getenv("DROVER_SHOTS_DIR") == "" {
		t.Skip("set DROVER_SHOTS_DIR (make dashboard-shots) to write the screenshots")
	}
	dir := outDir(t)
	b := newBrowser(t)
	// A schedule and a window, as a production cluster has them (the schedule's
	// next due time is days away: it starts nothing here).
	d := startDaemon(t, "demo", "../../../../testdata/clusters/demo.yaml", 6, nil, withCluster(func(cc *server.ClusterConfig) {
		sched, err := schedule.Parse(schedule.Spec{Days: []string{"tue"}, Weeks: []int{3}, At: "22:00", TZ: "Europe/Berlin"})
		if err != nil {
			t.Fatal(err)
		}
		specs := []policies.WindowSpec{{Days: []string{"all"}, Start: "00:00", End: "24:00", TZ: "Europe/Berlin"}}
		ws, err := schedule.ParseWindows("windows", specs)
		if err != nil {
			t.Fatal(err)
		}
		cc.Schedule, cc.Windows, cc.WindowSpecs = sched, ws, specs
	}))
	b.signIn(d.URL+"/", operatorToken)
	b.do("clusters", 20*time.Second, chromedp.Navigate(d.URL+"/"), chromedp.WaitVisible(chromedp.CSS("button.start")))
	b.shot(dir, "clusters.png")
	b.do("plan", 20*time.Second, chromedp.Navigate(d.URL+"/clusters/demo/plan"), chromedp.WaitVisible(chromedp.CSS("#plan-chart")))
	b.shot(dir, "plan.png")
	b.do("clusters", 20*time.Second, chromedp.Navigate(d.URL+"/"), chromedp.WaitVisible(chromedp.CSS("button.start")))
	b.confirm("button.start")
	b.do("run page", 20*time.Second, chromedp.WaitVisible(chromedp.CSS("#lanes svg")))
	waitJS[bool](b, "the second node draining with migrations in flight",
		`[...document.querySelectorAll("g.lane")].filter(g => g.dataset.state === "done").length >= 2 && !!document.querySelector('g.lane[data-state="draining"]') && [...document.querySelectorAll("li.migration progress")].some(p => p.value > 50)`, 120*time.Second)
	b.shot(dir, "run.png")
	waitJS[bool](b, "the run to end", `document.getElementById("run-state").textContent === "succeeded"`, 240*time.Second)
	b.do("history", 20*time.Second, chromedp.Navigate(d.URL+"/runs"), chromedp.WaitVisible(chromedp.CSS("tr.run-row")))
	b.shot(dir, "history.png")
	b.do("report", 20*time.Second, chromedp.Click(chromedp.CSS("a.report")), chromedp.WaitVisible(chromedp.CSS("svg.timeline")))
	b.shot(dir, "report.png")
	b.checkClean()
}
