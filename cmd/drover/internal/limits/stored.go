package limits

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/droverhq/drover/orchestrator"
	"github.com/droverhq/drover/runs"
)

// StoredPolicyError: a run's stored policy runs other commands (hooks, health
// gate) or reaches another URL than the config's. The state file is data, not
// code: resuming such a run would run what the file says, as whoever resumes it.
type StoredPolicyError struct {
	RunID string
	// Keys are the policy keys that differ; their values are not repeated (a
	// command line may carry a secret).
	Keys []string
}

func (e *StoredPolicyError) Error() string {
	return fmt.Sprintf("run %s was started with another %s than the config has: resuming it would run the commands stored in the state file; check them (drover runs show %[1]s), then either restore the config or continue with --accept-stored-policy", e.RunID, strings.Join(e.Keys, ", "))
}

// CheckStoredPolicy compares the commands and URL of run's stored policy with the
// config's current policy; a difference is a *StoredPolicyError.
func CheckStoredPolicy(run runs.Run, current orchestrator.Policy) error {
	if len(run.Options) == 0 {
		return nil
	}
	stored := orchestrator.DefaultPolicy()
	if err := json.Unmarshal(run.Options, &stored); err != nil {
		return fmt.Errorf("run %s: read its stored policy: %w", run.ID, err)
	}
	var keys []string
	for _, c := range []struct {
		key        string
		was, isNow []string
	}{
		{"policy.pre_hook.command", stored.PreHook.Command, current.PreHook.Command},
		{"policy.post_hook.command", stored.PostHook.Command, current.PostHook.Command},
		{"policy.health_gate.command", stored.HealthGate.Command, current.HealthGate.Command},
	} {
		if !slices.Equal(c.was, c.isNow) {
			keys = append(keys, c.key)
		}
	}
	// The state file keeps the URL with its secrets masked: compare masked forms.
	if orchestrator.RedactURL(stored.HealthGate.URL) != orchestrator.RedactURL(current.HealthGate.URL) {
		keys = append(keys, "policy.health_gate.url")
	}
	if len(keys) > 0 {
		return &StoredPolicyError{RunID: run.ID, Keys: keys}
	}
	return nil
}
