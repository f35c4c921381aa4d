package apiclient

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/droverhq/drover/orchestrator"
)

func TestNew(t *testing.T) {
	tests := []struct {
		name, url, token string
		wantErr          string
	}{
		{"ok", "http://127.0.0.1:8086/", "t", ""},
		{"https", "https://drover.example.com:8443", "t", ""},
		{"no-scheme", "127.0.0.1:8086", "t", "--server"},
		{"token-in-url", "http://user:secret@127.0.0.1:8086", "t", "--server"},
		{"query", "http://127.0.0.1:8086?token=x", "t", "--server"},
		{"no-token", "http://127.0.0.1:8086", "", "DROVER_TOKEN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.url, tt.token, nil)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("New = %v, want error containing %q", err, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "secret") {
				t.Errorf("error repeats the URL's secret: %v", err)
			}
		})
	}
}

// sseServer answers the events route with body and checks the token.
func sseServer(t *testing.T, body string) *Client {
	t.Helper()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":"missing or unknown bearer token"}`))
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(ts.Close)
	c, err := New(ts.URL, "tok", nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestClient_Events(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		kinds   []string
		wantErr error
	}{
		{
			name:  "until-run-finished",
			body:  ": run r1\n\nid: 1\nevent: node_state\ndata: {\"kind\":\"node_state\",\"run_id\":\"r1\",\"node\":\"a\",\"state\":\"draining\"}\n\n: keepalive\n\nid: 2\nevent: run_finished\ndata: {\"kind\":\"run_finished\",\"run_id\":\"r1\",\"state\":\"succeeded\"}\n\nid: 3\nevent: node_state\ndata: {\"kind\":\"node_state\",\"run_id\":\"r1\"}\n\n",
			kinds: []string{"node_state", "run_finished"},
		},
		{
			name:    "stream-ends-early",
			body:    "id: 1\nevent: node_state\ndata: {\"kind\":\"node_state\",\"run_id\":\"r1\"}\n\n",
			kinds:   []string{"node_state"},
			wantErr: ErrStreamEnded,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := sseServer(t, tt.body)
			var kinds []string
			err := c.Events(context.Background(), "r1", func(ev orchestrator.Event) (bool, error) {
				kinds = append(kinds, string(ev.Kind))
				return false, nil
			})
			if !errors.Is(err, tt.wantErr) && (err != nil || tt.wantErr != nil) {
				t.Errorf("Events = %v, want %v", err, tt.wantErr)
			}
			if strings.Join(kinds, ",") != strings.Join(tt.kinds, ",") {
				t.Errorf("events %v, want %v", kinds, tt.kinds)
			}
		})
	}
}

func TestClient_APIError(t *testing.T) {
	c := sseServer(t, "")
	c.token = "wrong"
	_, err := c.Runs(context.Background(), "")
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized || !strings.Contains(ae.Error(), "401") || strings.Contains(ae.Error(), "wrong") {
		t.Errorf("err = %v, want a 401 APIError without the token", err)
	}
}
