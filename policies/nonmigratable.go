package policies

// NonMigratableMode says what to do with running VMs that cannot live-migrate when
// their node must be rebooted.
type NonMigratableMode string

const (
	// NonMigratableFail: the node is not maintained while such a VM runs on it (default).
	NonMigratableFail NonMigratableMode = "fail"
	// NonMigratableShutdown: shut the VM down before the reboot, start it after.
	NonMigratableShutdown NonMigratableMode = "shutdown"
	// NonMigratableSkip: leave it running; it goes down with the reboot (reported loudly).
	NonMigratableSkip NonMigratableMode = "skip"
)

// ParseNonMigratableMode checks a mode name; "" is NonMigratableFail.
func ParseNonMigratableMode(s string) (NonMigratableMode, error) {
	switch m := NonMigratableMode(s); m {
	case "":
		return NonMigratableFail, nil
	case NonMigratableFail, NonMigratableShutdown, NonMigratableSkip:
		return m, nil
	}
	return "", fieldf("non_migratable", "use fail, shutdown or skip", "unknown mode %q", s)
}
