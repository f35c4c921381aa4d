// Package limits bounds the numbers of a run's policy. The engine accepts any
// positive value; the config file, the environment, flags and the daemon's API all
// pass through here, so a typo (1e9 retries, 100000 nodes at once) is refused with
// the key and the range instead of becoming a run.
package limits
