package drivers

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
)

func TestFlights_Do(t *testing.T) {
	synctest.Test(t, testFlightsDo)
}

func testFlightsDo(t *testing.T) {
	var fs Flights
	release := make(chan struct{})
	started := make(chan struct{})
	calls := 0
	var wg sync.WaitGroup
	var first MigrationResult
	wg.Go(func() {
		first, _ = fs.Do(context.Background(), MigrateRequest{VM: "v", To: "b"}, func() (MigrationResult, error) {
			calls++
			close(started)
			<-release
			return MigrationResult{TransferredMiB: 42}, nil
		})
	})
	<-started
	if got := fs.Target("v"); got != "b" {
		t.Errorf("Target(v) = %q while in flight, want b", got)
	}
	if _, err := fs.Do(context.Background(), MigrateRequest{VM: "v", To: "c"}, nil); !errors.Is(err, ErrRejected) {
		t.Errorf("a migration to another target = %v, want ErrRejected", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := fs.Do(ctx, MigrateRequest{VM: "v", To: "b"}, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("a cancelled joiner = %v, want context.Canceled", err)
	}
	var joined MigrationResult
	wg.Go(func() {
		joined, _ = fs.Do(context.Background(), MigrateRequest{VM: "v", To: "b"}, func() (MigrationResult, error) {
			t.Error("the joiner ran a second migration")
			return MigrationResult{}, nil
		})
	})
	synctest.Wait() // the joiner waits on the flight
	close(release)
	wg.Wait()
	if calls != 1 || first.TransferredMiB != 42 || joined.TransferredMiB != 42 {
		t.Errorf("calls %d, first %+v, joined %+v", calls, first, joined)
	}
	if got := fs.Target("v"); got != "" {
		t.Errorf("Target(v) = %q after the migration, want none", got)
	}
}
