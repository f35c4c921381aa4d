package dashboard_test

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/droverhq/drover/runs"
)

const labCluster = "testdata/lab.yaml"

// runID is the run the page shows (from its URL).
func runID(b *browser) string {
	b.t.Helper()
	id := eval[string](b, `document.getElementById("run") ? document.getElementById("run").dataset.run : ""`)
	if id == "" {
		b.t.Fatalf("not on a run page: %s", eval[string](b, "location.href"))
	}
	return id
}

// noMarkup counts the elements that hostile names would make if they became
// markup: images, event-handler attributes, or an SVG inside a text.
const noMarkup = `document.querySelectorAll("img, [onerror], [onload], text svg, td svg, li svg").length`

// jsString quotes s for JavaScript.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// visible is the JS expression: the element is on the page and rendered.
func visible(sel string) string {
	return fmt.Sprintf(`(() => { const e = document.querySelector(%q); return !!e && e.checkVisibility() })()`, sel)
}

// laneState is the JS expression of node's lane state on the run page.
func laneState(node string) string {
	return fmt.Sprintf(`([...document.querySelectorAll("g.lane")].find(g => g.dataset.node === %s) || {dataset: {}}).dataset.state`, jsString(node))
}

// TestDashboard_OperatorRun signs in as an operator, starts a canary run from the
// clusters page, watches lanes and migration bars move over the event stream,
// approves the canary, stops the run, and checks the picture, the history, the
// report and that nothing the driver named ran as script.
func TestDashboard_OperatorRun(t *testing.T) {
	b := newBrowser(t)
	d := startDaemon(t, "lab", labCluster, 10, hostileNames)
	shots := outDir(t)

	// An unauthenticated visitor sees the sign-in page and nothing else.
	b.do("open the dashboard signed out", 20*time.Second, chromedp.Navigate(d.URL+"/runs"), chromedp.WaitVisible(chromedp.CSS("#token")))
	b.shot(shots, "signin.png")
	if loc := eval[string](b, "location.pathname"); loc != "/signin" {
		t.Errorf("signed out, /runs went to %s, want /signin", loc)
	}
	if n := eval[int](b, `document.querySelectorAll("nav, .cluster, table").length`); n != 0 {
		t.Errorf("the sign-in page shows %d elements of the signed-in pages", n)
	}
	// A wrong token is refused.
	b.do("wrong token", 20*time.Second,
		chromedp.SendKeys(chromedp.CSS("#token"), "not-a-token"),
		chromedp.Click(chromedp.CSS("#signin")),
		chromedp.WaitVisible(chromedp.CSS(".error")),
	)
	if n := eval[int](b, `document.querySelectorAll("#who").length`); n != 0 {
		t.Error("a wrong token signed in")
	}
	b.signIn(d.URL+"/runs", operatorToken)
	if loc := eval[string](b, "location.pathname"); loc != "/runs" {
		t.Errorf("after sign-in the page is %s, want the page asked for (/runs)", loc)
	}

	// Clusters: driver, nodes, pending updates, the pause switch flips.
	b.do("clusters page", 20*time.Second, chromedp.Navigate(d.URL+"/"), chromedp.WaitVisible(chromedp.CSS(".cluster")))
	card := eval[string](b, `document.querySelector(".cluster").innerText`)
	for _, want := range []string{"lab", "sim", "n1: kernel 6.1.0-31, qemu 8.2.4", xssNode + ": kernel 6.1.0-31", "none yet"} {
		if !strings.Contains(card, want) {
			t.Errorf("cluster card lacks %q:\n%s", want, card)
		}
	}
	if n := eval[string](b, `document.querySelector(".cluster .nodes").textContent`); n != "3" {
		t.Errorf("node count = %q, want 3", n)
	}
	b.submit(`button[data-op="pause"]`)
	if got := eval[string](b, `document.querySelector('button[data-op="pause"]').getAttribute("aria-checked")`); got != "true" {
		t.Errorf("after pausing, the switch says aria-checked=%s", got)
	}
	var ci struct {
		Paused bool `json:"paused"`
	}
	if d.api("GET", "/api/v1/clusters/lab", viewerToken, "", &ci); !ci.Paused {
		t.Error("the pause switch did not pause the cluster's schedule (API says not paused)")
	}
	b.submit(`button[data-op="pause"]`)
	if d.api("GET", "/api/v1/clusters/lab", viewerToken, "", &ci); ci.Paused {
		t.Error("the pause switch did not unpause the schedule")
	}
	b.shot(shots, "clusters.png")

	// Plan: order, destinations (the hostile VM name as text), timeline, analyze.
	b.do("plan page", 20*time.Second, chromedp.Navigate(d.URL+"/clusters/lab/plan"), chromedp.WaitVisible(chromedp.CSS("#plan-chart")))
	if n := eval[int](b, `document.querySelectorAll("#plan-chart rect.bar").length`); n < 6 {
		t.Errorf("plan chart has %d bars, want drain/install/reboot of 3 nodes", n)
	}
	if got := eval[string](b, `[...document.querySelectorAll("td.vm")].map(e => e.textContent).join("|")`); !strings.Contains(got, xssName) {
		t.Errorf("plan lists VMs %q, want %q among them as text", got, xssName)
	}
	if n := eval[int](b, `[...document.querySelectorAll("#plan-chart g.row > title")].filter(e => e.textContent === `+jsString(xssNode)+`).length`); n != 1 {
		t.Errorf("the plan chart shows node %q as text %d times, want once", xssNode, n)
	}
	if n := eval[int](b, noMarkup); n != 0 {
		t.Errorf("the plan page holds %d elements made from driver names", n)
	}
	if n := eval[int](b, `document.querySelectorAll("ul.checks li").length`); n == 0 {
		t.Error("the plan page shows no readiness checks")
	}
	b.shot(shots, "plan.png")

	// Start a canary run from the clusters page, with confirmation.
	b.do("clusters page", 20*time.Second, chromedp.Navigate(d.URL+"/"), chromedp.WaitVisible(chromedp.CSS("button.start")))
	b.do("tick canary", 10*time.Second, chromedp.Click(chromedp.CSS("input.canary")))
	b.confirm("button.start")
	b.do("run page", 20*time.Second, chromedp.WaitVisible(chromedp.CSS("#lanes svg")))
	id := runID(b)

	// Lanes change state live; a migration bar moves.
	// Record every state each lane shows and every value each bar shows, from
	// the page itself, so that nothing is missed between two polls.
	eval[bool](b, `(() => { window.__bars = {}; window.__rates = []; window.__lanes = {};
		new MutationObserver(() => document.querySelectorAll("li.migration").forEach(li => {
			(window.__bars[li.dataset.vm] ||= []).push(li.querySelector("progress").value);
			window.__rates.push(li.querySelector(".rate").textContent) })).observe(document.getElementById("migrations"), {childList: true, subtree: true, attributes: true});
		new MutationObserver(() => document.querySelectorAll("g.lane").forEach(g => {
			const seen = (window.__lanes[g.dataset.node] ||= []);
			if (seen[seen.length - 1] !== g.dataset.state) seen.push(g.dataset.state) })).observe(document.getElementById("lanes"), {childList: true, subtree: true});
		return true })()`)
	waitJS[bool](b, "the Stop button", visible("#stop"), 20*time.Second)
	if !eval[bool](b, `document.getElementById("run-state").textContent !== "running" || (!(`+visible("#resume")+") && !("+visible("#approve")+"))") {
		t.Error("a run executing in the daemon should offer Stop only")
	}
	waitJS[bool](b, "lane n1 to have drained", `[...document.querySelectorAll("g.lane")].some(g => g.dataset.node === "n1" && g.querySelector('rect.seg[data-state="draining"]'))`, 30*time.Second)
	moved := waitJS[string](b, "a migration bar to move", `Object.keys(window.__bars).find(vm => { const a = window.__bars[vm]; return a.some(v => v > 0 && v < 100 && v > a[0]) && a[0] < 100 }) || ""`, 30*time.Second)
	t.Logf("the bar of %s moved: %v", moved, eval[[]float64](b, fmt.Sprintf("window.__bars[%q]", moved)))
	if rate := eval[string](b, `window.__rates.find(r => /^[1-9][0-9]* MiB\/s$/.test(r)) || ""`); rate == "" {
		t.Error("no migration in flight showed a rate")
	}
	b.shot(shots, "run.png")
	if eta := eval[string](b, `document.getElementById("eta").textContent`); !strings.Contains(eta, "against the plan's") {
		t.Errorf("ETA line %q does not compare with the plan", eta)
	}

	// The canary node finishes; the run waits; approve it.
	waitJS[bool](b, "the approve button", visible("#approve"), 60*time.Second)
	if s := eval[string](b, laneState("n1")); s != "done" {
		t.Errorf("canary lane n1 is %q when the run waits for approval, want done", s)
	}
	if seen := eval[[]string](b, `window.__lanes["n1"]`); len(seen) < 3 || seen[len(seen)-1] != "done" {
		t.Errorf("lane n1 went through %v live, want several states up to done", seen)
	} else {
		t.Logf("lane n1 went through %v", seen)
	}
	if n := eval[int](b, `document.querySelectorAll('g.lane[data-node="n1"] rect.seg').length`); n < 4 {
		t.Errorf("lane n1 has %d state segments, want pausing..resuming", n)
	}
	b.confirm("#approve")
	waitJS[bool](b, "the second node to start", `[...document.querySelectorAll("g.lane")].some(g => g.dataset.node !== "n1" && g.dataset.state !== "queued")`, 30*time.Second)

	// Stop it.
	b.confirm("#stop")
	waitJS[bool](b, "the run to stop", `document.getElementById("run-state").textContent === "stopped"`, 60*time.Second)
	if hidden := eval[bool](b, "!("+visible("#stop")+") && !("+visible("#resume")+") && !("+visible("#approve")+")"); !hidden {
		t.Error("a stopped run still offers stop or resume")
	}
	var r runs.Run
	d.api("GET", "/api/v1/runs/"+id, viewerToken, "", &r)
	if r.State != runs.StateStopped {
		t.Errorf("API: run %s is %s, want stopped", id, r.State)
	}

	// Opened again, the ended run shows its lanes and no stream.
	b.do("reload the ended run", 20*time.Second, chromedp.Navigate(d.URL+"/runs/"+id), chromedp.WaitVisible(chromedp.CSS("#lanes svg")))
	waitJS[bool](b, "the ended run's page", `document.getElementById("conn").textContent === "finished" && document.querySelectorAll("g.lane").length === 3 && document.getElementById("run-state").textContent === "stopped"`, 20*time.Second)

	// The hostile VM name reached the page as text only.
	if log := eval[string](b, `document.getElementById("log").textContent`); !strings.Contains(log, xssName) {
		t.Errorf("the event log never names VM %q", xssName)
	}
	if n := eval[int](b, noMarkup); n != 0 {
		t.Errorf("the run page holds %d elements made from driver names", n)
	}
	if n := eval[int](b, `[...document.querySelectorAll("#lanes g.lane > title")].filter(e => e.textContent === `+jsString(xssNode)+`).length`); n != 1 {
		t.Errorf("the lanes name node %q as text %d times, want once", xssNode, n)
	}

	// History links to the report, which has the timeline picture.
	b.do("history", 20*time.Second, chromedp.Navigate(d.URL+"/runs?state=stopped"), chromedp.WaitVisible(chromedp.CSS("tr.run-row")))
	if n := eval[int](b, `document.querySelectorAll("tr.run-row").length`); n != 1 {
		t.Errorf("history filtered by stopped shows %d runs, want 1", n)
	}
	b.shot(shots, "history.png")
	b.do("filter running", 20*time.Second, chromedp.Navigate(d.URL+"/runs?state=running"), chromedp.WaitVisible(chromedp.CSS("table.runs")))
	if n := eval[int](b, `document.querySelectorAll("tr.run-row").length`); n != 0 {
		t.Errorf("history filtered by running shows %d runs, want 0", n)
	}
	b.do("report", 20*time.Second, chromedp.Navigate(d.URL+"/runs?cluster=lab"), chromedp.WaitVisible(chromedp.CSS("a.report")), chromedp.Click(chromedp.CSS("a.report")), chromedp.WaitVisible(chromedp.CSS("svg.timeline")))
	if n := eval[int](b, `document.querySelectorAll("svg.timeline g.lane").length`); n != 3 {
		t.Errorf("the report's timeline has %d lanes, want 3", n)
	}
	if n := eval[int](b, `document.querySelectorAll("img, script").length`); n != 0 {
		t.Errorf("the report holds %d <img>/<script> elements", n)
	}
	b.shot(shots, "report.png")

	// Sign out: the pages are closed again.
	b.do("sign out", 20*time.Second, chromedp.Navigate(d.URL+"/"), chromedp.WaitVisible(chromedp.CSS("#signout")), chromedp.Click(chromedp.CSS("#signout")), chromedp.WaitVisible(chromedp.CSS("#token")))
	b.do("signed out", 20*time.Second, chromedp.Navigate(d.URL+"/runs/"+id), chromedp.WaitVisible(chromedp.CSS("#token")))

	b.checkClean()
	checkLogs(t, d)
}

// checkLogs fails when the daemon's log holds a token or a session cookie.
func checkLogs(t *testing.T, d *daemon, extra ...string) {
	t.Helper()
	logs := d.logs.String()
	for _, s := range append([]string{viewerToken, operatorToken}, extra...) {
		if s != "" && strings.Contains(logs, s) {
			t.Errorf("the daemon's log holds a secret (%.6s…)", s)
		}
	}
	if strings.Contains(logs, "drover_session=") {
		t.Error("the daemon's log holds a session cookie")
	}
	if !strings.Contains(logs, `"token":"ops"`) {
		t.Error("the access log does not name the dashboard user's token")
	}
}

// TestDashboard_Viewer checks that a viewer sees the run but no button it cannot
// use, and that the server refuses the action even when the form is forged.
func TestDashboard_Viewer(t *testing.T) {
	b := newBrowser(t)
	d := startDaemon(t, "lab", labCluster, 10, hostileNames)
	var started struct {
		ID string `json:"id"`
	}
	if code := d.api("POST", "/api/v1/runs", operatorToken, `{"policy":{"canary":true}}`, &started); code != http.StatusAccepted {
		t.Fatalf("start a run through the API: %d", code)
	}
	b.signIn(d.URL+"/", viewerToken)
	b.do("clusters", 20*time.Second, chromedp.Navigate(d.URL+"/"), chromedp.WaitVisible(chromedp.CSS(".cluster")))
	if n := eval[int](b, `document.querySelectorAll("form[action$='/start'], form[action$='/pause'], button.start").length`); n != 0 {
		t.Errorf("a viewer sees %d start/pause controls", n)
	}
	if who := eval[string](b, `document.getElementById("who").textContent`); !strings.Contains(who, "viewer") {
		t.Errorf("header says %q, want the viewer role", who)
	}
	b.do("run page", 20*time.Second, chromedp.Navigate(d.URL+"/runs/"+started.ID), chromedp.WaitVisible(chromedp.CSS("#lanes svg")))
	// Opened mid-run, the page shows the run so far: every lane, and the journal
	// as its event log.
	waitJS[bool](b, "a lane to start", `[...document.querySelectorAll("g.lane")].some(g => g.dataset.state !== "queued")`, 30*time.Second)
	if n := eval[int](b, `document.querySelectorAll("g.lane").length`); n != 3 {
		t.Errorf("the run page opened mid-run shows %d lanes, want 3", n)
	}
	if log := eval[string](b, `document.getElementById("log").textContent`); !strings.Contains(log, "run start") {
		t.Errorf("the run page opened mid-run lacks the run's start in its log: %q", log)
	}
	if n := eval[int](b, `document.querySelectorAll("#stop, #approve, #resume, form[action*='/runs/']").length`); n != 0 {
		t.Errorf("a viewer's run page holds %d operator controls", n)
	}
	// The viewer's own session, a valid CSRF token, a same-origin POST: the
	// role still decides.
	stopStatus := evalAwait[int](b, fmt.Sprintf(`fetch("/runs/%s/stop", {method: "POST", redirect: "manual",
		headers: {"Content-Type": "application/x-www-form-urlencoded"},
		body: "csrf=" + encodeURIComponent(document.querySelector("form[action='/signout'] input[name=csrf]").value)}).then(r => r.status)`, started.ID))
	if stopStatus != http.StatusForbidden {
		t.Errorf("a viewer's stop = %d, want 403", stopStatus)
	}
	var r runs.Run
	d.api("GET", "/api/v1/runs/"+started.ID, viewerToken, "", &r)
	if r.State == runs.StateStopped {
		t.Error("a viewer stopped the run")
	}
	b.checkClean()
}

// TestDashboard_CrossSitePost serves a hostile page from another origin that posts
// a form to the daemon while the user is signed in: refused, nothing started.
func TestDashboard_CrossSitePost(t *testing.T) {
	b := newBrowser(t)
	d := startDaemon(t, "lab", labCluster, 10, hostileNames)
	b.signIn(d.URL+"/", operatorToken)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	evil := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<!DOCTYPE html><form id="f" method="post" action="%s/clusters/lab/start"><input name="csrf" value="guessed"></form>
<form id="g" method="post" action="%s/clusters/lab/start"></form><p id="ready">ready</p>`, d.URL, d.URL)
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = evil.Serve(ln) }()
	t.Cleanup(func() { evil.Close() })
	evilURL := "http://" + ln.Addr().String()

	for _, form := range []string{"f", "g"} {
		b.do("hostile page", 20*time.Second, chromedp.Navigate(evilURL+"/"), chromedp.WaitVisible(chromedp.CSS("#ready")))
		b.do("forged post "+form, 20*time.Second, chromedp.Evaluate[chromedp.Void](`document.getElementById("`+form+`").submit()`), chromedp.WaitNotPresent(chromedp.CSS("#ready")))
		body := eval[string](b, "document.body.innerText")
		if !strings.Contains(body, "efused") && !strings.Contains(body, "sign in") {
			t.Errorf("forged POST (form %s) answered:\n%s", form, body)
		}
	}
	var list []struct{ ID string }
	d.api("GET", "/api/v1/runs", viewerToken, "", &list)
	if len(list) != 0 {
		t.Errorf("a forged cross-site POST started %d runs", len(list))
	}
	// The user's own page still works with its token.
	b.do("clusters", 20*time.Second, chromedp.Navigate(d.URL+"/"), chromedp.WaitVisible(chromedp.CSS("button.start")))
	b.checkClean()
}

// TestDashboard_RestartReconnects leaves a run page open across a daemon restart:
// the page reconnects with the same session, shows the interrupted run with its
// Resume button, and follows it to the end once resumed.
func TestDashboard_RestartReconnects(t *testing.T) {
	b := newBrowser(t)
	d := startDaemon(t, "lab", labCluster, 10, hostileNames)
	b.signIn(d.URL+"/", operatorToken)
	b.do("clusters", 20*time.Second, chromedp.Navigate(d.URL+"/"), chromedp.WaitVisible(chromedp.CSS("button.start")))
	b.confirm("button.start")
	b.do("run page", 20*time.Second, chromedp.WaitVisible(chromedp.CSS("#lanes svg")))
	id := runID(b)
	waitJS[bool](b, "a node in maintenance", `[...document.querySelectorAll("g.lane")].some(g => ["draining", "patching", "rebooting", "verifying", "resuming"].includes(g.dataset.state))`, 30*time.Second)
	d.restart(false)
	waitJS[bool](b, "the page to reconnect and offer Resume", `document.getElementById("conn").textContent === "live" && `+visible("#resume"), 30*time.Second)
	b.confirm("#resume")
	waitJS[bool](b, "the resumed run to succeed", `document.getElementById("run-state").textContent === "succeeded"`, 90*time.Second)
	for _, n := range []string{"n1", "n2", xssNode} {
		if s := eval[string](b, laneState(n)); s != "done" {
			t.Errorf("lane %s is %q after the run succeeded", n, s)
		}
	}
	var r runs.Run
	d.api("GET", "/api/v1/runs/"+id, viewerToken, "", &r)
	if r.State != runs.StateSucceeded || r.Resumes < 1 {
		t.Errorf("API: run %s is %s with %d resumes, want succeeded after a resume", id, r.State, r.Resumes)
	}
	b.checkClean()
}
