package server

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// StateFileError: the state file the daemon opened is no longer the one at its
// path (deleted, or replaced by another file). The daemon goes on writing to the
// file it holds, which nobody else sees, and another drover may now open a new one
// at the path and start a second run on the same cluster: so the daemon starts no
// work any more (no scheduled or API start, no resume) until it is restarted.
type StateFileError struct {
	Path    string
	Problem string
}

func (e *StateFileError) Error() string {
	return fmt.Sprintf("state file %s %s since the daemon opened it: the daemon starts no run, resume, stop or approval any more; check who changed it, then restart the daemon", e.Path, e.Problem)
}

// stateWatch remembers which file the daemon opened and tells when the path names
// another (or none). A problem, once seen, stays: the daemon does not trust the
// file again before a restart.
type stateWatch struct {
	path     string
	dev, ino uint64
	mu       sync.Mutex
	broken   *StateFileError
	gauge    prometheus.Gauge
	off      bool
}

func newStateWatch(path string) *stateWatch {
	w := &stateWatch{path: path, gauge: prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "drover_state_file_replaced",
		Help: "1 when the state file at its path is no longer the one the daemon opened (deleted or replaced): the daemon starts no work.",
	})}
	if st, err := os.Stat(path); err == nil {
		w.dev, w.ino = fileID(st)
	}
	// A store in etcd has no file that could be replaced under the daemon.
	w.off = strings.HasPrefix(path, "etcd:")
	return w
}

func fileID(st os.FileInfo) (dev, ino uint64) {
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		return uint64(sys.Dev), sys.Ino
	}
	return 0, 0
}

// check compares the path with the file opened; it returns the (sticky) problem
// and whether it was seen just now.
func (w *stateWatch) check() (*StateFileError, bool) {
	if w.off {
		return nil, false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.broken != nil {
		return w.broken, false
	}
	st, err := os.Stat(w.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		w.broken = &StateFileError{Path: w.path, Problem: "was deleted"}
	case err != nil:
		return nil, false // unreadable for now: not proof of a replacement
	default:
		if dev, ino := fileID(st); dev != w.dev || ino != w.ino {
			w.broken = &StateFileError{Path: w.path, Problem: fmt.Sprintf("was replaced by another file (device %d inode %d, opened device %d inode %d)", dev, ino, w.dev, w.ino)}
		}
	}
	if w.broken != nil {
		w.gauge.Set(1)
		return w.broken, true
	}
	return nil, false
}

// stateOK is the check before the daemon starts any work; the first time it
// fails it is logged as an error.
func (s *Server) stateOK() error {
	if s.watch == nil {
		return nil
	}
	bad, fresh := s.watch.check()
	if bad == nil {
		return nil
	}
	if fresh {
		s.log.Error("state file replaced or deleted: no more work starts", "path", bad.Path, "problem", bad.Problem)
	}
	return bad
}

// watchLoop checks the state file every interval until the daemon shuts down.
func (s *Server) watchLoop(interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-s.closing:
			return
		case <-t.C:
			_ = s.stateOK()
		}
	}
}

// Health is GET /api/v1/health.
type Health struct {
	// Status is "ok", or "degraded" (the state file was replaced: no work starts;
	// or run records were quarantined).
	Status    string `json:"status"`
	StateFile struct {
		Path    string `json:"path"`
		OK      bool   `json:"ok"`
		Problem string `json:"problem,omitempty"`
	} `json:"state_file"`
	// Quarantined are unreadable run records moved aside (`drover state check`).
	Quarantined []string `json:"quarantined,omitempty"`
}

// handleHealth answers 200 when the daemon can work, 503 when its state file was
// replaced or deleted.
func (s *Server) handleHealth(w http.ResponseWriter, _ *http.Request) {
	var h Health
	h.Status = "ok"
	h.StateFile.Path = s.cfg.Store.Path()
	h.StateFile.OK = true
	status := http.StatusOK
	if err := s.stateOK(); err != nil {
		var sf *StateFileError
		errors.As(err, &sf)
		h.Status, h.StateFile.OK, h.StateFile.Problem = "degraded", false, sf.Problem
		status = http.StatusServiceUnavailable
	}
	s.quarMu.Lock()
	h.Quarantined = append([]string(nil), s.quarantined...)
	s.quarMu.Unlock()
	if len(h.Quarantined) > 0 && h.Status == "ok" {
		h.Status = "degraded"
	}
	writeJSON(w, status, h)
}

// quarantine moves unreadable run records aside at start-up, loudly: one corrupt
// record of an old run must not keep the others from resuming.
func (s *Server) quarantine() {
	moved, err := s.cfg.Store.Quarantine()
	if err != nil {
		s.log.Error("cannot check the state file's run records", "error", err)
	}
	all, qerr := s.cfg.Store.Quarantined()
	if qerr != nil {
		s.log.Error("cannot list quarantined run records", "error", qerr)
	}
	for _, k := range moved {
		s.log.Error("unreadable run record quarantined: every other run goes on; see `drover state check`", "record", k)
	}
	s.quarMu.Lock()
	s.quarantined = all
	s.quarMu.Unlock()
	s.metrics.quarantined.Set(float64(len(all)))
}
