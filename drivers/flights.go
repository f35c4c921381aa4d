package drivers

import (
	"context"
	"fmt"
	"sync"
)

// Flights joins the Migrate calls of one driver process for the same VM, as the
// contract asks: a second call to the same target waits for the migration in flight
// and returns its result; a call to another target is rejected. The zero value is ready
// to use; it is safe for concurrent use.
type Flights struct {
	mu sync.Mutex
	m  map[string]*flight
}

type flight struct {
	to   string
	done chan struct{}
	res  MigrationResult
	err  error
}

// Do runs migrate for req unless a migration of req.VM is already in flight here.
func (fs *Flights) Do(ctx context.Context, req MigrateRequest, migrate func() (MigrationResult, error)) (MigrationResult, error) {
	fs.mu.Lock()
	if f, ok := fs.m[req.VM]; ok {
		fs.mu.Unlock()
		if f.to != req.To {
			return MigrationResult{}, fmt.Errorf("migrate %s to %s: a migration to %s is in flight: %w", req.VM, req.To, f.to, ErrRejected)
		}
		select {
		case <-f.done:
			return f.res, f.err
		case <-ctx.Done():
			return MigrationResult{}, ctx.Err()
		}
	}
	if fs.m == nil {
		fs.m = map[string]*flight{}
	}
	f := &flight{to: req.To, done: make(chan struct{})}
	fs.m[req.VM] = f
	fs.mu.Unlock()
	f.res, f.err = migrate()
	fs.mu.Lock()
	delete(fs.m, req.VM)
	fs.mu.Unlock()
	close(f.done)
	return f.res, f.err
}

// Target returns the target of the migration of vm in flight here, "" when none.
func (fs *Flights) Target(vm string) string {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if f, ok := fs.m[vm]; ok {
		return f.to
	}
	return ""
}
