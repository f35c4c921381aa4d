package runs

import (
	"strings"
	"testing"
)

func TestLockedError_Error(t *testing.T) {
	tests := []struct {
		name  string
		owner *Owner
		has   []string
		not   []string
	}{
		{name: "unknown-owner", has: []string{"in use by another process", "`drover runs stop`"}},
		{name: "cli-run", owner: &Owner{PID: 42, Host: "h", Command: "apply"}, has: []string{"pid 42 on h (apply)", "`drover runs stop`"}},
		{name: "daemon", owner: &Owner{PID: 7, Host: "h", Command: DaemonCommand}, has: []string{"in use by the daemon, pid 7 on h (serve)", "--server URL", "runs stop ID", "stop the daemon"}, not: []string{"`drover runs stop`"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := (&LockedError{Path: "/s.db", Owner: tt.owner}).Error()
			for _, s := range tt.has {
				if !strings.Contains(msg, s) {
					t.Errorf("%q lacks %q", msg, s)
				}
			}
			for _, s := range tt.not {
				if strings.Contains(msg, s) {
					t.Errorf("%q says %q", msg, s)
				}
			}
		})
	}
}
