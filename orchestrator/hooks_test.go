package orchestrator

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestRunCommand(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name     string
		argv     []string
		timeout  time.Duration
		env      map[string]string
		exit     int
		output   string
		errHas   string
		elapsedL time.Duration // must end well before this (it was killed)
	}{
		{name: "success-output-trimmed", argv: []string{"sh", "-c", "echo '  hi there  '; echo warn >&2"}, timeout: time.Minute, output: "hi there  \nwarn"},
		{name: "environment", argv: []string{"sh", "-c", `echo "$DROVER_NODE/$DROVER_PHASE"`}, timeout: time.Minute,
			env: map[string]string{"DROVER_NODE": "n1", "DROVER_PHASE": "pre"}, output: "n1/pre"},
		{name: "exit-status", argv: []string{"sh", "-c", "echo no; exit 7"}, timeout: time.Minute, exit: 7, output: "no", errHas: "exit status 7"},
		{name: "no-such-program", argv: []string{filepath.Join(dir, "nope")}, timeout: time.Minute, exit: -1, errHas: "no such file"},
		{name: "empty", argv: nil, timeout: time.Minute, exit: -1, errHas: "no command"},
		{name: "output-keeps-the-end", argv: []string{"sh", "-c", "i=0; while [ $i -lt 2000 ]; do echo line$i; i=$((i+1)); done"}, timeout: time.Minute,
			output: "line1999"},
		{name: "timeout", argv: []string{"sleep", "30"}, timeout: 200 * time.Millisecond, exit: -1, errHas: "timed out after 200ms", elapsedL: 10 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := runCommand(context.Background(), tt.argv, tt.timeout, tt.env)
			if res.ExitCode != tt.exit {
				t.Errorf("exit code %d, want %d (%v)", res.ExitCode, tt.exit, res.Err)
			}
			if tt.errHas == "" && res.Err != nil || tt.errHas != "" && (res.Err == nil || !strings.Contains(res.Err.Error(), tt.errHas)) {
				t.Errorf("err = %v, want %q", res.Err, tt.errHas)
			}
			switch tt.name {
			case "output-keeps-the-end":
				if !strings.HasSuffix(res.Output, tt.output) || !strings.HasPrefix(res.Output, "[") || len(res.Output) > maxCommandOutput+40 {
					t.Errorf("output %d bytes, starts %q, ends %q", len(res.Output), res.Output[:20], res.Output[len(res.Output)-10:])
				}
			default:
				if res.Output != tt.output {
					t.Errorf("output %q, want %q", res.Output, tt.output)
				}
			}
			if tt.elapsedL > 0 && res.Elapsed >= tt.elapsedL {
				t.Errorf("took %s: the timeout did not end it", res.Elapsed)
			}
		})
	}
}

func TestRunCommand_TimeoutKillsTheProcessGroup(t *testing.T) {
	// The hook starts a child in the background and waits: the timeout must take the
	// child down too, not only the shell.
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	res := runCommand(context.Background(), []string{"sh", "-c", `sleep 60 & echo $! > "$0"; wait`, pidFile}, 300*time.Millisecond, nil)
	if res.Err == nil || !strings.Contains(res.Err.Error(), "process group was killed") {
		t.Fatalf("err = %v, want a timeout", res.Err)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	// The child is killed with the group; once its parent is reaped it is reaped by
	// init. Poll, with a deadline, until it is gone (or only a zombie).
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := syscall.Kill(pid, 0)
		stat, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if errors.Is(err, syscall.ESRCH) || strings.Contains(string(stat), ") Z ") {
			return
		}
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("child %d still runs after the hook timed out", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRunCommand_ContextCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res := runCommand(ctx, []string{"sleep", "30"}, time.Minute, nil)
	if !errors.Is(res.Err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", res.Err)
	}
}

func TestGateCheck_HTTP(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
		case "/no-content":
			w.WriteHeader(http.StatusNoContent)
		case "/slow":
			select {
			case <-block:
			case <-r.Context().Done():
			}
		default:
			http.Error(w, "ceph degraded", http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	withCreds := strings.Replace(srv.URL, "http://", "http://ops:s3cret@", 1)
	tests := []struct {
		url    string
		errHas string
	}{
		{url: srv.URL + "/ok"},
		{url: srv.URL + "/no-content"},
		{url: srv.URL + "/ceph", errHas: "503 Service Unavailable"},
		{url: withCreds + "/ceph", errHas: "ops:xxxxx@"},
		{url: srv.URL + "/slow", errHas: "no answer within 300ms"},
		{url: "http://127.0.0.1:1/closed", errHas: "GET http://127.0.0.1:1/closed"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			err := gateCheck(context.Background(), HealthGate{URL: tt.url, Timeout: Duration(300 * time.Millisecond)}, nil, srv.Client())
			if tt.errHas == "" && err != nil || tt.errHas != "" && (err == nil || !strings.Contains(err.Error(), tt.errHas)) {
				t.Errorf("gateCheck = %v, want %q", err, tt.errHas)
			}
			if err != nil && strings.Contains(err.Error(), "s3cret") {
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}
}

func TestGateCheck_Command(t *testing.T) {
	err := gateCheck(context.Background(), HealthGate{Command: []string{"sh", "-c", "echo 'osd.3 down'; exit 1"}, Timeout: Duration(time.Minute)}, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "exit status 1: osd.3 down") {
		t.Errorf("gateCheck = %v, want the status and the output", err)
	}
	if err := gateCheck(context.Background(), HealthGate{Command: []string{"true"}, Timeout: Duration(time.Minute)}, nil, nil); err != nil {
		t.Errorf("gateCheck(true) = %v", err)
	}
}

func TestPolicy_ValidateRunPolicies(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Policy)
		errHas string
	}{
		{name: "defaults", mutate: func(*Policy) {}},
		{name: "warn-not-before-stop", mutate: func(p *Policy) { p.WarnAfter, p.StopAfter = Duration(2*time.Hour), Duration(time.Hour) },
			errHas: "policy.warn_after: 2h0m0s is not less than policy.stop_after (1h0m0s)"},
		{name: "negative-stop", mutate: func(p *Policy) { p.StopAfter = Duration(-time.Second) }, errHas: "policy.stop_after: must not be negative"},
		{name: "bad-hours", mutate: func(p *Policy) { p.FailbackHours = "22-06" }, errHas: "policy.failback_hours"},
		{name: "bad-zone", mutate: func(p *Policy) { p.FailbackHours, p.FailbackTZ = "22:00-06:00", "Mars/Olympus" }, errHas: "policy.failback_tz"},
		{name: "hook-without-timeout", mutate: func(p *Policy) { p.PreHook = Hook{Command: []string{"/bin/true"}} }, errHas: "policy.pre_hook.timeout: must be positive"},
		{name: "hook-empty-program", mutate: func(p *Policy) { p.PostHook.Command = []string{""} }, errHas: "policy.post_hook.command: empty program name"},
		{name: "gate-command-and-url", mutate: func(p *Policy) { p.HealthGate.Command, p.HealthGate.URL = []string{"true"}, "http://x/" }, errHas: "policy.health_gate: both"},
		{name: "gate-url-not-http", mutate: func(p *Policy) { p.HealthGate.URL = "ftp://u:secret@x/" }, errHas: `policy.health_gate.url: "ftp://u:xxxxx@x/" is not an http(s) URL`},
		{name: "gate-negative-retries", mutate: func(p *Policy) { p.HealthGate.Retries = -1 }, errHas: "policy.health_gate.retries"},
		{name: "gate-zero-interval", mutate: func(p *Policy) { p.HealthGate.Interval = 0 }, errHas: "policy.health_gate.interval"},
		{name: "reboot-evidence-unknown", mutate: func(p *Policy) { p.RebootEvidence = "trust" }, errHas: `policy.reboot_evidence: unknown value "trust"`},
		{name: "reboot-evidence-first-ready", mutate: func(p *Policy) { p.RebootEvidence = RebootEvidenceFirstReady }},
		{name: "reboot-evidence-empty-is-strict", mutate: func(p *Policy) { p.RebootEvidence = "" }},
		{name: "migration-timeout-negative", mutate: func(p *Policy) { p.MigrationTimeout = Duration(-time.Second) }, errHas: "policy.migration_timeout: must not be negative"},
		{name: "migration-timeout-over-drain", mutate: func(p *Policy) { p.MigrationTimeout = Duration(2 * time.Hour) }, errHas: "policy.migration_timeout: 2h0m0s is longer than policy.drain_timeout"},
		{name: "migration-timeout-without-drain-limit", mutate: func(p *Policy) { p.MigrationTimeout, p.DrainTimeout = Duration(2*time.Hour), 0 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := DefaultPolicy()
			tt.mutate(&p)
			err := p.Validate()
			if tt.errHas == "" && err != nil || tt.errHas != "" && (err == nil || !strings.Contains(err.Error(), tt.errHas)) {
				t.Errorf("Validate = %v, want %q", err, tt.errHas)
			}
			if err != nil && strings.Contains(err.Error(), "secret") {
				t.Errorf("the error shows a password: %v", err)
			}
		})
	}
}
