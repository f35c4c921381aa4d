// Package chaos is the harness of Drover's crash and chaos tests: it runs the
// real drover binary against a separate `drover sim serve` process, kills it
// (SIGKILL) at chosen moments of a run, resumes it with `drover runs resume`, and
// checks the cluster afterwards: no VM lost, none moved twice, no node left
// paused, the N-k reserve never broken, every node patched exactly once.
//
// A round (Run) is one sim process and one run killed many times; the crash test
// of cmd/drover plays one round in `go test`, `make chaos` (cmd/drover-chaos) plays
// rounds until it has made hundreds of kills. Every random choice comes from the
// round's seed, which is printed, so that a failure can be replayed; the wall
// clock still decides exactly where in a phase a kill lands.
//
// The harness only observes: it reads drover's progress lines, its JSON output,
// the state file (read-only, after the run) and the sim's statistics. Every
// process it starts is in a process group of its own and is killed with it.
package chaos
