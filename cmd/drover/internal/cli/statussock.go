package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/droverhq/drover/orchestrator"
	"github.com/droverhq/drover/runs"
	"github.com/droverhq/drover/runs/report"
)

// A CLI run holds its state file locked: a second terminal cannot open it. The
// running process therefore answers read-only questions on a UNIX socket next to
// the state file (FILE.sock, 0600: only its owner may connect): the runs, a run's
// report and its live events. `runs list|show|watch` use it when the file is locked.

// statusSocketPath is the socket of the process holding the state file at path.
func statusSocketPath(statePath string) string { return statePath + ".sock" }

// serveStatus serves the session's runs on the status socket until the returned
// function is called. A socket that cannot be made is no reason to fail the run:
// it is logged and the run goes on.
func serveStatus(s *session) (stop func()) {
	path := statusSocketPath(s.statePath)
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&fs.ModeSocket != 0 {
		// Left by a killed process (we hold the state file's lock: nobody else can
		// be serving it).
		_ = os.Remove(path)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		s.log.Warn("status socket not served: other terminals cannot watch this run", "path", path, "error", err)
		return func() {}
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		_ = os.Remove(path)
		s.log.Warn("status socket not served", "path", path, "error", err)
		return func() {}
	}
	hub := &eventHub{subs: map[chan orchestrator.Event]bool{}}
	remove := s.observers.Add(hub)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /runs", func(w http.ResponseWriter, r *http.Request) {
		list := []runSummary{}
		rs, err := s.store.Runs(s.cfg.Cluster.Name)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		for _, r := range rs {
			list = append(list, runSummary{ID: r.ID, Cluster: r.Cluster, State: r.State, StartedAt: r.StartedAt, FinishedAt: r.FinishedAt, Nodes: len(r.Order), Error: r.Error})
		}
		_ = json.NewEncoder(w).Encode(list)
	})
	mux.HandleFunc("GET /runs/{id}", func(w http.ResponseWriter, r *http.Request) {
		run, err := findRun(s.store, s.cfg.Cluster.Name, r.PathValue("id"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		nodes, err := s.store.Nodes(run.ID)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		_ = json.NewEncoder(w).Encode(report.Build(run, nodes))
	})
	mux.HandleFunc("GET /runs/{id}/events", func(w http.ResponseWriter, r *http.Request) {
		run, err := findRun(s.store, s.cfg.Cluster.Name, r.PathValue("id"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		ch := hub.subscribe()
		defer hub.unsubscribe(ch)
		fl, _ := w.(http.Flusher)
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.WriteHeader(http.StatusOK)
		if fl != nil {
			fl.Flush()
		}
		enc := json.NewEncoder(w)
		for {
			select {
			case ev, ok := <-ch:
				if !ok {
					return
				}
				if ev.RunID != "" && ev.RunID != run.ID {
					continue
				}
				if enc.Encode(ev) != nil {
					return
				}
				if fl != nil {
					fl.Flush()
				}
			case <-r.Context().Done():
				return
			}
		}
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	return func() {
		remove()
		hub.close()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		_ = os.Remove(path)
	}
}

// eventHub fans the run's events out to the watchers on the socket; a watcher too
// slow to keep up loses events, never slows the run.
type eventHub struct {
	mu     sync.Mutex
	subs   map[chan orchestrator.Event]bool
	closed bool
}

func (h *eventHub) Observe(ev orchestrator.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs {
		select {
		case ch <- ev:
		default:
		}
	}
}

func (h *eventHub) subscribe() chan orchestrator.Event {
	ch := make(chan orchestrator.Event, 256)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		close(ch)
		return ch
	}
	h.subs[ch] = true
	return ch
}

func (h *eventHub) unsubscribe(ch chan orchestrator.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.subs[ch] {
		delete(h.subs, ch)
		close(ch)
	}
}

func (h *eventHub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for ch := range h.subs {
		delete(h.subs, ch)
		close(ch)
	}
}

// statusClient talks to the status socket of the process holding statePath.
type statusClient struct {
	hc *http.Client
}

// dialStatus returns a client of the status socket, or nil when nobody serves it.
func dialStatus(statePath string) *statusClient {
	path := statusSocketPath(statePath)
	c, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return nil
	}
	c.Close()
	return &statusClient{hc: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}}
}

func (c *statusClient) get(ctx context.Context, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://drover"+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("ask the running drover: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var b [512]byte
		n, _ := resp.Body.Read(b[:])
		return errors.New(string(b[:n]))
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// events calls fn with each event of run id until the run's process stops
// serving (the run ended) or fn returns true.
func (c *statusClient) events(ctx context.Context, id string, fn func(orchestrator.Event) bool) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://drover/runs/"+id+"/events", nil)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("ask the running drover: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("run %s: status %d", id, resp.StatusCode)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var ev orchestrator.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return err
		}
		if fn(ev) {
			return nil
		}
	}
	return nil
}

// lockedStatus: when err says the state file is locked by another process, the
// client of that process's status socket (nil otherwise).
func (f *Factory) lockedStatus(err error) *statusClient {
	var le *runs.LockedError
	if !errors.As(err, &le) {
		return nil
	}
	return dialStatus(le.Path)
}
