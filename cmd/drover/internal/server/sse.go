package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/droverhq/drover/orchestrator"
	"github.com/droverhq/drover/runs"
)

// sseHeartbeat keeps proxies from closing an idle event stream.
const sseHeartbeat = 15 * time.Second

// sseBuffer is how many events a slow client may lag behind before events are
// dropped (a "lagged" event says how many).
const sseBuffer = 512

// handleEvents streams a run's live events as Server-Sent Events: one "event: KIND"
// with "data: {orchestrator.Event JSON}" per event. The stream ends after
// run_finished; for a run that has already ended it sends one run_finished at once.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	run, err := s.resolveRun(r.PathValue("id"), r.URL.Query().Get("cluster"))
	if err != nil {
		writeRunError(w, err)
		return
	}
	c, ok := s.clusters[run.Cluster]
	if !ok {
		writeError(w, http.StatusNotFound, ErrorBody{Error: fmt.Sprintf("run %s belongs to cluster %s, which this daemon does not run", run.ID, run.Cluster)})
		return
	}
	flusher, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, ErrorBody{Error: "streaming unsupported"})
		return
	}
	// At most server.max_event_clients streams at once: each holds a connection
	// and a goroutine for as long as the run lasts.
	select {
	case s.streams <- struct{}{}:
		defer func() { <-s.streams }()
	default:
		w.Header().Set("Retry-After", "30")
		writeError(w, http.StatusTooManyRequests, ErrorBody{Error: fmt.Sprintf("%d event streams are open, the most server.max_event_clients allows: close one, or follow the run with GET %s/runs/%s", cap(s.streams), APIPrefix, run.ID)})
		return
	}
	// A stream lasts as long as its run: the server's write timeout is for the
	// other routes.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Time{})
	sub := &subscriber{runID: run.ID, ch: make(chan orchestrator.Event, sseBuffer), lagged: make(chan struct{}, 1)}
	defer c.obs.Add(sub)()

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	seq := 0
	send := func(ev orchestrator.Event) bool {
		b, err := json.Marshal(ev)
		if err != nil {
			return false
		}
		seq++
		if _, err := fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", seq, ev.Kind, b); err != nil {
			return false
		}
		flusher.Flush()
		return true
	}
	// Subscribed first, then read: a run that ends in between is seen either way.
	if cur, err := s.cfg.Store.Run(run.ID); err == nil && cur.State.Terminal() {
		send(finishedEvent(cur))
		return
	}
	// A comment first, so the client knows the stream is up.
	fmt.Fprintf(w, ": run %s\n\n", run.ID)
	flusher.Flush()
	beat := time.NewTicker(sseHeartbeat)
	defer beat.Stop()
	for {
		select {
		case ev := <-sub.ch:
			if !send(ev) || ev.Kind == orchestrator.EventRunFinished {
				return
			}
		case <-sub.lagged:
			n := sub.takeLost()
			if !send(orchestrator.Event{Kind: "lagged", RunID: run.ID, Time: time.Now(), Message: fmt.Sprintf("%d events dropped: the client reads too slowly", n)}) {
				return
			}
		case <-beat.C:
			if _, err := fmt.Fprint(w, ": keepalive\n\n"); err != nil {
				return
			}
			flusher.Flush()
		case <-r.Context().Done():
			return
		case <-s.closing:
			return
		}
	}
}

func finishedEvent(r runs.Run) orchestrator.Event {
	at := r.FinishedAt
	if at.IsZero() {
		at = time.Now()
	}
	return orchestrator.Event{Kind: orchestrator.EventRunFinished, RunID: r.ID, State: string(r.State), Message: r.Error, Time: at}
}

// subscriber passes one run's events to an event stream without ever blocking the
// run: when the stream lags, events are dropped and counted. (A pointer, so that
// Observers can remove it.)
type subscriber struct {
	runID string
	ch    chan orchestrator.Event
	// lagged is signalled when events were dropped; lost counts them.
	lagged chan struct{}
	mu     sync.Mutex
	lost   int
}

func (sb *subscriber) Observe(ev orchestrator.Event) {
	if ev.RunID != sb.runID {
		return
	}
	select {
	case sb.ch <- ev:
		return
	default:
	}
	sb.mu.Lock()
	sb.lost++
	sb.mu.Unlock()
	select {
	case sb.lagged <- struct{}{}:
	default:
	}
}

// takeLost returns and resets the count of dropped events.
func (sb *subscriber) takeLost() int {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	n := sb.lost
	sb.lost = 0
	return n
}
