// Package runs is Drover's state store: one bbolt file holding every run, the record of
// each node in a run, a journal of intents and outcomes, the per-cluster run lock and the
// timings measured in past runs.
//
// The store knows nothing of drivers or policies; it keeps plain records. The orchestrator
// writes each intent here before acting on it and its outcome after (write-ahead), so that
// after a crash it can reconcile the journal with the live cluster.
//
// A bbolt file is opened by one process at a time (bbolt holds an exclusive file lock while
// open). A sidecar file "<state>.owner" names the process that has it open, so that a second
// process can say who holds it, and so that `drover runs stop` can signal that process.
package runs
