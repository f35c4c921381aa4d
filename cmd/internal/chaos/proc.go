package chaos

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// Procs tracks every process a harness starts, so that all of them can be killed
// whatever happens to the harness (a failed test, an error half-way).
type Procs struct {
	mu    sync.Mutex
	procs map[*Proc]bool
}

// Proc is one started process. Its stderr, when captured, is read line by line
// without ever blocking the process (a child blocked on a full pipe would stall
// the very run under test).
type Proc struct {
	Name string
	Cmd  *exec.Cmd

	done    chan struct{}
	waitErr error

	mu      sync.Mutex
	lines   []string
	notify  chan struct{} // gets a token when lines grow or the stream ends
	eof     bool
	logFile *os.File
}

// Start starts cmd in a process group of its own (so a kill reaches everything it
// started) that also dies with the harness (Pdeathsig). With captureStderr its
// stderr lines are kept for Lines; logPath, when set, receives them as well.
func (ps *Procs) Start(name string, cmd *exec.Cmd, captureStderr bool, logPath string) (*Proc, error) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p := &Proc{Name: name, Cmd: cmd, done: make(chan struct{}), notify: make(chan struct{}, 1)}
	var pr, pw *os.File
	if logPath != "" {
		f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return nil, fmt.Errorf("start %s: %w", name, err)
		}
		p.logFile = f
	}
	if captureStderr {
		var err error
		if pr, pw, err = os.Pipe(); err != nil {
			p.closeLog()
			return nil, fmt.Errorf("start %s: %w", name, err)
		}
		cmd.Stderr = pw
	} else if p.logFile != nil && cmd.Stderr == nil {
		cmd.Stderr = p.logFile
	}
	if err := cmd.Start(); err != nil {
		if pr != nil {
			pr.Close()
			pw.Close()
		}
		p.closeLog()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	ps.mu.Lock()
	if ps.procs == nil {
		ps.procs = map[*Proc]bool{}
	}
	ps.procs[p] = true
	ps.mu.Unlock()
	var readers sync.WaitGroup
	if pr != nil {
		pw.Close() // the child holds its own copy; EOF comes when it exits
		readers.Go(func() { p.read(pr) })
	}
	go func() {
		p.waitErr = cmd.Wait()
		readers.Wait()
		p.closeLog()
		ps.mu.Lock()
		delete(ps.procs, p)
		ps.mu.Unlock()
		close(p.done)
	}()
	return p, nil
}

func (p *Proc) closeLog() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.logFile != nil {
		p.logFile.Close()
		p.logFile = nil
	}
}

func (p *Proc) read(r io.ReadCloser) {
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Text()
		p.mu.Lock()
		p.lines = append(p.lines, line)
		if p.logFile != nil {
			fmt.Fprintln(p.logFile, line)
		}
		p.mu.Unlock()
		p.poke()
	}
	p.mu.Lock()
	p.eof = true
	p.mu.Unlock()
	p.poke()
}

func (p *Proc) poke() {
	select {
	case p.notify <- struct{}{}:
	default:
	}
}

// Lines returns the stderr lines from index from on, and whether the stream ended.
func (p *Proc) Lines(from int) ([]string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if from >= len(p.lines) {
		return nil, p.eof
	}
	return append([]string(nil), p.lines[from:]...), p.eof
}

// Changed gets a token when new lines arrive or the stream ends.
func (p *Proc) Changed() <-chan struct{} { return p.notify }

// Done is closed once the process has exited and its output is read.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Kill sends SIGKILL to the process group: the kill -9 of the chaos tests.
func (p *Proc) Kill() error {
	err := syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL)
	if errors.Is(err, syscall.ESRCH) {
		return nil // already gone
	}
	return err
}

// Signal sends sig to the process group.
func (p *Proc) Signal(sig syscall.Signal) error {
	err := syscall.Kill(-p.Cmd.Process.Pid, sig)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}

// Wait waits up to timeout for the process to exit and returns its exit code (-1
// when a signal ended it). After the timeout it kills the process and errs.
func (p *Proc) Wait(timeout time.Duration) (int, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		_ = p.Kill()
		<-p.done
		return -1, fmt.Errorf("%s did not exit within %s; killed", p.Name, timeout)
	}
	return p.Cmd.ProcessState.ExitCode(), nil
}

// KillAll kills every process still running and waits for each to be reaped.
func (ps *Procs) KillAll() {
	ps.mu.Lock()
	list := make([]*Proc, 0, len(ps.procs))
	for p := range ps.procs {
		list = append(list, p)
	}
	ps.mu.Unlock()
	for _, p := range list {
		_ = p.Kill()
	}
	for _, p := range list {
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
		}
	}
}
