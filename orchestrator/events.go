package orchestrator

import (
	"sync"
	"time"

	"github.com/droverhq/drover/drivers"
)

// EventKind says what an Event reports.
type EventKind string

const (
	EventRunStarted        EventKind = "run_started"
	EventRunResumed        EventKind = "run_resumed"
	EventRunFinished       EventKind = "run_finished"
	EventNodeState         EventKind = "node_state"
	EventMigrationStarted  EventKind = "migration_started"
	EventMigrationProgress EventKind = "migration_progress"
	EventMigrationDone     EventKind = "migration_done"
	EventMigrationFailed   EventKind = "migration_failed"
	// EventMigrationAborted: the run cut a migration off (stop, interrupt); the VM
	// stayed on its source. Not a failure of the migration.
	EventMigrationAborted EventKind = "migration_aborted"
	EventUpdatesInstalled EventKind = "updates_installed"
	EventWarning          EventKind = "warning"
	EventApprovalNeeded   EventKind = "approval_needed"
)

// Event is one thing that happened in a run, for live displays, logs, the event
// stream of the API and notifications.
type Event struct {
	Kind  EventKind `json:"kind"`
	Time  time.Time `json:"time"` // cluster time
	RunID string    `json:"run_id"`
	Node  string    `json:"node,omitempty"`
	// State is the node's or the run's new state.
	State    string                     `json:"state,omitempty"`
	VM       string                     `json:"vm,omitempty"`
	From     string                     `json:"from,omitempty"`
	To       string                     `json:"to,omitempty"`
	Progress *drivers.MigrationProgress `json:"progress,omitempty"`
	Seconds  float64                    `json:"seconds,omitempty"`
	Message  string                     `json:"message,omitempty"`
	// Index and Total place the node in the run ("node 2 of 4").
	Index int `json:"index,omitempty"`
	Total int `json:"total,omitempty"`
}

// Observer receives events. Observe must not block: it is called from the run's
// goroutines.
type Observer interface {
	Observe(Event)
}

// ObserverFunc adapts a function to Observer.
type ObserverFunc func(Event)

// Observe calls f.
func (f ObserverFunc) Observe(e Event) { f(e) }

// Observers fans events out to several observers.
type Observers struct {
	mu   sync.RWMutex
	list []Observer
}

// Add registers o and returns a function that removes it.
func (os *Observers) Add(o Observer) (remove func()) {
	os.mu.Lock()
	defer os.mu.Unlock()
	os.list = append(os.list, o)
	return func() {
		os.mu.Lock()
		defer os.mu.Unlock()
		for i, x := range os.list {
			if x == o {
				os.list = append(os.list[:i:i], os.list[i+1:]...)
				return
			}
		}
	}
}

// Observe passes e to every registered observer.
func (os *Observers) Observe(e Event) {
	os.mu.RLock()
	defer os.mu.RUnlock()
	for _, o := range os.list {
		o.Observe(e)
	}
}
