package runs

import (
	"errors"
	"sync"
)

// ErrCrashed: the store refuses writes after the crash point set with CrashAfter.
var ErrCrashed = errors.New("state file closed: the process died at a crash point")

// crashPoint makes a store behave like a process that dies right after its n-th
// committed update: the write is on disk, nothing after it is. Crash tests sweep n
// over a whole run to find a write order that loses or repeats an action.
type crashPoint struct {
	mu      sync.Mutex
	after   int // 0: never
	commits int
	crashed bool
	die     func()
}

// CrashAfter arms a crash point for tests: once n updates have committed, die runs
// (it cancels the run, as the kill of the process would) and every later Update
// fails with ErrCrashed. n = 0 disarms it. Commits counts the updates so far.
func (s *Store) CrashAfter(n int, die func()) {
	s.crash.mu.Lock()
	defer s.crash.mu.Unlock()
	s.crash.after, s.crash.commits, s.crash.crashed, s.crash.die = n, 0, false, die
}

// Commits returns how many updates committed since the last CrashAfter (or Open).
func (s *Store) Commits() int {
	s.crash.mu.Lock()
	defer s.crash.mu.Unlock()
	return s.crash.commits
}

func (c *crashPoint) dead() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.crashed {
		return ErrCrashed
	}
	return nil
}

func (c *crashPoint) committed() {
	c.mu.Lock()
	c.commits++
	fire := c.after > 0 && c.commits == c.after
	if fire {
		c.crashed = true
	}
	die := c.die
	c.mu.Unlock()
	if fire && die != nil {
		die()
	}
}
