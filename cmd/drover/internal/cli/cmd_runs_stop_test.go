package cli

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/runs"
)

// TestRunsStop_HeldByTheDaemon: the daemon ignores SIGUSR1, so a local `runs stop`
// must send the user to its API rather than signal it and wait.
func TestRunsStop_HeldByTheDaemon(t *testing.T) {
	cfg := testSetup(t, smallCluster, "")
	// This test holds the state file as a running daemon would.
	st, err := runs.Open(filepath.Join(filepath.Dir(cfg), "state.db"), runs.Options{Owner: runs.Self(runs.DaemonCommand, time.Now())})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	out, errOut, code := runCLI(t, "--config", cfg, "runs", "stop", "last")
	if code != 2 || !strings.Contains(errOut, "held by the daemon") || !strings.Contains(errOut, "drover runs stop last --server URL") {
		t.Errorf("exit %d, want 2 pointing to the daemon's API\n%s\n%s", code, out, errOut)
	}
	if strings.Contains(errOut, "asking") {
		t.Errorf("signalled the daemon:\n%s", errOut)
	}
}
