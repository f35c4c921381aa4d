package chaos

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/drivers/sim"
	"github.com/droverhq/drover/runs"
	"github.com/droverhq/drover/runs/report"
)

// Options of one round: one `drover sim serve` process, one run of `drover apply`
// killed (SIGKILL) again and again and resumed each time until it finishes.
type Options struct {
	// Drover is the drover binary; ClusterFile the cluster the sim serves.
	Drover      string
	ClusterFile string
	// Dir holds the round's config, state file and logs.
	Dir string
	// Seed drives every random choice of the round (kill moments, delays).
	Seed uint64
	// TimeScale is the sim's model seconds per wall second.
	TimeScale float64
	// Kills is how many kills the round aims at; the run may end sooner.
	Kills int
	// Cover lists moments to hit at least once each: after Kills kills the round
	// goes on aiming at the missing ones, up to MaxKills kills in all.
	Cover    []string
	MaxKills int
	// Policy of the run.
	Failback     string
	MaxParallel  int
	PerNode      int
	ReserveNodes int
	// HangMs: the sim holds every pause, install and resume request this long
	// (wall ms), so that kills land inside those calls too. 0 = no hold.
	HangMs int
	// APIErrors is the probability of a 5xx answer after the request took effect
	// (the driver retries; the engine must not act twice). 0 = none.
	APIErrors float64
	// Suspend is how many of the cluster's running, migratable VMs the round
	// suspends before the run (chosen by Seed; the sim then serves a copy of
	// ClusterFile in Dir). The run must move them as saved state.
	Suspend int
	// Serve kills `drover serve` instead of `drover apply`: the run is started
	// through the daemon's API (drover --server URL apply), and each restarted
	// daemon resumes it by itself.
	Serve bool
	// ProcessTimeout bounds one drover process (default 3 min).
	ProcessTimeout time.Duration
	Procs          *Procs
	// Logf receives progress (nil = silent).
	Logf func(format string, args ...any)
}

// Result of a round.
type Result struct {
	Seed  uint64
	RunID string
	// Kills counts kills of a drover process whose run was then still unfinished;
	// Resumed the drover processes started after them (runs resume, or apply
	// when the kill came before the run was recorded). LateKills hit a process
	// whose run had just finished.
	Kills, Resumed, LateKills int
	// Moments counts the kills by what the run was doing.
	Moments  map[string]int
	Report   report.Report
	Findings Findings
	Wall     time.Duration
	// Suspended are the VMs the round suspended before the run.
	Suspended []string
}

// Run plays one round. An error means the harness could not do its job (a
// process did not start, hung, a command answered garbage); broken invariants are
// Findings, not errors.
func Run(ctx context.Context, o Options) (Result, error) {
	start := time.Now()
	res := Result{Seed: o.Seed, Moments: map[string]int{}}
	if o.ProcessTimeout == 0 {
		o.ProcessTimeout = 3 * time.Minute
	}
	if o.MaxKills < o.Kills {
		o.MaxKills = o.Kills
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	if o.Procs == nil {
		o.Procs = &Procs{}
		defer o.Procs.KillAll()
	}
	if o.Suspend > 0 {
		var err error
		if o.ClusterFile, res.Suspended, err = suspendVMs(o.ClusterFile, o.Dir, o.Suspend, o.Seed); err != nil {
			return res, err
		}
	}
	s, err := StartSim(ctx, o.Procs, o.Drover, o.ClusterFile, o.TimeScale, o.Dir)
	if err != nil {
		return res, err
	}
	defer s.Close()
	before, err := s.Client.Inventory(ctx)
	if err != nil {
		return res, fmt.Errorf("inventory before the run: %w", err)
	}
	if err := injectFaults(ctx, s.Client, before, o); err != nil {
		return res, err
	}
	cfg, err := writeConfig(o, s.URL)
	if err != nil {
		return res, err
	}
	r := &round{o: o, cfg: cfg, rng: rand.New(rand.NewPCG(o.Seed, 0xc4a05)), view: newView()}
	r.cycle = cycle(timing{scale: o.TimeScale, hang: time.Duration(o.HangMs) * time.Millisecond}, o.Failback != "none")
	r.next = r.rng.IntN(len(r.cycle))
	exitCode, err := r.loop(ctx, &res)
	if err != nil {
		return res, err
	}
	if res.RunID == "" {
		return res, errors.New("no run was recorded")
	}
	res.Report, err = r.show(ctx, res.RunID)
	if err != nil {
		return res, err
	}
	open, err := openIntents(filepath.Join(o.Dir, "state.db"), res.RunID)
	if err != nil {
		return res, err
	}
	after, err := s.Client.Inventory(ctx)
	if err != nil {
		return res, fmt.Errorf("inventory after the run: %w", err)
	}
	stats, err := s.Client.Stats(ctx)
	if err != nil {
		return res, err
	}
	pending := map[string][]cluster.Update{}
	for _, n := range after.Nodes {
		if pending[n.Name], err = s.Client.Scan(ctx, n.Name); err != nil {
			return res, err
		}
	}
	res.Findings = Check(CheckInput{
		Before: before, After: after, Stats: stats, Report: res.Report, Pending: pending,
		Failback: o.Failback, ReserveNodes: o.ReserveNodes, OpenIntents: open, ExitCode: exitCode,
	})
	if r.killsInRun > 0 && res.Report.Resumes == 0 {
		res.Findings.Other = append(res.Findings.Other, fmt.Sprintf("run %s was killed %d times and never resumed", res.RunID, r.killsInRun))
	}
	res.Wall = time.Since(start)
	return res, nil
}

type round struct {
	o     Options
	cfg   string
	rng   *rand.Rand
	view  *view
	cycle []func(*rand.Rand) target
	next  int
	seq   int
	// needStart: the daemon must be asked to start the run (serve mode).
	needStart bool
	// killsInRun counts kills after the run was recorded: each must be resumed.
	killsInRun int
}

// token is the daemon's API token in serve mode (its digest is in the config).
const token = "chaos-operator-token"

// plan picks the next kill's target: the next phase in node order (a random
// moment one time in five); once the round has its kills, a moment still to
// cover; nil when the round is done killing.
func (r *round) plan(res *Result) *target {
	if res.Kills >= r.o.MaxKills {
		return nil
	}
	if res.Kills >= r.o.Kills {
		for _, mk := range r.cycle {
			t := mk(r.rng)
			if slices.Contains(r.o.Cover, t.name) && res.Moments[t.name] == 0 {
				return &t
			}
		}
		return nil
	}
	if r.rng.IntN(5) == 0 {
		t := randomTarget(r.rng)
		return &t
	}
	t := r.cycle[r.next%len(r.cycle)](r.rng)
	r.next++
	return &t
}

// loop runs drover processes until the run ends on its own; it returns the exit
// code of the last one.
func (r *round) loop(ctx context.Context, res *Result) (int, error) {
	args := []string{"apply", "--yes", "--json"}
	if r.o.Serve {
		args = []string{"serve"}
		r.needStart = true
	}
	for {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		tgt := r.plan(res)
		killed, moment, code, err := r.process(ctx, args, tgt)
		if err != nil {
			return 0, err
		}
		if !killed {
			if res.RunID == "" {
				id, _, err := r.newestRun(ctx)
				if err != nil {
					return 0, err
				}
				res.RunID = id
			}
			return code, nil
		}
		id, state, err := r.newestRun(ctx)
		if err != nil {
			return 0, err
		}
		if id != "" && state.Terminal() {
			// The kill came after the run recorded its end: nothing to resume.
			res.LateKills++
			res.RunID = id
			r.o.Logf("kill %d at %s: run %s had already ended (%s)", res.Kills+res.LateKills, moment, id, state)
			return 0, nil
		}
		res.Kills++
		if id != "" {
			r.killsInRun++
		}
		res.Moments[moment]++
		r.o.Logf("kill %d (aimed at %s) at %s", res.Kills, tgt.name, moment)
		switch {
		case r.o.Serve:
			// A restarted daemon resumes the run; without one, it is started again.
			r.needStart = id == ""
			res.RunID = id
		case id == "":
			args = []string{"apply", "--yes", "--json"} // killed before the run was recorded
		default:
			res.RunID = id
			args = []string{"runs", "resume", id, "--json"}
		}
		res.Resumed++
		// One time in three nobody resumes at once: migrations and reboots
		// finish while drover is away, and resume must notice.
		if r.rng.IntN(3) == 0 {
			away := time.NewTimer(time.Duration(r.rng.Int64N(int64(90 / r.o.TimeScale * float64(time.Second)))))
			select {
			case <-away.C:
			case <-ctx.Done():
				away.Stop()
				return 0, ctx.Err()
			}
		}
	}
}

// process runs one drover command and kills it at tgt (nil: never). It returns
// whether it killed it, the moment the kill landed at, and the exit code.
func (r *round) process(ctx context.Context, args []string, tgt *target) (bool, string, int, error) {
	r.seq++
	cmd := exec.Command(r.o.Drover, append([]string{"--config", r.cfg}, args...)...)
	stdout, err := os.OpenFile(filepath.Join(r.o.Dir, "stdout.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return false, "", 0, err
	}
	defer stdout.Close()
	fmt.Fprintf(stdout, "== process %d: drover %s\n", r.seq, strings.Join(args, " "))
	cmd.Stdout = stdout
	parse := parseLine
	var urls chan string
	if r.o.Serve {
		// The daemon says where it listens on stdout; its logs are the progress.
		parse = parseLogLine
		pr, pw, err := os.Pipe()
		if err != nil {
			return false, "", 0, err
		}
		defer pr.Close()
		defer pw.Close()
		cmd.Stdout = pw
		urls = make(chan string, 1)
		go func() {
			sc := bufio.NewScanner(pr)
			for sc.Scan() {
				fmt.Fprintln(stdout, sc.Text())
				if _, rest, ok := strings.Cut(sc.Text(), "API on "); ok {
					urls <- strings.Fields(rest)[0]
				}
			}
		}()
	}
	logPath := filepath.Join(r.o.Dir, "drover.log")
	if f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); err == nil {
		fmt.Fprintf(f, "== process %d: drover %s\n", r.seq, strings.Join(args, " "))
		f.Close()
	}
	p, err := r.o.Procs.Start("drover "+args[0], cmd, true, logPath)
	if err != nil {
		return false, "", 0, err
	}
	if pw, ok := cmd.Stdout.(*os.File); ok && r.o.Serve {
		pw.Close() // the daemon has its copy; EOF comes when it exits
	}
	r.view.newProcess()
	var fire, fallback <-chan time.Time
	switch {
	case tgt == nil:
	case tgt.trigger == nil:
		fire = time.After(tgt.delay)
	case tgt.fallback > 0:
		fallback = time.After(tgt.fallback)
	}
	deadline := time.NewTimer(r.o.ProcessTimeout)
	defer deadline.Stop()
	seen := 0
	finished := false
	consume := func() {
		lines, _ := p.Lines(seen)
		seen += len(lines)
		for _, l := range lines {
			ev, ok := parse(l)
			if !ok {
				continue
			}
			if ev.kind == "finished" {
				finished = true
			}
			r.view.apply(ev)
			if tgt != nil && tgt.trigger != nil && fire == nil && tgt.trigger(ev, r.view) {
				fire, fallback = time.After(tgt.delay), nil
			}
		}
	}
	for {
		if finished && r.o.Serve {
			// The daemon finished the run: shut it down cleanly.
			if err := p.Signal(syscall.SIGTERM); err != nil {
				return false, "", 0, err
			}
			code, err := p.Wait(time.Minute)
			return false, "", code, err
		}
		select {
		case u := <-urls:
			if r.needStart {
				if err := r.startOnDaemon(u); err != nil {
					return false, "", 0, err
				}
				r.needStart = false
			}
		case <-p.Changed():
			consume()
		case <-fallback:
			fire, fallback = closedTimeChan, nil
		case <-fire:
			consume()
			moment := r.view.moment()
			if err := p.Kill(); err != nil {
				return false, "", 0, fmt.Errorf("kill drover: %w", err)
			}
			code, err := p.Wait(time.Minute)
			if err != nil {
				return false, "", 0, err
			}
			if code != -1 {
				// It exited on its own just before the signal.
				return false, "", code, nil
			}
			return true, moment, -1, nil
		case <-p.Done():
			consume()
			return false, "", p.Cmd.ProcessState.ExitCode(), nil
		case <-deadline.C:
			_ = p.Kill()
			<-p.Done()
			return false, "", 0, fmt.Errorf("drover %s did not finish within %s; see %s", strings.Join(args, " "), r.o.ProcessTimeout, logPath)
		case <-ctx.Done():
			_ = p.Kill()
			<-p.Done()
			return false, "", 0, ctx.Err()
		}
	}
}

// startOnDaemon starts the run through the daemon's API with `drover --server URL
// apply --yes --json`, which then follows the run until the daemon dies. Its output
// goes to follower.log.
func (r *round) startOnDaemon(url string) error {
	cmd := exec.Command(r.o.Drover, "--server", url, "apply", "--yes", "--json")
	cmd.Env = append(os.Environ(), "DROVER_TOKEN="+token)
	log, err := os.OpenFile(filepath.Join(r.o.Dir, "follower.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer log.Close()
	cmd.Stdout = log
	_, err = r.o.Procs.Start("drover --server apply", cmd, false, filepath.Join(r.o.Dir, "follower.log"))
	return err
}

// closedTimeChan fires at once.
var closedTimeChan = func() <-chan time.Time {
	ch := make(chan time.Time)
	close(ch)
	return ch
}()

// drover runs a short drover command to its end and returns its stdout.
func (r *round) drover(ctx context.Context, args ...string) ([]byte, int, error) {
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(cctx, r.o.Drover, append([]string{"--config", r.cfg}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return nil, 0, fmt.Errorf("drover %s: %w", strings.Join(args, " "), err)
	}
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		return out.Bytes(), code, fmt.Errorf("drover %s: exit %d: %s", strings.Join(args, " "), code, strings.TrimSpace(errb.String()))
	}
	return out.Bytes(), 0, nil
}

// newestRun asks `drover runs list --json` (newest first) for the run.
func (r *round) newestRun(ctx context.Context) (string, runs.State, error) {
	out, _, err := r.drover(ctx, "runs", "list", "--json")
	if err != nil {
		return "", "", err
	}
	var list []struct {
		ID    string     `json:"id"`
		State runs.State `json:"state"`
	}
	if err := json.Unmarshal(out, &list); err != nil {
		return "", "", fmt.Errorf("runs list --json: %w: %q", err, out)
	}
	if len(list) == 0 {
		return "", "", nil
	}
	return list[0].ID, list[0].State, nil
}

func (r *round) show(ctx context.Context, id string) (report.Report, error) {
	var rep report.Report
	out, _, err := r.drover(ctx, "runs", "show", id, "--json")
	if err != nil {
		return rep, err
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		return rep, fmt.Errorf("runs show --json: %w", err)
	}
	return rep, nil
}

func openIntents(path, runID string) ([]runs.Entry, error) {
	st, err := runs.Open(path, runs.Options{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer st.Close()
	j, err := st.Journal(runID)
	if err != nil {
		return nil, err
	}
	return runs.OpenIntents(j), nil
}

// writeConfig writes the round's drover config.
func writeConfig(o Options, url string) (string, error) {
	cfg := fmt.Sprintf(`# chaos round, seed %d
state: state.db
cluster:
  name: chaos
  driver: sim
  sim:
    url: %s
    timeout: 30s
policy:
  failback: %s
  max_parallel_migrations: %d
  max_migrations_per_node: %d
  reserve_nodes: %d
  non_migratable: shutdown
  reboot_timeout: 15m
`, o.Seed, url, o.Failback, o.MaxParallel, o.PerNode, o.ReserveNodes)
	if o.Serve {
		sum := sha256.Sum256([]byte(token))
		cfg += fmt.Sprintf("server:\n  listen: 127.0.0.1:0\n  tokens: [{name: chaos, role: operator, sha256: %s}]\n", hex.EncodeToString(sum[:]))
	}
	path := filepath.Join(o.Dir, "drover.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return "", err
	}
	return path, nil
}

// injectFaults makes the sim hold pause, install and resume requests (so kills
// land inside them), answer the first of each node's pause, resume, install and
// reboot requests 5xx after acting, and, when asked, other requests too.
func injectFaults(ctx context.Context, c *sim.Driver, inv cluster.Inventory, o Options) error {
	if o.HangMs > 0 {
		for _, n := range inv.Nodes {
			for _, suffix := range []string{"/pause", "/resume", "/updates/install", "/reboot"} {
				path := "/v1/nodes/" + n.Name + suffix
				if suffix != "/reboot" {
					f := sim.Fault{Kind: sim.FaultAPIHang, Path: path, Probability: 1, DelayMs: o.HangMs}
					if err := c.InjectFault(ctx, f); err != nil {
						return err
					}
				}
				// The first request also fails after taking effect: the driver
				// retries after a backoff, and a kill in that window leaves an
				// intent open for an action that did happen.
				f := sim.Fault{Kind: sim.FaultAPIErrors, Path: path, Burst: 1, AfterApply: true}
				if err := c.InjectFault(ctx, f); err != nil {
					return err
				}
			}
		}
		// The same for the shutdown and restart of VMs that cannot migrate.
		for _, v := range inv.VMs {
			if v.Migratable || !v.Running() {
				continue
			}
			for _, suffix := range []string{"/shutdown", "/start"} {
				path := "/v1/vms/" + v.Name + suffix
				for _, f := range []sim.Fault{
					{Kind: sim.FaultAPIHang, Path: path, Probability: 1, DelayMs: o.HangMs},
					{Kind: sim.FaultAPIErrors, Path: path, Burst: 1, AfterApply: true},
				} {
					if err := c.InjectFault(ctx, f); err != nil {
						return err
					}
				}
			}
		}
	}
	if o.APIErrors > 0 {
		if err := c.InjectFault(ctx, sim.Fault{Kind: sim.FaultAPIErrors, Probability: o.APIErrors, AfterApply: true}); err != nil {
			return err
		}
	}
	return nil
}

// RandomOptions derives a round's options from its seed: cluster, time scale,
// policy, faults, number of kills, and whether `drover apply` or `drover serve`
// is killed (one round in four). root is the module root.
func RandomOptions(root string, seed uint64) Options {
	r := rand.New(rand.NewPCG(seed, 0x0b7))
	o := Options{
		Seed:         seed,
		ClusterFile:  filepath.Join(root, "testdata", "clusters", "chaos.yaml"),
		TimeScale:    float64(40 + r.IntN(61)),
		Kills:        18 + r.IntN(15),
		Failback:     []string{"immediate", "immediate", "policy", "none"}[r.IntN(4)],
		MaxParallel:  2 + r.IntN(5),
		PerNode:      1 + r.IntN(3),
		ReserveNodes: 1,
		HangMs:       40 + r.IntN(120),
	}
	if r.IntN(4) == 0 {
		o.ClusterFile = filepath.Join(root, "testdata", "clusters", "demo.yaml")
	}
	if r.IntN(2) == 0 {
		o.APIErrors = 0.02
	}
	o.Serve = r.IntN(4) == 0
	// Drawn last, so that the other choices of a seed stay what they were.
	if r.IntN(2) == 0 {
		o.Suspend = 1 + r.IntN(3)
	}
	return o
}
