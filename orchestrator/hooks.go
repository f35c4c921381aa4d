package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/droverhq/drover/runs"
)

// Hook phases, as DROVER_PHASE and runs.HookRun.Name carry them.
const (
	hookPre  = "pre"
	hookPost = "post"
	hookGate = "gate"
)

// maxCommandOutput bounds the output kept of one hook or check run: the end of the
// output, where errors usually are.
const maxCommandOutput = 4096

// commandResult is the outcome of one local command.
type commandResult struct {
	// ExitCode is the process's exit status, -1 when it did not exit by itself.
	ExitCode int
	// Output is stdout and stderr interleaved, trimmed, at most maxCommandOutput bytes.
	Output  string
	Elapsed time.Duration
	// Err is nil when the command exited 0.
	Err error
}

// runCommand runs argv locally, without a shell, with env added to drover's own
// environment. It runs in its own process group: on timeout (or when ctx ends) the
// whole group is killed, so a hook's children do not outlive it.
func runCommand(ctx context.Context, argv []string, timeout time.Duration, env map[string]string) commandResult {
	if len(argv) == 0 || argv[0] == "" {
		return commandResult{ExitCode: -1, Err: errors.New("no command configured")}
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(cctx, argv[0], argv[1:]...)
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	// A child that keeps the output pipe open must not hold the run forever.
	cmd.WaitDelay = 5 * time.Second
	out := &tailBuffer{max: maxCommandOutput}
	cmd.Stdout, cmd.Stderr = out, out
	start := time.Now()
	err := cmd.Run()
	res := commandResult{ExitCode: -1, Output: out.String(), Elapsed: time.Since(start)}
	if cmd.ProcessState != nil {
		res.ExitCode = cmd.ProcessState.ExitCode()
	}
	switch {
	case errors.Is(err, exec.ErrWaitDelay) && res.ExitCode == 0:
		// It exited 0; a background child kept its output open. Not a failure.
	case err == nil:
	case ctx.Err() != nil:
		res.Err = ctx.Err()
	case cctx.Err() != nil:
		res.Err = fmt.Errorf("timed out after %s; its process group was killed", timeout)
	case res.ExitCode > 0:
		res.Err = fmt.Errorf("exit status %d", res.ExitCode)
	default:
		res.Err = err
	}
	return res
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	max int

	mu      sync.Mutex
	buf     []byte
	dropped int
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.max; over > 0 {
		b.dropped += over
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

// String is the kept output, trimmed, saying how much was cut.
func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := strings.TrimSpace(string(b.buf))
	if b.dropped > 0 {
		s = fmt.Sprintf("[%d bytes cut] %s", b.dropped, s)
	}
	return s
}

// runHook runs the node's pre- or post-update hook, journaled, and records it in the
// node's record. A hook that already succeeded for this node (a resumed run) is not
// run again. A failing pre-hook fails the node before it is touched; a failing
// post-hook fails it after its patch, and it is resumed all the same.
func (e *Engine) runHook(ctx context.Context, rs *runState, node, phase string) error {
	h := rs.policy.PreHook
	if phase == hookPost {
		h = rs.policy.PostHook
	}
	if !h.Enabled() {
		return nil
	}
	for _, r := range rs.node(node).Hooks {
		if r.Name == phase && r.Error == "" {
			return nil
		}
	}
	var res commandResult
	run := runs.HookRun{Name: phase}
	err := e.act(ctx, rs, runs.Entry{Op: runs.OpHook, Node: node, Detail: phase}, actKey(runs.OpHook, phase), func(ctx context.Context) error {
		res = runCommand(ctx, h.Command, h.Timeout.D(), map[string]string{
			"DROVER_NODE": node, "DROVER_RUN_ID": rs.id, "DROVER_PHASE": phase, "DROVER_CLUSTER": e.cfg.Cluster,
		})
		return res.Err
	}, func(r *runs.NodeRecord, err error) {
		run = runs.HookRun{Name: phase, ExitCode: res.ExitCode, Output: res.Output, Seconds: res.Elapsed.Seconds()}
		if err != nil {
			run.Error = err.Error()
		}
		r.Hooks = append(r.Hooks, run)
	})
	if errors.Is(err, ErrInterrupted) {
		return err
	}
	if err == nil {
		e.log.Info("hook succeeded", "run_id", rs.id, "node", node, "phase", phase, "seconds", run.Seconds)
		return nil
	}
	e.log.Warn("hook failed", "run_id", rs.id, "node", node, "phase", phase, "exit_code", run.ExitCode, "error", err)
	if phase == hookPre {
		return failNode("pre-hook %s failed on node %s: %v; the node is not updated", h.Command[0], node, err)
	}
	return failNode("post-hook %s failed on node %s: %v; the node is patched and resumed, but counts as failed", h.Command[0], node, err)
}
