package main

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestREADME_Walkthrough runs the README's daemon walkthrough (the shell block
// between <!-- walkthrough --> markers) as written, line by line, in a folder that
// has the repository's testdata: every command must exit 0 and the run must succeed
// (issue 16). The only change: the daemon listens on a port this test picked
// (DROVER_SERVER_LISTEN), and the commands are pointed at it.
func TestREADME_Walkthrough(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a simulated cluster through the daemon")
	}
	root := moduleRoot(t)
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(readme), "<!-- walkthrough -->")
	block, _, ok2 := strings.Cut(block, "<!-- /walkthrough -->")
	if !ok || !ok2 {
		t.Fatal("README.md has no walkthrough block")
	}
	var cmds []string
	for _, l := range strings.Split(block, "\n") {
		if c, ok := strings.CutPrefix(l, "$ "); ok {
			cmds = append(cmds, c)
		}
	}
	if len(cmds) < 4 {
		t.Fatalf("walkthrough has %d commands", len(cmds))
	}
	bin := droverBinary(t)
	binDir := t.TempDir()
	if err := os.Symlink(bin, filepath.Join(binDir, "drover")); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.Symlink(filepath.Join(root, "testdata"), filepath.Join(dir, "testdata")); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	env := []string{"PATH=" + binDir + ":" + os.Getenv("PATH"), "HOME=" + filepath.Join(dir, "home"), "DROVER_SERVER_LISTEN=" + addr}
	var daemon *exec.Cmd
	t.Cleanup(func() {
		if daemon != nil && daemon.ProcessState == nil {
			_ = daemon.Process.Kill()
			_ = daemon.Wait()
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for _, c := range cmds {
		c = strings.ReplaceAll(c, "127.0.0.1:8087", addr)
		switch {
		case strings.HasSuffix(c, " &"):
			daemon = exec.Command("bash", "-c", "exec "+strings.TrimSuffix(c, " &"))
			daemon.Dir, daemon.Env = dir, env
			log, err := os.Create(filepath.Join(t.TempDir(), "serve.log"))
			if err != nil {
				t.Fatal(err)
			}
			daemon.Stdout, daemon.Stderr = log, log
			if err := daemon.Start(); err != nil {
				t.Fatal(err)
			}
			waitListening(t, addr, daemon)
		case strings.HasPrefix(c, "export "):
			env = append(env, strings.TrimPrefix(c, "export "))
		case c == "kill %1":
			if err := daemon.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if err := daemon.Wait(); err != nil {
				t.Errorf("daemon after kill: %v, want exit 0", err)
			}
		default:
			cmd := exec.CommandContext(ctx, "bash", "-c", c)
			cmd.Dir, cmd.Env = dir, env
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("$ %s: %v\n%s", c, err, out)
			}
			if strings.Contains(c, "runs list") && !strings.Contains(string(out), " demo ") || strings.Contains(c, "runs list") && !strings.Contains(string(out), "succeeded") {
				t.Errorf("$ %s: no succeeded run of cluster demo:\n%s", c, out)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "walkthrough", "report.md")); err != nil {
		t.Errorf("the walkthrough's report was not written: %v", err)
	}
}

// waitListening polls until addr accepts connections (or the daemon exits).
func waitListening(t *testing.T, addr string, daemon *exec.Cmd) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return
		}
		var ws syscall.WaitStatus
		if pid, _ := syscall.Wait4(daemon.Process.Pid, &ws, syscall.WNOHANG, nil); pid == daemon.Process.Pid {
			t.Fatalf("the daemon exited (%v) before it listened", ws)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("the daemon does not listen on %s after 30 s", addr)
}
