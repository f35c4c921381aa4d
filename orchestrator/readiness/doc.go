// Package readiness is `drover analyze`: whether a cluster is ready for a run with a
// policy, changing nothing. Analyze (analyze.go) gathers what the checks need: the
// driver's inventory, the updater's scan, the state file, the hooks' commands, the
// health gate and the platform's own checks. The verdicts on the inventory and the
// policy (verdicts.go) read nothing, and apply the engine's own rules (orchestrator's
// exported ones), so that analyze and a run decide alike.
package readiness
