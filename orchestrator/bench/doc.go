// Package bench is `drover bench`: it plays rolling runs on the simulator's model
// (drivers/sim Model) in virtual time, under the field's fixed migration
// concurrencies and Drover's adaptive drain scheduler, and measures them against
// the physical lower bound of a drain (LowerBound).
//
// The runs take the engine's decisions with the engine's code: node order
// (policies.OrderNodes with the default policy), placement (policies.Placer, patched
// nodes first), the reserve gate of parallel nodes (policies.ReserveCheck) and the
// drain scheduler (policies.DrainOptions.Decide with
// orchestrator.DefaultPolicy().DrainOptions()). What it does not have is the
// engine's I/O: no journal, no driver calls over HTTP, exact progress figures
// instead of progress reports. Scenario clusters are generated from a seed, so the
// same seed gives the same figures.
//
// Boundary: no I/O but reading the clock for wall-time figures and, for
// PlanScale, an in-process simulator; printing is the caller's (WriteTable,
// WriteGoals).
package bench
