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

// receiver is a webhook endpoint answering a scripted status sequence.
type receiver struct {
	mu       sync.Mutex
	statuses []int // answered in order; 200 once exhausted
	got      []*http.Request
	bodies   []Notification
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	var n Notification
	_ = json.Unmarshal(b, &n)
	rc.mu.Lock()
	rc.got = append(rc.got, r)
	rc.bodies = append(rc.bodies, n)
	status := http.StatusOK
	if len(rc.statuses) > 0 {
		status, rc.statuses = rc.statuses[0], rc.statuses[1:]
	}
	rc.mu.Unlock()
	w.WriteHeader(status)
}

const (
	hookPathSecret  = "T000-B000-XXXXsecretpath"
	hookQuerySecret = "sig-9a8b7c6d5e"
)

func TestNotifier_Deliveries(t *testing.T) {
	tests := []struct {
		name     string
		statuses []int
		events   []string
		send     []orchestrator.Event
		attempts int
		delivery string // the event name received, "" = none
		logs     string // a log message expected
	}{
		{
			name: "retried-after-5xx-until-delivered", statuses: []int{503, 502, 200},
			send:     []orchestrator.Event{{Kind: orchestrator.EventRunStarted, RunID: "r1"}},
			attempts: 3, delivery: "run_started",
		},
		{
			name: "429-is-retried", statuses: []int{429, 200},
			send:     []orchestrator.Event{{Kind: orchestrator.EventRunFinished, RunID: "r1", State: "succeeded"}},
			attempts: 2, delivery: "run_finished",
		},
		{
			name: "4xx-is-not-retried", statuses: []int{400},
			send:     []orchestrator.Event{{Kind: orchestrator.EventRunFinished, RunID: "r1", State: "failed"}},
			attempts: 1, delivery: "run_finished", logs: "webhook refused",
		},
		{
			name: "501-is-not-retried", statuses: []int{501},
			send:     []orchestrator.Event{{Kind: orchestrator.EventApprovalNeeded, RunID: "r1"}},
			attempts: 1, delivery: "approval_needed", logs: "webhook refused",
		},
		{
			name: "gives-up-after-retries", statuses: []int{500, 500, 500, 500},
			send:     []orchestrator.Event{{Kind: orchestrator.EventRunStarted, RunID: "r1"}},
			attempts: 3, delivery: "run_started", logs: "webhook refused",
		},
		{
			name: "node-failure-only", statuses: nil,
			send: []orchestrator.Event{
				{Kind: orchestrator.EventNodeState, RunID: "r1", Node: "n1", State: orchestrator.NodeDone},
				{Kind: orchestrator.EventNodeState, RunID: "r1", Node: "n2", State: orchestrator.NodeFailed, Message: "reboot timeout"},
			},
			attempts: 1, delivery: "node_failed",
		},
		{
			name: "unsubscribed-events-are-not-sent", events: []string{"run_finished"},
			send:     []orchestrator.Event{{Kind: orchestrator.EventRunStarted, RunID: "r1"}, {Kind: orchestrator.EventMigrationDone, RunID: "r1"}},
			attempts: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := &receiver{statuses: tt.statuses}
			srv := httptest.NewServer(rc)
			defer srv.Close()
			logs := &syncBuffer{}
			events := tt.events
			if events == nil {
				events = []string{"run_started", "run_finished", "node_failed", "approval_needed"}
			}
			n := newNotifier([]WebhookConfig{{URL: srv.URL + "/hook/" + hookPathSecret + "?token=" + hookQuerySecret, Events: events, Timeout: 5 * time.Second, Retries: 2}},
				nil, time.Millisecond, "test", slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
			obs := n.observer("demo")
			for _, ev := range tt.send {
				obs.Observe(ev)
			}
			closing := make(chan struct{})
			close(closing)
			n.run(closing, 0) // sends what is queued, then returns

			rc.mu.Lock()
			defer rc.mu.Unlock()
			if len(rc.got) != tt.attempts {
				t.Fatalf("%d attempts, want %d", len(rc.got), tt.attempts)
			}
			for i, r := range rc.got {
				body := rc.bodies[i]
				if body.Event != tt.delivery || body.Cluster != "demo" || body.RunID != "r1" || body.ID == "" || body.ID != rc.bodies[0].ID {
					t.Errorf("attempt %d body %+v", i+1, body)
				}
				if r.Header.Get("X-Drover-Event") != tt.delivery || r.Header.Get("Content-Type") != "application/json" || r.Method != http.MethodPost {
					t.Errorf("attempt %d: %s %v", i+1, r.Method, r.Header)
				}
			}
			out := logs.String()
			if tt.logs != "" && !strings.Contains(out, tt.logs) {
				t.Errorf("logs lack %q: %s", tt.logs, out)
			}
			if strings.Contains(out, hookPathSecret) || strings.Contains(out, hookQuerySecret) {
				t.Errorf("logs show the webhook URL's secret: %s", out)
			}
		})
	}
}

func TestNotifier_UnreachableTargetLogsNoSecret(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL + "/hook/" + hookPathSecret + "?token=" + hookQuerySecret
	srv.Close() // nothing listens there any more
	logs := &syncBuffer{}
	n := newNotifier([]WebhookConfig{{URL: url, Events: []string{"run_started"}, Timeout: time.Second, Retries: 1}},
		nil, time.Millisecond, "test", slog.New(slog.NewJSONHandler(logs, nil)))
	n.observer("demo").Observe(orchestrator.Event{Kind: orchestrator.EventRunStarted, RunID: "r1"})
	closing := make(chan struct{})
	close(closing)
	n.run(closing, 0)
	out := logs.String()
	if !strings.Contains(out, "webhook not delivered") || !strings.Contains(out, strings.TrimPrefix(srv.URL, "http://")) {
		t.Errorf("logs do not report the failed delivery with its host: %s", out)
	}
	if strings.Contains(out, hookPathSecret) || strings.Contains(out, hookQuerySecret) {
		t.Errorf("logs show the webhook URL's secret: %s", out)
	}
}

func TestRedact(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"path-and-query-dropped", "https://hooks.example.com/services/T0/B0/XXXX?sig=abc", "https://hooks.example.com"},
		{"userinfo-dropped", "https://user:pass@hooks.example.com:8443/x", "https://hooks.example.com:8443"},
		{"garbage", "::not a url", "(invalid url)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := redact(tt.in); got != tt.want {
				t.Errorf("redact(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
