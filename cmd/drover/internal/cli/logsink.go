package cli

import (
	"io"
	"sync"
)

// logSink is the writer of a session's logger: a live display takes it over while
// it runs, so that driver warnings are printed above the display, not into it.
type logSink struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	w := s.w
	s.mu.Unlock()
	return w.Write(p)
}

// set sends log lines to w until the returned function is called.
func (s *logSink) set(w io.Writer) (restore func()) {
	s.mu.Lock()
	old := s.w
	s.w = w
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		s.w = old
		s.mu.Unlock()
	}
}
