package drivers

import "context"

// ReadinessChecker is implemented by drivers that check what their platform needs
// before a rolling run (reachability, privileges, cluster settings); `drover analyze`
// adds the checks to its own.
type ReadinessChecker interface {
	Readiness(ctx context.Context) ([]ReadinessCheck, error)
}

// ReadinessCheck is one platform check. Status is "pass", "warn" or "fail"; Remedy
// says how to fix a warn or a fail.
type ReadinessCheck struct {
	Name, Status, Message, Remedy string
}
