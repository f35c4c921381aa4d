package server

import (
	"bufio"
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
)

// TestServer_EventsProgressJSON: migration_progress events carry the progress in
// the API's snake_case, with the elapsed time in seconds.
func TestServer_EventsProgressJSON(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, envOptions{})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		e.s.Start(ctx)
		defer e.s.Shutdown()
		rec := e.do("POST", "/api/v1/runs", operatorSecret, `{}`)
		if rec.Code != http.StatusAccepted {
			t.Fatalf("start: %d %s", rec.Code, rec.Body.String())
		}
		act := decode[RunAction](t, rec)
		body := e.do("GET", "/api/v1/runs/"+act.ID+"/events", viewerSecret, "").Body.String()

		want := []string{"elapsed_seconds", "from", "phase", "remaining_mib", "round", "to", "transferred_mib", "vm"}
		seen := 0
		sc := bufio.NewScanner(strings.NewReader(body))
		sc.Buffer(nil, 1<<20)
		kind := ""
		for sc.Scan() {
			line := sc.Text()
			if k, ok := strings.CutPrefix(line, "event: "); ok {
				kind = k
				continue
			}
			data, ok := strings.CutPrefix(line, "data: ")
			if !ok || kind != "migration_progress" {
				continue
			}
			seen++
			var ev struct {
				Progress map[string]any `json:"progress"`
			}
			if err := json.Unmarshal([]byte(data), &ev); err != nil {
				t.Fatalf("event data %s: %v", data, err)
			}
			if got := slices.Sorted(maps.Keys(ev.Progress)); !slices.Equal(got, want) {
				t.Fatalf("progress keys %v, want %v: %s", got, want, data)
			}
			// Seconds, not nanoseconds: a migration of the demo takes minutes at most.
			if s, ok := ev.Progress["elapsed_seconds"].(float64); !ok || s < 0 || s > 3600 {
				t.Errorf("elapsed_seconds = %v, want seconds (0..3600): %s", ev.Progress["elapsed_seconds"], data)
			}
			if ev.Progress["vm"] == "" || ev.Progress["to"] == "" {
				t.Errorf("progress without vm or target: %s", data)
			}
		}
		if seen == 0 {
			t.Fatalf("no migration_progress event streamed:\n%.2000s", body)
		}
	})
}
