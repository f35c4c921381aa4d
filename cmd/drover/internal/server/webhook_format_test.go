package server

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/droverhq/drover/orchestrator"
)

// TestNotifier_Formats: each format's body, as a loopback receiver gets it, has
// the text field Slack and Teams require; the timestamp is wall time and the
// cluster's (simulated, 2 h ahead) time is a separate, labelled field.
func TestNotifier_Formats(t *testing.T) {
	clusterAt := time.Now().Add(2 * time.Hour) // a simulator running ahead
	tests := []struct {
		name, format string
		check        func(t *testing.T, body map[string]any)
	}{
		{name: "slack", format: "slack", check: func(t *testing.T, b map[string]any) {
			if len(b) != 1 {
				t.Errorf("slack body has more than text: %v", b)
			}
		}},
		{name: "teams", format: "teams", check: func(t *testing.T, b map[string]any) {
			if b["@type"] != "MessageCard" || b["summary"] == "" {
				t.Errorf("teams body is no MessageCard: %v", b)
			}
		}},
		{name: "generic", format: "generic", check: func(t *testing.T, b map[string]any) {
			wall, err := time.Parse(time.RFC3339Nano, b["time"].(string))
			if err != nil || time.Since(wall).Abs() > time.Minute {
				t.Errorf("time %v is not the wall clock (err %v)", b["time"], err)
			}
			ct, err := time.Parse(time.RFC3339Nano, b["cluster_time"].(string))
			if err != nil || !ct.Equal(clusterAt.UTC()) {
				t.Errorf("cluster_time %v, want %v", b["cluster_time"], clusterAt.UTC())
			}
			if b["event"] != "node_failed" || b["node"] != "n2" {
				t.Errorf("generic body %v", b)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var bodies []map[string]any
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				raw, _ := io.ReadAll(r.Body)
				var b map[string]any
				if err := json.Unmarshal(raw, &b); err != nil {
					http.Error(w, "not JSON", http.StatusBadRequest)
					return
				}
				// As Slack and Teams do: no text, no message.
				if s, _ := b["text"].(string); s == "" {
					http.Error(w, "no_text", http.StatusBadRequest)
					return
				}
				mu.Lock()
				bodies = append(bodies, b)
				mu.Unlock()
			}))
			defer srv.Close()
			n := newNotifier([]WebhookConfig{{URL: srv.URL + "/hook", Events: []string{"node_failed"}, Timeout: 5 * time.Second, Format: tt.format}},
				nil, time.Millisecond, "test", slog.New(slog.NewTextHandler(io.Discard, nil)))
			n.observer("demo").Observe(orchestrator.Event{Kind: orchestrator.EventNodeState, RunID: "r1", Node: "n2", State: orchestrator.NodeFailed, Message: "install failed", Time: clusterAt})
			closing := make(chan struct{})
			close(closing)
			n.run(closing, 0)
			mu.Lock()
			defer mu.Unlock()
			if len(bodies) != 1 {
				t.Fatalf("%d bodies accepted, want 1", len(bodies))
			}
			text, _ := bodies[0]["text"].(string)
			for _, w := range []string{"cluster demo", "run r1", "node n2 failed", "install failed", "wall, UTC"} {
				if !strings.Contains(text, w) {
					t.Errorf("text %q lacks %q", text, w)
				}
			}
			tt.check(t, bodies[0])
		})
	}
}
