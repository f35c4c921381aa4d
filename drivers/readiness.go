package drivers

import (
	"context"
	"encoding/json"
	"time"
)

// Readiness check outcomes (ReadinessCheck.Status), the values of drover analyze's own
// checks, so that analyze takes a driver's findings over as they are.
const (
	CheckPass = "pass"
	CheckWarn = "warn"
	CheckFail = "fail"
)

// ReadinessCheck is one finding of a platform's own readiness checks.
type ReadinessCheck struct {
	Name string `json:"name"`
	// Status is CheckPass, CheckWarn or CheckFail.
	Status  string `json:"status"`
	Message string `json:"message"`
	// Remedy says how to fix a warning or a failure.
	Remedy string `json:"remedy,omitempty"`
}

// ReadinessChecker is implemented by drivers that know what their platform needs for
// a rolling run beyond the inventory (reachability of every node, quorum, live
// migration settings, shared volumes, token rights, storage health, reboots already
// pending, ...). drover analyze adds its checks to its own. Readiness changes nothing;
// an error means the checks could not run at all.
type ReadinessChecker interface {
	Readiness(ctx context.Context) ([]ReadinessCheck, error)
}

// Probe is the raw answer of one read-only probe of a node, as drover driver check
// records it for the driver's tests (a fixture).
type Probe struct {
	Node     string          `json:"node"`
	Op       string          `json:"op"`
	Params   json.RawMessage `json:"params,omitempty"`
	Stdout   string          `json:"stdout"`
	Stderr   string          `json:"stderr,omitempty"`
	ExitCode int             `json:"exit_code"`
	// Error is a transport error (the probe did not run), "" when it ran.
	Error   string  `json:"error,omitempty"`
	Seconds float64 `json:"seconds"`
}

// Prober is implemented by drivers that can run every read-only probe they use
// (inventory, readiness) against the live platform and return the raw answers,
// without changing anything.
type Prober interface {
	Probe(ctx context.Context) ([]Probe, error)
}

// ProbeFile is what drover driver check writes: the driver's name and its probes.
// A driver's tests replay it.
type ProbeFile struct {
	Driver     string    `json:"driver"`
	RecordedAt time.Time `json:"recorded_at"`
	Probes     []Probe   `json:"probes"`
}
