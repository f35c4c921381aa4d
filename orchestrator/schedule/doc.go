// Package schedule decides when maintenance may happen: when a cluster's next run is
// due (cron expressions through robfig/cron, and the CAU self-updating forms cron
// cannot express: "3rd Tuesday", "last Saturday", every N weeks from a start date),
// which dates are blacked out, whether a node fits into the maintenance window that is
// open, and how long a node is predicted to take.
//
// It is pure: time is always an argument, nothing here reads a clock, sleeps, logs or
// does I/O. The daemon (cmd/drover/internal/server) acts on its answers and the
// orchestrator's Gate hook holds nodes until they fit.
package schedule
