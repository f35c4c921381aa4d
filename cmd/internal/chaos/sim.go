package chaos

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"time"

	"github.com/droverhq/drover/drivers/sim"
)

// Sim is a running `drover sim serve` process: the cluster outlives every drover
// process the harness kills.
type Sim struct {
	URL    string
	Proc   *Proc
	Client *sim.Driver
}

var servingLine = regexp.MustCompile(`^sim serving .* on (http://\S+) `)

// StartSim starts `drover sim serve --cluster clusterFile --listen 127.0.0.1:0
// --time-scale scale`, waits for its "sim serving FILE on http://ADDR" line and
// connects a client to it. Its log goes to dir/sim.log.
func StartSim(ctx context.Context, procs *Procs, drover, clusterFile string, scale float64, dir string) (*Sim, error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("start sim: %w", err)
	}
	cmd := exec.Command(drover, "sim", "serve", "--cluster", clusterFile, "--listen", "127.0.0.1:0",
		"--time-scale", strconv.FormatFloat(scale, 'g', -1, 64))
	cmd.Stdout = pw
	p, err := procs.Start("sim serve", cmd, false, filepath.Join(dir, "sim.log"))
	pw.Close()
	if err != nil {
		pr.Close()
		return nil, err
	}
	urls := make(chan string, 1)
	go func() {
		defer pr.Close()
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if m := servingLine.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case urls <- m[1]:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	var url string
	select {
	case url = <-urls:
	case <-p.Done():
		return nil, fmt.Errorf("start sim: drover sim serve exited (code %d) before listening; see %s", p.Cmd.ProcessState.ExitCode(), filepath.Join(dir, "sim.log"))
	case <-time.After(30 * time.Second):
		_ = p.Kill()
		return nil, fmt.Errorf("start sim: no \"sim serving\" line within 30s")
	case <-ctx.Done():
		_ = p.Kill()
		return nil, ctx.Err()
	}
	client, err := sim.Dial(ctx, url, sim.ClientOptions{Timeout: 30 * time.Second})
	if err != nil {
		_ = p.Kill()
		return nil, fmt.Errorf("start sim: %w", err)
	}
	return &Sim{URL: url, Proc: p, Client: client}, nil
}

// Close stops the server (SIGTERM, then SIGKILL after 10 s).
func (s *Sim) Close() {
	s.Client.Close()
	_ = s.Proc.Signal(syscall.SIGTERM)
	_, _ = s.Proc.Wait(10 * time.Second)
}
