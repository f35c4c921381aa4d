package libvirt

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/droverhq/drover/drivers"
)

// pauseStore persists which hosts are paused, because libvirt has no maintenance mode
// of its own and a pause must survive a restart of Drover. Every read goes to the file
// (another Drover process, e.g. a resumed run, may have written it); every write
// replaces the file atomically with mode 0600.
type pauseStore struct {
	path string
	mu   sync.Mutex
}

// pauseFile is the file's format.
type pauseFile struct {
	Version int `json:"version"`
	// Paused maps host names to the time they were paused.
	Paused map[string]time.Time `json:"paused"`
	// Owners maps paused host names to the owner mark of their pause.
	Owners map[string]string `json:"owners,omitempty"`
}

func newPauseStore(path string) (*pauseStore, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("open pause store: %w", err)
	}
	s := &pauseStore{path: path}
	if _, err := s.read(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *pauseStore) read() (pauseFile, error) {
	data, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return pauseFile{Version: 1, Paused: map[string]time.Time{}, Owners: map[string]string{}}, nil
	}
	if err != nil {
		return pauseFile{}, fmt.Errorf("read pause file: %w", err)
	}
	var f pauseFile
	if err := json.Unmarshal(data, &f); err != nil {
		return pauseFile{}, fmt.Errorf("read pause file %s: %w (fix or delete it; it lists the paused hosts)", s.path, err)
	}
	if f.Version != 1 {
		return pauseFile{}, fmt.Errorf("read pause file %s: unknown version %d", s.path, f.Version)
	}
	if f.Paused == nil {
		f.Paused = map[string]time.Time{}
	}
	if f.Owners == nil {
		f.Owners = map[string]string{}
	}
	return f, nil
}

// Paused returns the paused hosts, sorted.
func (s *pauseStore) Paused() ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, err := s.read()
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(f.Paused))
	for h := range f.Paused {
		out = append(out, h)
	}
	sort.Strings(out)
	return out, nil
}

// Marks maps every paused host to the owner mark of its pause ("" = unmarked).
func (s *pauseStore) Marks() (map[string]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, err := s.read()
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(f.Paused))
	for h := range f.Paused {
		out[h] = f.Owners[h]
	}
	return out, nil
}

// IsPaused reports whether host is paused.
func (s *pauseStore) IsPaused(host string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, err := s.read()
	if err != nil {
		return false, err
	}
	_, ok := f.Paused[host]
	return ok, nil
}

// Set pauses (paused=true) or resumes host; a pause records owner's mark. Setting the
// current state is a no-op that keeps the original pause time. Pausing a host marked
// by another owner fails with drivers.ErrPausedByOther.
func (s *pauseStore) Set(host string, paused bool, owner string, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, err := s.read()
	if err != nil {
		return err
	}
	_, was := f.Paused[host]
	if paused && was && f.Owners[host] != "" && owner != "" && f.Owners[host] != owner {
		return fmt.Errorf("%w: %s", drivers.ErrPausedByOther, f.Owners[host])
	}
	if was == paused && (!paused || owner == "" || f.Owners[host] == owner) {
		return nil
	}
	if paused {
		if !was {
			f.Paused[host] = now.UTC()
		}
		if owner != "" {
			f.Owners[host] = owner
		}
	} else {
		delete(f.Paused, host)
		delete(f.Owners, host)
	}
	return s.write(f)
}

// write replaces the file atomically: a crash leaves the old or the new file, never a
// torn one.
func (s *pauseStore) write(f pauseFile) error {
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("write pause file: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(s.path), ".paused-*.tmp")
	if err != nil {
		return fmt.Errorf("write pause file: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("write pause file: %w", err)
	}
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("write pause file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write pause file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write pause file: %w", err)
	}
	if err := os.Rename(tmp.Name(), s.path); err != nil {
		return fmt.Errorf("write pause file: %w", err)
	}
	if dir, err := os.Open(filepath.Dir(s.path)); err == nil {
		_ = dir.Sync() // make the rename durable; not all file systems support it
		dir.Close()
	}
	return nil
}
