// Package limits holds the checks of a run's policy that the CLI and the daemon
// share: bounds of its numbers (the engine accepts any positive value; a typo such
// as 1e9 retries is refused with the key and the range instead of becoming a run),
// and the rule that a resumed run runs the config's commands, not the state
// file's (CheckStoredPolicy).
package limits
