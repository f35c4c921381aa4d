package updaters

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Runner runs one command on a target and returns its output. The command is an argv
// list: locally it is executed directly, over SSH it is shell-quoted for the remote
// shell. Implementations are safe for concurrent use.
type Runner interface {
	// Run runs argv on target (an SSH address; ignored by the local runner). A command
	// that exits non-zero returns an error wrapping *ExitError.
	Run(ctx context.Context, target string, argv []string) (Output, error)
}

// Output is what a command printed, each stream capped at maxOutput bytes.
type Output struct {
	Stdout string
	Stderr string
}

// maxOutput caps each captured stream, so a chatty command cannot exhaust memory.
const maxOutput = 1 << 20

// ExitError is a command that ran and exited with a non-zero status.
type ExitError struct {
	Code int
	// Stderr is the tail of the command's standard error, for the operator.
	Stderr string
}

func (e *ExitError) Error() string {
	msg := fmt.Sprintf("exit status %d", e.Code)
	if s := tail(strings.TrimSpace(e.Stderr), 512); s != "" {
		msg += ": " + s
	}
	return msg
}

// ErrNoExitStatus is returned over SSH when the connection closed before the command
// reported an exit status, which is what a successful "reboot" looks like.
var ErrNoExitStatus = errors.New("connection closed before the command exited")

// ExitCode returns the exit status inside err and true, or 0 and false when err is not
// an exit of the command (nil, a connection error, ...).
func ExitCode(err error) (int, bool) {
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code, true
	}
	return 0, false
}

// LocalRunner runs commands on this machine. Env is added to the environment of every
// command.
type LocalRunner struct {
	Env []string
}

// Run executes argv locally; target is ignored.
func (r LocalRunner) Run(ctx context.Context, _ string, argv []string) (Output, error) {
	if len(argv) == 0 {
		return Output{}, errors.New("run: empty command")
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), r.Env...)
	// On cancel, kill the whole process group: a shell's children would otherwise keep
	// running and hold the output pipes open.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr cappedBuffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	err := cmd.Run()
	out := Output{Stdout: stdout.String(), Stderr: stderr.String()}
	if err == nil {
		return out, nil
	}
	if ctx.Err() != nil {
		return out, fmt.Errorf("run %s: %w", argv[0], ctx.Err())
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() >= 0 {
		return out, fmt.Errorf("run %s: %w", argv[0], &ExitError{Code: ee.ExitCode(), Stderr: out.Stderr})
	}
	return out, fmt.Errorf("run %s: %w", argv[0], err)
}

// ShellQuote quotes s for a POSIX shell.
func ShellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,+@%", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'"'"'`) + "'"
}

// ShellJoin quotes every element of argv and joins them into one shell command line.
func ShellJoin(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = ShellQuote(a)
	}
	return strings.Join(q, " ")
}

// cappedBuffer keeps the first maxOutput bytes written to it and drops the rest.
type cappedBuffer struct {
	buf       bytes.Buffer
	truncated bool
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	if room := maxOutput - b.buf.Len(); room < len(p) {
		b.truncated = true
		if room > 0 {
			b.buf.Write(p[:room])
		}
		return len(p), nil
	}
	return b.buf.Write(p)
}

func (b *cappedBuffer) String() string {
	if b.truncated {
		return b.buf.String() + "\n[output truncated]"
	}
	return b.buf.String()
}

// tail returns the last n bytes of s.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
