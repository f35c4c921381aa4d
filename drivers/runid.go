package drivers

import "context"

type runIDKey struct{}

// WithRunID returns ctx carrying the ID of the run on whose behalf a driver or
// plug-in acts. Plug-ins that leave work running on a node (a detached install)
// key it by run, so that a resumed run joins its own work and never a stale one.
func WithRunID(ctx context.Context, runID string) context.Context {
	return context.WithValue(ctx, runIDKey{}, runID)
}

// RunIDFrom returns the run ID WithRunID put in ctx, or "".
func RunIDFrom(ctx context.Context) string {
	id, _ := ctx.Value(runIDKey{}).(string)
	return id
}
