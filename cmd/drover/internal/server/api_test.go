package server

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/droverhq/drover/orchestrator/schedule"
	"github.com/droverhq/drover/policies"
	"github.com/droverhq/drover/runs"
	"github.com/droverhq/drover/runs/report"
)

// routePath fills a route pattern with sample values.
func routePath(p string) string {
	return strings.NewReplacer("{cluster}", "demo", "{id}", "20260101-000000-abcdef").Replace(p)
}

func TestServer_EveryRouteNeedsAToken(t *testing.T) {
	e := newEnv(t, envOptions{})
	for _, rt := range e.s.routeTable() {
		t.Run(rt.Method+"-"+strings.ReplaceAll(strings.Trim(rt.Path, "/"), "/", "-"), func(t *testing.T) {
			path := routePath(rt.Path)
			body := ""
			if rt.Body {
				body = "{}"
			}
			if rec := e.do(rt.Method, path, "", body); rec.Code != http.StatusUnauthorized {
				t.Errorf("no token: %d, want 401", rec.Code)
			} else if rec.Header().Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
			if rec := e.do(rt.Method, path, "not-a-token", body); rec.Code != http.StatusUnauthorized {
				t.Errorf("unknown token: %d, want 401", rec.Code)
			}
			if rec := e.do(rt.Method, path, strings.ToUpper(viewerSecret), body); rec.Code != http.StatusUnauthorized {
				t.Errorf("token with other case: %d, want 401", rec.Code)
			}
			rec := e.do(rt.Method, path, viewerSecret, body)
			switch {
			case rt.Role == RoleOperator && rec.Code != http.StatusForbidden:
				t.Errorf("viewer token on an operator route: %d, want 403", rec.Code)
			case rt.Role == RoleViewer && (rec.Code == http.StatusUnauthorized || rec.Code == http.StatusForbidden):
				t.Errorf("viewer token on a viewer route: %d", rec.Code)
			}
		})
	}
}

func TestServer_Contracts(t *testing.T) {
	e := newEnv(t, envOptions{})
	tests := []struct {
		name, method, path, secret, body string
		want                             int
	}{
		{"metrics-viewer", "GET", "/metrics", viewerSecret, "", http.StatusOK},
		{"runs-list-viewer", "GET", "/api/v1/runs", viewerSecret, "", http.StatusOK},
		{"start-no-token", "POST", "/api/v1/runs", "", "{}", http.StatusUnauthorized},
		{"start-viewer", "POST", "/api/v1/runs", viewerSecret, "{}", http.StatusForbidden},
		{"unknown-path-no-token", "GET", "/api/v2/secret", "", "", http.StatusUnauthorized},
		{"unknown-path-viewer", "GET", "/api/v2/secret", viewerSecret, "", http.StatusNotFound},
		{"wrong-method-no-token", "DELETE", "/api/v1/runs", "", "", http.StatusUnauthorized},
		{"wrong-method-viewer", "DELETE", "/api/v1/runs", viewerSecret, "", http.StatusMethodNotAllowed},
		{"basic-auth-is-not-bearer", "GET", "/api/v1/runs", "", "", http.StatusUnauthorized},
		{"unknown-run", "GET", "/api/v1/runs/20200101-000000-000000", viewerSecret, "", http.StatusNotFound},
		{"unknown-cluster", "GET", "/api/v1/clusters/nope", viewerSecret, "", http.StatusNotFound},
		{"bad-report-format", "GET", "/api/v1/runs/last/report?format=pdf", viewerSecret, "", http.StatusBadRequest},
		{"bad-limit", "GET", "/api/v1/runs?limit=-1", viewerSecret, "", http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := e.do(tt.method, tt.path, tt.secret, tt.body)
			if rec.Code != tt.want {
				t.Errorf("%s %s = %d %s, want %d", tt.method, tt.path, rec.Code, rec.Body.String(), tt.want)
			}
			if ct := rec.Header().Get("Content-Type"); tt.path != "/metrics" && ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
		})
	}
}

func TestServer_BadBodies(t *testing.T) {
	e := newEnv(t, envOptions{})
	tests := []struct {
		name, path, body, contentType string
		want                          int
		field                         string
	}{
		{"invalid-json", "/api/v1/runs", `{"cluster":`, "", 400, ""},
		{"not-an-object", "/api/v1/runs", `[1,2]`, "", 400, ""},
		{"unknown-field", "/api/v1/runs", `{"clustr":"demo"}`, "", 400, "clustr"},
		{"unknown-policy-field", "/api/v1/runs", `{"policy":{"max_paralel":2}}`, "", 400, "policy.max_paralel"},
		{"hooks-not-through-the-api", "/api/v1/runs", `{"policy":{"pre_hook":{"command":["sh","-c","id"]}}}`, "", 400, "policy.pre_hook"},
		{"wrong-type", "/api/v1/runs", `{"policy":{"max_parallel_migrations":"four"}}`, "", 400, "policy.max_parallel_migrations"},
		{"invalid-policy-value", "/api/v1/runs", `{"policy":{"max_parallel_migrations":0}}`, "", 400, "policy.max_parallel_migrations"},
		{"bad-duration", "/api/v1/runs", `{"policy":{"reboot_timeout":"soon"}}`, "", 400, "policy.reboot_timeout"},
		{"unknown-failback", "/api/v1/runs", `{"policy":{"failback":"sometimes"}}`, "", 400, "policy.failback"},
		{"unknown-cluster", "/api/v1/runs", `{"cluster":"nope"}`, "", 400, "cluster"},
		{"two-values", "/api/v1/runs", `{} {}`, "", 400, ""},
		{"not-json", "/api/v1/runs", `cluster=demo`, "application/x-www-form-urlencoded", 415, ""},
		{"too-large", "/api/v1/runs", `{"cluster":"` + strings.Repeat("a", MaxBodyBytes) + `"}`, "", 413, ""},
		{"stop-with-fields", "/api/v1/runs/last/stop", `{"force":true}`, "", 400, "force"},
		{"pause-with-fields", "/api/v1/clusters/demo/pause", `{"until":"monday"}`, "", 400, "until"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do("POST", tt.path, operatorSecret, tt.body)
			if tt.contentType != "" {
				req := newRequest(tt.path, tt.body, tt.contentType)
				r = e.serve(req)
			}
			if r.Code != tt.want {
				t.Fatalf("status %d %s, want %d", r.Code, r.Body.String(), tt.want)
			}
			got := decode[ErrorBody](t, r)
			if got.Error == "" || got.Field != tt.field {
				t.Errorf("answer %+v, want a message and field %q", got, tt.field)
			}
			if tt.field != "" && !strings.Contains(got.Error, tt.field) {
				t.Errorf("message %q does not name field %s", got.Error, tt.field)
			}
		})
	}
	if n := len(e.runsOf()); n != 0 {
		t.Errorf("%d runs started by bad requests", n)
	}
}

// TestServer_RunLifecycle starts a run through the API, follows its events, and reads
// its report in every format and the metrics.
func TestServer_RunLifecycle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, envOptions{})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		e.s.Start(ctx)
		defer e.s.Shutdown()

		rec := e.do("POST", "/api/v1/runs", operatorSecret, `{"policy":{"max_parallel_migrations":2,"reboot_timeout":"20m"}}`)
		if rec.Code != http.StatusAccepted {
			t.Fatalf("start: %d %s", rec.Code, rec.Body.String())
		}
		act := decode[RunAction](t, rec)
		if act.Cluster != "demo" || act.ID == "" {
			t.Fatalf("start answer %+v", act)
		}
		// A second start while the first runs is refused and names the run.
		if rec := e.do("POST", "/api/v1/runs", operatorSecret, `{"cluster":"demo"}`); rec.Code != http.StatusConflict || decode[ErrorBody](t, rec).RunID != act.ID {
			t.Errorf("second start: %d %s, want 409 naming %s", rec.Code, rec.Body.String(), act.ID)
		}
		events := make(chan string)
		go func() { events <- e.do("GET", "/api/v1/runs/"+act.ID+"/events", viewerSecret, "").Body.String() }()
		evs := parseSSE(t, <-events)
		if len(evs) < 2 {
			t.Fatalf("%d events streamed", len(evs))
		}
		last := evs[len(evs)-1]
		if last.kind != "run_finished" || last.ev.State != string(runs.StateSucceeded) || last.ev.RunID != act.ID {
			t.Errorf("stream ends with %+v, want run_finished succeeded", last)
		}
		var nodeEvents int
		for _, ev := range evs {
			if ev.ev.RunID != act.ID {
				t.Errorf("event of another run in the stream: %+v", ev)
			}
			if ev.kind == "node_state" {
				nodeEvents++
			}
		}
		if nodeEvents == 0 {
			t.Error("no node_state events streamed")
		}
		// The stream of a finished run answers at once.
		if late := parseSSE(t, e.do("GET", "/api/v1/runs/"+act.ID+"/events", viewerSecret, "").Body.String()); len(late) != 1 || late[0].kind != "run_finished" {
			t.Errorf("stream of a finished run: %+v", late)
		}

		list := decode[[]RunSummary](t, e.do("GET", "/api/v1/runs?cluster=demo", viewerSecret, ""))
		if len(list) != 1 || list[0].ID != act.ID || list[0].State != runs.StateSucceeded || list[0].Nodes != 4 {
			t.Errorf("runs list = %+v", list)
		}
		rep := decode[report.Report](t, e.do("GET", "/api/v1/runs/"+act.ID, viewerSecret, ""))
		if rep.State != string(runs.StateSucceeded) || rep.Summary.NodesDone != 4 || rep.Summary.Migrations == 0 {
			t.Errorf("report = %+v", rep.Summary)
		}
		for format, ct := range map[string]string{"json": "application/json", "html": "text/html; charset=utf-8", "csv": "text/csv; charset=utf-8", "md": "text/markdown; charset=utf-8"} {
			rec := e.do("GET", "/api/v1/runs/"+act.ID[:10]+"/report?format="+format, viewerSecret, "")
			if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != ct || !strings.Contains(rec.Body.String(), act.ID) {
				t.Errorf("report %s: %d %q", format, rec.Code, rec.Header().Get("Content-Type"))
			}
		}
		if rec := e.do("POST", "/api/v1/runs/"+act.ID+"/resume", operatorSecret, ""); rec.Code != http.StatusConflict {
			t.Errorf("resume of a finished run: %d", rec.Code)
		}
		metrics := e.do("GET", "/metrics", viewerSecret, "").Body.String()
		for _, want := range []string{
			`drover_runs{cluster="demo",state="succeeded"} 1`,
			`drover_runs{cluster="demo",state="running"} 0`,
			`drover_active_run{cluster="demo"} 0`,
			`drover_next_run_timestamp_seconds{cluster="demo"} 0`,
			`drover_migration_duration_seconds_count{cluster="demo"}`,
			`drover_node_phase_duration_seconds_count{cluster="demo",phase="rebooting"} 4`,
			`drover_migrated_bytes_total{cluster="demo"}`,
			`drover_migrations_total{cluster="demo",kind="drain"}`,
		} {
			if !strings.Contains(metrics, want) {
				t.Errorf("metrics lack %s", want)
			}
		}
		checkNoSecrets(t, e)
	})
}

// checkNoSecrets greps everything the daemon logged and answered for the tokens.
func checkNoSecrets(t *testing.T, e *testEnv) {
	t.Helper()
	for name, text := range map[string]string{"logs": e.logs.String(), "answers": e.answers.String()} {
		for _, secret := range []string{viewerSecret, operatorSecret, digest(viewerSecret), digest(operatorSecret)} {
			if strings.Contains(text, secret) {
				t.Errorf("%s contain a token secret or digest", name)
			}
		}
	}
}

func TestServer_ScheduledRunsAndPause(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, envOptions{schedule: &schedule.Spec{Cron: "@every 1m"}})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		e.s.Start(ctx)
		defer e.s.Shutdown()

		// The demo run takes about 9 minutes: due times meanwhile are skipped.
		time.Sleep(5 * time.Minute)
		synctest.Wait()
		if rs := e.runsOf(); len(rs) != 1 || rs[0].State != runs.StateRunning {
			t.Fatalf("after 5 min: runs %+v, want exactly one running", rs)
		}
		if n := strings.Count(e.logs.String(), `"msg":"scheduled run skipped"`); n < 3 {
			t.Errorf("%d skipped due times logged, want one a minute", n)
		}
		if !strings.Contains(e.logs.String(), `is in progress`) {
			t.Error("skip reason does not say a run is in progress")
		}
		if rec := e.do("POST", "/api/v1/clusters/demo/pause", operatorSecret, ""); rec.Code != http.StatusOK || !decode[PauseState](t, rec).Paused {
			t.Fatalf("pause: %d %s", rec.Code, rec.Body.String())
		}
		time.Sleep(30 * time.Minute)
		synctest.Wait()
		rs := e.runsOf()
		if len(rs) != 1 || rs[0].State != runs.StateSucceeded {
			t.Fatalf("paused for 30 min: runs %+v, want the one run, succeeded", rs)
		}
		info := decode[ClusterInfo](t, e.do("GET", "/api/v1/clusters/demo", viewerSecret, ""))
		if !info.Paused || !info.NextRun.IsZero() || info.ActiveRun != "" {
			t.Errorf("paused cluster info = %+v", info)
		}
		if rec := e.do("POST", "/api/v1/clusters/demo/unpause", operatorSecret, "{}"); rec.Code != http.StatusOK {
			t.Fatalf("unpause: %d", rec.Code)
		}
		if strings.Contains(e.logs.String(), "nothing to do") {
			t.Fatal("a due time was acted on while paused")
		}
		time.Sleep(90 * time.Second)
		synctest.Wait()
		// Unpaused, the next due time prepares a run; every node is patched already,
		// so none starts: the history keeps real runs only.
		if rs := e.runsOf(); len(rs) != 1 {
			t.Errorf("after unpause: %d runs, want still 1", len(rs))
		}
		if !strings.Contains(e.logs.String(), "nothing to do") {
			t.Error("the due time after unpause did not prepare a run")
		}
	})
}

func TestServer_WindowHoldsNodes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// The bubble starts at 2000-01-01 00:00 UTC; the window opens at 02:00.
		ws, err := schedule.ParseWindows("windows", []policies.WindowSpec{{Days: []string{"all"}, Start: "02:00", End: "06:00"}})
		if err != nil {
			t.Fatal(err)
		}
		e := newEnv(t, envOptions{windows: ws})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		e.s.Start(ctx)
		defer e.s.Shutdown()
		start := time.Now()
		rec := e.do("POST", "/api/v1/runs", operatorSecret, "")
		if rec.Code != http.StatusAccepted {
			t.Fatalf("start: %d %s", rec.Code, rec.Body.String())
		}
		id := decode[RunAction](t, rec).ID
		// The stream ends when the run does; the wait is in the journal (the stream
		// may have connected after it was sent).
		evs := parseSSE(t, e.do("GET", "/api/v1/runs/"+id+"/events", viewerSecret, "").Body.String())
		if len(evs) == 0 || evs[len(evs)-1].kind != "run_finished" {
			t.Errorf("stream did not end with run_finished: %+v", evs)
		}
		journal, err := e.store.Journal(id)
		if err != nil {
			t.Fatal(err)
		}
		var waits []string
		for _, en := range journal {
			if strings.HasPrefix(en.Detail, "waiting until") {
				waits = append(waits, en.Node+": "+en.Detail)
			}
		}
		if len(waits) != 1 || !strings.Contains(waits[0], "waiting until 2000-01-01T02:00:00Z: outside the maintenance windows") {
			t.Errorf("journaled waits = %q, want one: the first node until 02:00", waits)
		}
		nodes, err := e.store.Nodes(id)
		if err != nil {
			t.Fatal(err)
		}
		open := start.Add(2 * time.Hour)
		for _, n := range nodes {
			if n.StartedAt.Before(open) || n.FinishedAt.After(start.Add(6*time.Hour)) {
				t.Errorf("node %s maintained %s..%s, outside the window", n.Name, n.StartedAt, n.FinishedAt)
			}
		}
		r, err := e.store.Run(id)
		if err != nil || r.State != runs.StateSucceeded {
			t.Errorf("run %+v, %v", r, err)
		}
	})
}

// TestServer_ShutdownAndResume interrupts a run by shutting the daemon down and checks
// that the next daemon on the same state file resumes it to the end.
func TestServer_ShutdownAndResume(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, envOptions{})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		e.s.Start(ctx)
		rec := e.do("POST", "/api/v1/runs", operatorSecret, "")
		if rec.Code != http.StatusAccepted {
			t.Fatalf("start: %d", rec.Code)
		}
		id := decode[RunAction](t, rec).ID
		time.Sleep(3 * time.Minute)
		e.s.Shutdown()
		r, err := e.store.Run(id)
		if err != nil || r.State != runs.StateRunning {
			t.Fatalf("after shutdown: %+v, %v; want running (resumable)", r, err)
		}
		e.open(envOptions{})
		e.s.Start(ctx)
		defer e.s.Shutdown()
		time.Sleep(time.Hour)
		synctest.Wait()
		rs := e.runsOf()
		if len(rs) != 1 || rs[0].ID != id || rs[0].State != runs.StateSucceeded || rs[0].Resumes != 1 {
			t.Errorf("runs after restart: %+v, want run %s succeeded after 1 resume", rs, id)
		}
		if !strings.Contains(e.logs.String(), "resuming interrupted run") {
			t.Error("restart did not log the resume")
		}
	})
}

func TestHoldDecision(t *testing.T) {
	ws, err := schedule.ParseWindows("windows", []policies.WindowSpec{{Days: []string{"sat"}, Start: "22:00", End: "04:00"}})
	if err != nil {
		t.Fatal(err)
	}
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		name      string
		windows   schedule.Windows
		now       string
		d         time.Duration
		wantUntil string // "" = start now
		reason    string // substring; "" = none
	}{
		{"no-windows", nil, "2026-01-07T12:00:00Z", 100 * time.Hour, "", ""},
		{"inside-fits", ws, "2026-01-03T23:00:00Z", time.Hour, "", ""},
		{"inside-too-long", ws, "2026-01-03T23:00:00Z", 5*time.Hour + time.Minute, "2026-01-10T22:00:00Z", "would end after the window closes"},
		{"outside", ws, "2026-01-07T12:00:00Z", time.Hour, "2026-01-10T22:00:00Z", "outside the maintenance windows"},
		{"longer-than-any-outside", ws, "2026-01-07T12:00:00Z", 7 * time.Hour, "2026-01-10T22:00:00Z", "longer than every maintenance window"},
		{"longer-than-any-inside-starts", ws, "2026-01-03T22:00:00Z", 7 * time.Hour, "", "longer than every maintenance window"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			until, reason := holdDecision(tt.windows, at(tt.now), tt.d, "default")
			if tt.wantUntil == "" && !until.IsZero() || tt.wantUntil != "" && !until.Equal(at(tt.wantUntil)) {
				t.Errorf("until = %s, want %q", until, tt.wantUntil)
			}
			if tt.reason == "" && reason != "" || !strings.Contains(reason, tt.reason) {
				t.Errorf("reason = %q, want %q", reason, tt.reason)
			}
		})
	}
}

func TestDecideDue(t *testing.T) {
	tests := []struct {
		name   string
		paused bool
		active string
		open   bool
		start  bool
	}{
		{"start", false, "", true, true},
		{"paused", true, "", true, false},
		{"run-in-progress", false, "r1", true, false},
		{"window-closed", false, "", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start, reason := decideDue(tt.paused, tt.active, tt.open)
			if start != tt.start || (!start && reason == "") {
				t.Errorf("decideDue = %v %q, want %v with a reason when skipped", start, reason, tt.start)
			}
		})
	}
}

// TestServer_NodeThatDoesNotFitWaitsForNextWindow: in a 16-minute window a node
// predicted to take about a quarter of an hour fits only when it starts right at
// the opening, so the run goes on one node per night: a node that would end after
// the window closes waits for the next one, while the run stays running.
func TestServer_NodeThatDoesNotFitWaitsForNextWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ws, err := schedule.ParseWindows("windows", []policies.WindowSpec{{Days: []string{"all"}, Start: "02:00", End: "02:16"}})
		if err != nil {
			t.Fatal(err)
		}
		e := newEnv(t, envOptions{windows: ws})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		e.s.Start(ctx)
		defer e.s.Shutdown()
		rec := e.do("POST", "/api/v1/runs", operatorSecret, "")
		if rec.Code != http.StatusAccepted {
			t.Fatalf("start: %d %s", rec.Code, rec.Body.String())
		}
		id := decode[RunAction](t, rec).ID

		time.Sleep(12 * time.Hour) // noon of the first day
		synctest.Wait()
		r, err := e.store.Run(id)
		if err != nil || r.State != runs.StateRunning {
			t.Fatalf("between the windows: run state %s, %v; want running", r.State, err)
		}
		nodes, err := e.store.Nodes(id)
		if err != nil {
			t.Fatal(err)
		}
		started := 0
		for _, n := range nodes {
			if !n.StartedAt.IsZero() {
				started++
			}
		}
		if started == 0 || started == len(nodes) {
			t.Fatalf("between the windows %d of %d nodes started, want some but not all", started, len(nodes))
		}
		time.Sleep(7 * 24 * time.Hour)
		synctest.Wait()
		r, err = e.store.Run(id)
		if err != nil || r.State != runs.StateSucceeded {
			t.Fatalf("a week later: run state %s, %v; want succeeded", r.State, err)
		}
		nodes, err = e.store.Nodes(id)
		if err != nil {
			t.Fatal(err)
		}
		days := map[int]bool{}
		for _, n := range nodes {
			end, open := ws.End(n.StartedAt)
			pred := schedule.PredictNode(n.Name, r.Plan, nil)
			if !open || n.StartedAt.Add(pred.Duration).After(end) {
				t.Errorf("node %s started %s (predicted %s, %s): not within a window it fits", n.Name, n.StartedAt, pred.Duration, pred.Source)
			}
			days[n.StartedAt.YearDay()] = true
		}
		if len(days) < 2 {
			t.Errorf("all nodes started on one day: nothing waited for the next window")
		}
		journal, err := e.store.Journal(id)
		if err != nil {
			t.Fatal(err)
		}
		waitedForNext := false
		for _, en := range journal {
			if strings.Contains(en.Detail, "would end after the window closes") {
				waitedForNext = true
			}
		}
		if !waitedForNext {
			t.Error("no node journaled that it waits because it would end after the window")
		}
	})
}

// roundTripFunc answers webhook requests in memory (no socket inside a bubble).
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestServer_CanaryApprovalAndWebhooks: a canary run parks after its first node, says
// so by webhook, refuses resume, and continues once an operator approves it.
func TestServer_CanaryApprovalAndWebhooks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var notes []Notification
		hc := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			var n Notification
			if err := json.NewDecoder(r.Body).Decode(&n); err != nil {
				t.Errorf("webhook body: %v", err)
			}
			mu.Lock()
			notes = append(notes, n)
			mu.Unlock()
			return &http.Response{StatusCode: 204, Body: io.NopCloser(strings.NewReader("")), Header: http.Header{}}, nil
		})}
		e := newEnv(t, envOptions{webhooks: []WebhookConfig{{URL: "https://hooks.example.com/T0/" + hookPathSecret, Events: []string{"run_started", "run_finished", "node_failed", "approval_needed"}, Timeout: time.Second, Retries: 1}}, webhookHTTP: hc})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		e.s.Start(ctx)
		defer e.s.Shutdown()
		rec := e.do("POST", "/api/v1/runs", operatorSecret, `{"policy":{"canary":true}}`)
		if rec.Code != http.StatusAccepted {
			t.Fatalf("start: %d %s", rec.Code, rec.Body.String())
		}
		id := decode[RunAction](t, rec).ID
		time.Sleep(30 * time.Minute)
		synctest.Wait()
		list := decode[[]RunSummary](t, e.do("GET", "/api/v1/runs?state=waiting_approval", viewerSecret, ""))
		if len(list) != 1 || list[0].ID != id {
			t.Fatalf("waiting runs = %+v, want %s", list, id)
		}
		if rec := e.do("POST", "/api/v1/runs/"+id+"/resume", operatorSecret, ""); rec.Code != http.StatusConflict {
			t.Errorf("resume before approval: %d, want 409", rec.Code)
		}
		if rec := e.do("POST", "/api/v1/runs/"+id+"/approve", viewerSecret, ""); rec.Code != http.StatusForbidden {
			t.Errorf("approve with a viewer token: %d, want 403", rec.Code)
		}
		rec = e.do("POST", "/api/v1/runs/"+id+"/approve", operatorSecret, "")
		if rec.Code != http.StatusAccepted || decode[RunAction](t, rec).Action != "approved and resumed" {
			t.Fatalf("approve: %d %s", rec.Code, rec.Body.String())
		}
		time.Sleep(time.Hour)
		synctest.Wait()
		if r, err := e.store.Run(id); err != nil || r.State != runs.StateSucceeded {
			t.Fatalf("after approval: %s, %v", r.State, err)
		}
		e.s.Shutdown() // sends what is queued
		mu.Lock()
		defer mu.Unlock()
		var got []string
		for _, n := range notes {
			if n.RunID != id || n.Cluster != "demo" {
				t.Errorf("notification %+v", n)
			}
			got = append(got, n.Event)
		}
		if strings.Join(got, ",") != "run_started,approval_needed,run_finished" {
			t.Errorf("notifications = %v, want run_started, approval_needed, run_finished", got)
		}
		checkNoSecrets(t, e)
		if strings.Contains(e.logs.String(), hookPathSecret) {
			t.Error("logs show the webhook URL's secret")
		}
	})
}

func TestServer_PreviewPlanAnalyze(t *testing.T) {
	synctest.Test(t, testPreviewPlanAnalyze)
}

func testPreviewPlanAnalyze(t *testing.T) {
	ws, err := schedule.ParseWindows("windows", []policies.WindowSpec{{Days: []string{"all"}, Start: "00:00", End: "24:00"}})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, envOptions{windows: ws})
	pv := decode[Preview](t, e.do("GET", "/api/v1/clusters/demo/preview", viewerSecret, ""))
	if len(pv.Order) != 4 || len(pv.Predictions) != 4 || !pv.DryRun {
		t.Fatalf("preview = %+v", pv)
	}
	var prevEnd time.Time
	for _, name := range pv.Order {
		p := pv.Predictions[name]
		if p.Prediction.Source != "plan" || p.Prediction.Duration <= 0 || !p.Slot.Fits {
			t.Errorf("prediction of %s = %+v", name, p)
		}
		if p.Slot.Start.Before(prevEnd) {
			t.Errorf("node %s slot starts %s, before the previous node ends %s", name, p.Slot.Start, prevEnd)
		}
		prevEnd = p.Slot.Start.Add(p.Prediction.Duration)
	}
	plan := decode[map[string]any](t, e.do("GET", "/api/v1/clusters/demo/plan", viewerSecret, ""))
	if nodes, ok := plan["nodes"].([]any); !ok || len(nodes) != 4 {
		t.Errorf("plan nodes = %v", plan["nodes"])
	}
	an := decode[map[string]any](t, e.do("GET", "/api/v1/clusters/demo/analyze", viewerSecret, ""))
	if an["ready"] != true || an["cluster"] != "demo" {
		t.Errorf("analysis = %v", an)
	}
	cl := decode[[]ClusterInfo](t, e.do("GET", "/api/v1/clusters", viewerSecret, ""))
	if len(cl) != 1 || cl[0].Name != "demo" || !cl[0].WindowOpen || strings.Contains(string(cl[0].Policy), "pre_hook") {
		t.Errorf("clusters = %+v", cl)
	}
}
