// Package policies holds Drover's pure decisions: where a drained VM goes (Placer),
// in which order nodes are maintained (OrderNodes), whether the cluster keeps its
// N-k reserve while a node is out (ReserveCheck), the failure budget, failback and
// non-migratable VM choices, maintenance windows, the migration time model and the
// whole-run plan (BuildPlan).
//
// Boundary: no I/O, no context, no logging, no clock. Everything comes in as
// arguments (an Inventory snapshot, options, `now`) and goes out as plain values, so
// the orchestrator, the CLI (`drover plan`, `drover analyze`) and benchmarks share the
// same answers. The package imports nothing of Drover's and only the standard library.
//
// Capacity rule used everywhere (Placer, reserve, plan and their checkers): a VM that
// is running, suspended or in an unknown power state reserves its memory and vCPUs on
// its node and counts for anti-affinity; a stopped VM reserves nothing. Suspended VMs
// count because "suspended" covers platform-paused VMs that still hold their memory,
// and a saved VM resumes on the node it sits on. Unknown counts because failing
// closed is the safe default.
package policies
