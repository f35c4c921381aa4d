package drivers

import "context"

// ReadinessChecker is implemented by drivers that check platform-specific readiness
// for `drover analyze` (token rights, SSH, quorum, HA, storage health, ...).
type ReadinessChecker interface {
	Readiness(ctx context.Context) ([]ReadinessCheck, error)
}

// ReadinessCheck is one result: Status is "pass", "warn" or "fail"; Remedy says how to
// fix a warning or failure.
type ReadinessCheck struct{ Name, Status, Message, Remedy string }
