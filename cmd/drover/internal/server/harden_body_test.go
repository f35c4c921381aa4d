package server

import (
	"net/http"
	"strings"
	"testing"
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
