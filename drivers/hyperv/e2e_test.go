package hyperv_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/droverhq/drover/drivers/hyperv"
	"github.com/droverhq/drover/drivers/hyperv/wsmantest"
	"github.com/droverhq/drover/runs/report"
)

// The end-to-end tests run the real drover binary against the model cluster over
// WinRM (and SSH): make e2e-hyperv.

func e2eBinary(t *testing.T) string {
	t.Helper()
	if os.Getenv("DROVER_HYPERV_E2E") != "1" {
		t.Skip("set DROVER_HYPERV_E2E=1 (make e2e-hyperv) to run drover apply against the model cluster")
	}
	if p := os.Getenv("DROVER_BIN"); p != "" {
		abs, err := filepath.Abs(p)
		if err != nil {
			t.Fatal(err)
		}
		return abs
	}
	out := filepath.Join(t.TempDir(), "drover")
	if b, err := exec.Command("go", "build", "-o", out, "../../cmd/drover").CombinedOutput(); err != nil {
		t.Fatalf("build drover: %v\n%s", err, b)
	}
	return out
}

// e2eModel is a 3-node cluster with six VM roles, two of them in one anti-affinity
// class, MaximumParallelMigrations 2.
func e2eModel() *wsmantest.Model {
	upd := func(kb string) []wsmantest.Update {
		return []wsmantest.Update{{Title: "2026-11 Cumulative Update (KB" + kb + ")", KB: kb, ID: "cu-" + kb}}
	}
	return wsmantest.NewModel("HVCLUSTER01", 2, wsmantest.Timing{Migration: 700 * time.Millisecond, Down: 1500 * time.Millisecond, ServiceStart: 400 * time.Millisecond, Install: 1500 * time.Millisecond},
		[]wsmantest.NodeSpec{{Name: "HV1", MemoryMiB: 65536, CPUs: 32, Updates: upd("5070001")}, {Name: "HV2", MemoryMiB: 65536, CPUs: 32, Updates: upd("5070001"), RefuseNetworkWU: true}, {Name: "HV3", MemoryMiB: 65536, CPUs: 32, Updates: upd("5070001")}},
		[]wsmantest.VMSpec{
			{Name: "sql01", Node: "HV1", MemoryMiB: 8192, CPUs: 4, AntiAffinity: []string{"SQL"}},
			{Name: "sql02", Node: "HV2", MemoryMiB: 8192, CPUs: 4, AntiAffinity: []string{"SQL"}},
			{Name: "web01", Node: "HV1", MemoryMiB: 2048, Dynamic: true, CPUs: 2},
			{Name: "web02", Node: "HV1", MemoryMiB: 2048, Dynamic: true, CPUs: 2},
			{Name: "web03", Node: "HV2", MemoryMiB: 2048, Dynamic: true, CPUs: 2},
			{Name: "app01", Node: "HV3", MemoryMiB: 4096, CPUs: 4},
		})
}

// writeConfig writes drover's config for the cluster; section is the hyperv
// section's transport part (YAML lines, indented by 4).
func writeConfig(t *testing.T, dir string, nodes []string, transport string) string {
	t.Helper()
	p := filepath.Join(dir, "drover.yaml")
	cfg := fmt.Sprintf(`cluster:
  name: hv-e2e
  driver: hyperv
  hyperv:
    cluster: HVCLUSTER01
    nodes: [%s]
%s
    poll_interval: 100ms
    reboot_delay: 1s
    command_timeout: 30s
  updater:
    kind: windows_update
    windows_update: {poll_interval: 200ms, timeout: 1m}
policy:
  max_parallel_migrations: 4
  poll_interval: 200ms
  reboot_timeout: 1m
`, strings.Join(nodes, ", "), transport)
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

type droverRun struct {
	t            *testing.T
	bin, cfg, db string
	env          []string
	stdout       bytes.Buffer
	stderr       syncBuffer
	cmd          *exec.Cmd
	done         chan struct{}
	err          error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startDrover(t *testing.T, bin, cfg, db string, env []string, args ...string) *droverRun {
	t.Helper()
	r := &droverRun{t: t, bin: bin, cfg: cfg, db: db, env: env, done: make(chan struct{})}
	r.cmd = exec.Command(bin, append([]string{"--config", cfg, "--state", db, "--log-level", "info"}, args...)...)
	r.cmd.Env = append(os.Environ(), env...)
	r.cmd.Stdout, r.cmd.Stderr = &r.stdout, &r.stderr
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.err = r.cmd.Wait(); close(r.done) }()
	t.Cleanup(func() {
		select {
		case <-r.done:
		default:
			_ = r.cmd.Process.Kill()
			<-r.done
		}
		if t.Failed() {
			t.Logf("drover %s stderr:\n%s", strings.Join(args, " "), r.stderr.String())
		}
	})
	return r
}

func (r *droverRun) wait(timeout time.Duration) int {
	r.t.Helper()
	select {
	case <-r.done:
	case <-time.After(timeout):
		_ = r.cmd.Process.Kill()
		<-r.done
		r.t.Fatalf("drover did not finish within %s; stderr:\n%s", timeout, r.stderr.String())
	}
	var ee *exec.ExitError
	if errors.As(r.err, &ee) {
		return ee.ExitCode()
	}
	if r.err != nil {
		r.t.Fatal(r.err)
	}
	return 0
}

func (r *droverRun) report() report.Report {
	r.t.Helper()
	var rep report.Report
	if err := json.Unmarshal(bytes.TrimSpace(r.stdout.Bytes()), &rep); err != nil {
		r.t.Fatalf("decode report: %v\n%s", err, r.stdout.String())
	}
	return rep
}

// checkCluster checks the end state on the model and over the wire: every VM role
// online on exactly one node and never failed over, every node rebooted once, none
// left paused or marked, no update pending, no foreign command.
func checkCluster(t *testing.T, c *wsmantest.Cluster, d *hyperv.Driver) {
	t.Helper()
	m := c.Model
	for _, n := range m.Nodes() {
		if n.Reboots != 1 || n.State != "Up" || n.Description != "" || len(n.Pending) != 0 {
			t.Errorf("node %s: %d reboots, state %s, mark %q, %d pending; want 1, Up, none, 0", n.Name, n.Reboots, n.State, n.Description, len(n.Pending))
		}
	}
	for _, g := range m.Groups() {
		if g.State != "Online" || g.Failovers != 0 {
			t.Errorf("role %s: %s on %s, %d failovers; want Online, none", g.Name, g.State, g.Owner, g.Failovers)
		}
	}
	inv, err := d.Inventory(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, v := range inv.VMs {
		seen[v.Name]++
		if _, ok := inv.Node(v.Node); !ok || v.Power != "running" {
			t.Errorf("VM %s on %q (%s) over the wire", v.Name, v.Node, v.Power)
		}
	}
	for vm, n := range seen {
		if n != 1 {
			t.Errorf("VM %s reported %d times", vm, n)
		}
	}
	if len(seen) != len(m.Groups()) {
		t.Errorf("%d VMs over the wire, %d roles in the model", len(seen), len(m.Groups()))
	}
	noRejected(t, m)
	if errs := c.RestartErrors(); len(errs) > 0 {
		t.Errorf("endpoints that did not come back: %v", errs)
	}
}

func figures(t *testing.T, name string, c *wsmantest.Cluster, rep report.Report, wall time.Duration) {
	st := c.Model.Stats()
	var creates, receives, timedOut, sshRuns, ntlm int
	for _, e := range c.Endpoints {
		ntlm += e.Count("ntlm-ok")
		creates += e.Count("Create")
		receives += e.Count("Receive")
		timedOut += e.Count("w:TimedOut")
	}
	for _, e := range c.SSH {
		sshRuns += e.Runs()
	}
	wire := fmt.Sprintf("%d WinRM shells, %d receives, %d w:TimedOut, %d NTLMv2 logons", creates, receives, timedOut, ntlm)
	if c.SSH != nil {
		wire = fmt.Sprintf("%d SSH commands", sshRuns)
	}
	where := "loopback"
	if c.InNetns() {
		where = "one network namespace per node"
	}
	line := fmt.Sprintf("e2e-hyperv %s (%s): %s in %.1fs wall; %d nodes done, %d reboots, %d migrations started / %d completed / %d cancelled, peak %d parallel (cluster limit 2), %d updates installed, %d resumes, %d native drains; %s",
		name, where, rep.State, wall.Seconds(), rep.Summary.NodesDone, st.Reboots, st.MigrationsStarted, st.MigrationsCompleted, st.MigrationsCancelled, st.PeakParallel, rep.Summary.UpdatesInstalled, rep.Resumes, st.NativeDrains, wire)
	t.Log(line)
	fmt.Println(line)
}

// e2eLab is one model cluster reached over one transport.
type e2eLab struct {
	c *wsmantest.Cluster
	// nativeDrain: the config says drain: cluster.
	nativeDrain bool
	// transport is the hyperv section's transport lines for drover.yaml.
	transport string
	// driver opens a driver over the same transport, for the checks.
	driver func(t *testing.T) *hyperv.Driver
}

// labNetns returns network namespaces for the model's nodes when the test runs as
// root with iproute2 (each node's endpoint a host of its own), nil otherwise (loopback).
func labNetns(t *testing.T, m *wsmantest.Model) *wsmantest.Netns {
	t.Helper()
	if os.Getenv("DROVER_HYPERV_NETNS") == "0" {
		return nil
	}
	var names []string
	for _, n := range m.Nodes() {
		names = append(names, n.Name)
	}
	ns, err := wsmantest.NewNetns(names)
	if err != nil {
		if os.Getenv("DROVER_HYPERV_NETNS") == "1" {
			t.Fatalf("network namespaces: %v", err)
		}
		t.Logf("endpoints on loopback: %v", err)
		return nil
	}
	t.Cleanup(ns.Close)
	return ns
}

func winrmLab(t *testing.T, dir string) e2eLab {
	m := e2eModel()
	ns := labNetns(t, m)
	c, err := wsmantest.StartClusterIn(m, testUser, testPW, ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	ntlmOnly(c) // auth: ntlm, as the config, with Basic refused
	ca, err := c.CA.WriteCAFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	return e2eLab{c: c, transport: fmt.Sprintf(`    transport: winrm
    winrm: {https: true, auth: ntlm, username: 'HV\drover', password_env: DROVER_HYPERV_PASSWORD, ca_file: %s, operation_timeout: 1s, connect_timeout: 1s}`, ca),
		driver: func(t *testing.T) *hyperv.Driver {
			return mustDriver(t, c, func(_, w map[string]any) { w["auth"] = "ntlm" })
		}}
}

// clusterDrainLab is the WinRM lab with drain: cluster: the cluster drains each
// node itself (Suspend-ClusterNode -Drain) and Drover waits for it.
func clusterDrainLab(t *testing.T, dir string) e2eLab {
	lab := winrmLab(t, dir)
	lab.transport += "\n    drain: cluster"
	lab.nativeDrain = true
	return lab
}

func sshE2ELab(t *testing.T, dir string) e2eLab {
	m := e2eModel()
	c, key, kh := sshLab(t, m, dir, labNetns(t, m))
	return e2eLab{c: c, transport: fmt.Sprintf(`    transport: ssh
    ssh: {user: 'HV\drover', key_file: %s, known_hosts: %s, connect_timeout: 1s}`, key, kh),
		driver: func(t *testing.T) *hyperv.Driver {
			nodes := []any{}
			for _, a := range c.Addrs() {
				nodes = append(nodes, a)
			}
			d, err := openDriver(t, map[string]any{"nodes": nodes, "transport": "ssh", "ssh": map[string]any{"user": `HV\drover`, "key_file": key, "known_hosts": kh}})
			if err != nil {
				t.Fatal(err)
			}
			return d
		}}
}

// TestE2E runs drover apply end to end over WinRM, the same with kill -9 in the
// middle of a drain and runs resume, and once over SSH.
func TestE2E(t *testing.T) {
	bin := e2eBinary(t)
	for _, tc := range []struct {
		name string
		lab  func(*testing.T, string) e2eLab
		kill bool
	}{
		{"winrm-apply", winrmLab, false},
		{"winrm-kill-9-mid-drain-then-resume", winrmLab, true},
		{"ssh-apply", sshE2ELab, false},
		{"winrm-cluster-drain", clusterDrainLab, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			lab := tc.lab(t, dir)
			m := lab.c.Model
			cfg := writeConfig(t, dir, lab.c.Addrs(), lab.transport)
			db := filepath.Join(dir, "drover.db")
			env := []string{"DROVER_HYPERV_PASSWORD=" + testPW}
			began := time.Now()
			run := startDrover(t, bin, cfg, db, env, "apply", "--yes", "--json")
			var rep report.Report
			if !tc.kill {
				if code := run.wait(3 * time.Minute); code != 0 {
					t.Fatalf("drover apply: exit %d\n%s", code, run.stderr.String())
				}
				rep = run.report()
			} else {
				waitFor(t, time.Minute, "a live migration in flight", func() bool {
					select {
					case <-run.done:
						t.Fatalf("drover apply ended before any migration: %s", run.stderr.String())
					default:
					}
					for _, mg := range m.Migrations() {
						if mg.State == "Running" {
							return true
						}
					}
					return false
				})
				if err := run.cmd.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				run.wait(10 * time.Second)
				inFlight := 0
				for _, mg := range m.Migrations() {
					if mg.State == "Running" || mg.State == "New" {
						inFlight++
					}
				}
				t.Logf("killed drover -9 after %s with %d live migrations in flight", time.Since(began).Round(time.Millisecond), inFlight)
				list := startDrover(t, bin, cfg, db, env, "runs", "list", "--json")
				if code := list.wait(time.Minute); code != 0 {
					t.Fatalf("runs list: exit %d", code)
				}
				var runs []struct {
					ID    string `json:"id"`
					State string `json:"state"`
				}
				if err := json.Unmarshal(list.stdout.Bytes(), &runs); err != nil || len(runs) != 1 {
					t.Fatalf("runs list: %v %s", err, list.stdout.String())
				}
				resume := startDrover(t, bin, cfg, db, env, "runs", "resume", runs[0].ID, "--json")
				if code := resume.wait(3 * time.Minute); code != 0 {
					t.Fatalf("drover runs resume: exit %d\n%s", code, resume.stderr.String())
				}
				rep = resume.report()
				if rep.Resumes < 1 {
					t.Errorf("report counts %d resumes", rep.Resumes)
				}
			}
			wall := time.Since(began)
			if rep.State != "succeeded" || rep.Summary.NodesDone != 3 {
				t.Errorf("report: %s, %d nodes done; want succeeded, 3", rep.State, rep.Summary.NodesDone)
			}
			for _, n := range rep.Nodes {
				if !n.Rebooted || n.UpdatesInstalled != 1 || n.LeftPaused != "" {
					t.Errorf("report node %s: rebooted %v, %d updates, left paused %q", n.Name, n.Rebooted, n.UpdatesInstalled, n.LeftPaused)
				}
			}
			if st := m.Stats(); st.MigrationsStarted != st.MigrationsCompleted+st.MigrationsCancelled+st.MigrationsFailed {
				t.Errorf("migrations: %d started, %d completed, %d cancelled, %d failed: some never ended", st.MigrationsStarted, st.MigrationsCompleted, st.MigrationsCancelled, st.MigrationsFailed)
			}
			checkCluster(t, lab.c, lab.driver(t))
			if st := m.Stats(); lab.nativeDrain != (st.NativeDrains > 0) {
				t.Errorf("the cluster drained %d nodes itself; want native drains: %v", st.NativeDrains, lab.nativeDrain)
			} else if lab.nativeDrain && st.NativeDrains != 3 {
				t.Errorf("the cluster drained %d nodes itself, want 3", st.NativeDrains)
			}
			figures(t, tc.name, lab.c, rep, wall)
		})
	}
}
