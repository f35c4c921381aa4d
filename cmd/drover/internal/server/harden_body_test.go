package server

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/droverhq/drover/orchestrator"
	"github.com/droverhq/drover/runs"
)

// TestAPI_BodiesAreStrict: a repeated key, a key in the wrong case, and a body
// without Content-Type: application/json are refused before anything happens; no
// run starts (issue 10, item 15).
func TestAPI_BodiesAreStrict(t *testing.T) {
	e := newEnv(t, envOptions{})
	tests := []struct {
		name, body, ct string
		status         int
		field, msg     string
	}{
		{"duplicate-top-key", `{"cluster":"demo","cluster":"other"}`, "application/json", 400, "cluster", "given twice"},
		{"duplicate-policy-key", `{"policy":{"force":false,"force":true}}`, "application/json", 400, "policy.force", "given twice"},
		{"key-case", `{"Cluster":"demo"}`, "application/json", 400, "Cluster", `case-sensitive: write "cluster"`},
		{"policy-key-case", `{"policy":{"Force":true}}`, "application/json", 400, "policy.Force", `write "force"`},
		{"no-content-type", `{"cluster":"demo"}`, "", 415, "", "needs Content-Type: application/json"},
		{"text-plain", `{"cluster":"demo"}`, "text/plain", 415, "", "Content-Type: application/json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRequest("/api/v1/runs", tt.body, tt.ct)
			if tt.ct == "" {
				r.Header.Del("Content-Type")
			}
			rec := e.serve(r)
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.status, rec.Body)
			}
			got := decode[ErrorBody](t, rec)
			if got.Field != tt.field || !strings.Contains(got.Error, tt.msg) {
				t.Errorf("answer %+v, want field %q and %q", got, tt.field, tt.msg)
			}
		})
	}
	if n := len(e.runsOf()); n != 0 {
		t.Errorf("%d runs started by refused bodies", n)
	}
	// The same rules hold for the action routes' empty objects.
	rec := e.serve(newRequest("/api/v1/clusters/demo/pause", `{}`, "application/json"))
	if rec.Code != http.StatusOK {
		t.Fatalf("pause with {}: %d %s", rec.Code, rec.Body)
	}
}

// TestAPI_OverridesAreBounded: an API start with a policy number beyond its bound
// is refused, naming the key (issue 10, item 9).
func TestAPI_OverridesAreBounded(t *testing.T) {
	e := newEnv(t, envOptions{})
	for body, field := range map[string]string{
		`{"policy":{"retries_per_node":1000000000}}`: "policy.retries_per_node",
		`{"policy":{"max_parallel_nodes":100000}}`:   "policy.max_parallel_nodes",
	} {
		rec := e.serve(newRequest("/api/v1/runs", body, "application/json"))
		got := decode[ErrorBody](t, rec)
		if rec.Code != 400 || got.Field != field || !strings.Contains(got.Error, "out of range") {
			t.Errorf("%s: %d %+v, want 400 on %s", body, rec.Code, got, field)
		}
	}
	if n := len(e.runsOf()); n != 0 {
		t.Errorf("%d runs started", n)
	}
}

// TestAPI_RefusesAStoredPolicyThatIsNotTheConfigs: a run stored with other hook
// commands than the daemon's config is not resumed, at start-up nor through the
// API (409 naming the key) (issue 10, item 3).
func TestAPI_RefusesAStoredPolicyThatIsNotTheConfigs(t *testing.T) {
	e := newEnv(t, envOptions{})
	p := orchestrator.DefaultPolicy()
	p.PreHook.Command = []string{"/bin/true", "planted"}
	eng, err := orchestrator.New(orchestrator.Config{Cluster: "demo", Driver: e.drv, Updater: e.drv, Store: e.store,
		Owner: runs.Owner{PID: 1 << 30, Host: "gone"}})
	if err != nil {
		t.Fatal(err)
	}
	prep, err := eng.Prepare(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	id, err := eng.Start(context.Background(), prep)
	if err != nil {
		t.Fatal(err)
	}
	e.open(envOptions{}) // a daemon starting with this run interrupted
	e.s.Start(context.Background())
	t.Cleanup(e.s.Shutdown)
	if !strings.Contains(e.logs.String(), "was started with another policy.pre_hook.command than the config has") {
		t.Errorf("start-up did not refuse to resume:\n%s", e.logs.String())
	}
	for _, action := range []string{"resume", "stop"} {
		rec := e.serve(newRequest("/api/v1/runs/"+id+"/"+action, "{}", "application/json"))
		got := decode[ErrorBody](t, rec)
		if rec.Code != http.StatusConflict || !strings.Contains(got.Error, "policy.pre_hook.command") || strings.Contains(got.Error, "planted") {
			t.Errorf("%s: %d %+v, want 409 naming the key only", action, rec.Code, got)
		}
	}
	r, err := e.store.Run(id)
	if err != nil || r.State != runs.StateRunning || r.Resumes != 0 {
		t.Errorf("run %+v %v, want it untouched", r, err)
	}
}
