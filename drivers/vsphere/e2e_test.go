package vsphere_test

// End-to-end tests of the drover binary against the strict vCenter simulator run as a
// process of its own (cmd/drover-vcsim) on 127.0.0.1, with the config a user writes:
//
//	make e2e-vsphere
//
// or DROVER_VSPHERE_E2E=1 go test -count=1 -v -run '^TestE2E' ./drivers/vsphere/
// (DROVER_BIN and DROVER_VCSIM_BIN name prebuilt binaries; without them the test
// builds both). Each case starts its own simulator and stops it, also on failure.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/droverhq/drover/drivers/vsphere/vcsimstrict"
	"github.com/droverhq/drover/runs/report"
)

const (
	e2ePassword  = "e2e-secret-Pa55"
	maxPerNode   = 2
	e2eRelocate  = 1500 * time.Millisecond
	e2eRebootDur = 2 * time.Second
)

func binary(t *testing.T, env, pkg string) string {
	t.Helper()
	if p := os.Getenv(env); p != "" {
		abs, err := filepath.Abs(p)
		if err != nil {
			t.Fatal(err)
		}
		return abs
	}
	out := filepath.Join(t.TempDir(), filepath.Base(pkg))
	if b, err := exec.Command("go", "build", "-o", out, pkg).CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", pkg, err, b)
	}
	return out
}

type simProc struct {
	URL, Stats, Username, Depot, Profile, TargetBuild string
}

// startSimProcess runs drover-vcsim and reads the line it prints once it serves.
func startSimProcess(t *testing.T, bin string) simProc {
	t.Helper()
	cmd := exec.Command(bin, "-relocate-duration", e2eRelocate.String(), "-reboot-duration", e2eRebootDur.String())
	cmd.Env = append(os.Environ(), "DROVER_VSPHERE_PASSWORD="+e2ePassword)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	line := make(chan []byte, 1)
	go func() {
		b := make([]byte, 4096)
		n, _ := out.Read(b)
		line <- b[:n]
		_, _ = io.Copy(io.Discard, out)
	}()
	var p simProc
	select {
	case b := <-line:
		var m map[string]string
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("drover-vcsim printed %q: %v (stderr %s)", b, err, stderr.String())
		}
		p = simProc{URL: m["url"], Stats: m["stats"], Username: m["username"], Depot: m["depot"], Profile: m["profile"], TargetBuild: m["target_build"]}
	case <-time.After(30 * time.Second):
		t.Fatalf("drover-vcsim did not start: %s", stderr.String())
	}
	return p
}

func (p simProc) stats(t *testing.T) vcsimstrict.Stats {
	t.Helper()
	res, err := http.Get(p.Stats)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var st vcsimstrict.Stats
	if err := json.NewDecoder(res.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

// writeConfig writes the config for the simulator.
func writeConfig(t *testing.T, p simProc) string {
	t.Helper()
	cfg := fmt.Sprintf(`cluster:
  name: vc-sim
  driver: vsphere
  vsphere:
    url: %s
    username: %s
    password_env: DROVER_VSPHERE_PASSWORD
    insecure: false
    datacenter: DC0
    cluster: DC0_C0
    poll_interval: 200ms
  updater:
    kind: esxcli
    esxcli:
      depot: %s
      profile: %s
policy:
  max_parallel_migrations: 4
  max_migrations_per_node: %d
  reboot_timeout: 2m
  poll_interval: 500ms
`, p.URL, p.Username, p.Depot, p.Profile, maxPerNode)
	path := filepath.Join(t.TempDir(), "vsphere.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

type droverRun struct {
	cmd            *exec.Cmd
	stdout, stderr *syncBuffer
	done           chan struct{}
	err            error
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

func startDrover(t *testing.T, bin, config, state string, args ...string) *droverRun {
	t.Helper()
	full := append([]string{"--config", config, "--state", state, "--log-level", "info"}, args...)
	r := &droverRun{cmd: exec.Command(bin, full...), stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	r.cmd.Env = append(os.Environ(), "DROVER_VSPHERE_PASSWORD="+e2ePassword)
	r.cmd.Stdout, r.cmd.Stderr = r.stdout, r.stderr
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
			t.Logf("drover %s stderr:\n%s", strings.Join(args, " "), r.stderr)
		}
	})
	return r
}

func (r *droverRun) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-r.done:
	case <-time.After(5 * time.Minute):
		t.Fatal("drover did not finish within 5m")
	}
	var ee *exec.ExitError
	if errors.As(r.err, &ee) {
		return ee.ExitCode()
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	return 0
}

func runDrover(t *testing.T, bin, config, state string, args ...string) (*droverRun, int) {
	t.Helper()
	r := startDrover(t, bin, config, state, args...)
	return r, r.wait(t)
}

// platform reads the simulator's truth through the API.
type platform struct {
	hosts map[string]mo.HostSystem
	vms   []mo.VirtualMachine
	drs   types.DrsBehavior
}

func readPlatform(t *testing.T, p simProc) platform {
	t.Helper()
	ctx := context.Background()
	u, err := url.Parse(p.URL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(p.Username, e2ePassword)
	c, err := govmomi.NewClient(ctx, u, true)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Logout(ctx) }()
	f := find.NewFinder(c.Client, true)
	dc, err := f.Datacenter(ctx, "DC0")
	if err != nil {
		t.Fatal(err)
	}
	f.SetDatacenter(dc)
	var out platform
	out.hosts = map[string]mo.HostSystem{}
	hosts, err := f.HostSystemList(ctx, "*")
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hosts {
		var mh mo.HostSystem
		if err := h.Properties(ctx, h.Reference(), []string{"name", "runtime", "config.product"}, &mh); err != nil {
			t.Fatal(err)
		}
		out.hosts[mh.Name] = mh
	}
	vms, err := f.VirtualMachineList(ctx, "*")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vms {
		var mv mo.VirtualMachine
		if err := v.Properties(ctx, v.Reference(), []string{"name", "runtime"}, &mv); err != nil {
			t.Fatal(err)
		}
		out.vms = append(out.vms, mv)
	}
	cl, err := f.ClusterComputeResource(ctx, "DC0_C0")
	if err != nil {
		t.Fatal(err)
	}
	var mc mo.ClusterComputeResource
	if err := cl.Properties(ctx, cl.Reference(), []string{"configurationEx"}, &mc); err != nil {
		t.Fatal(err)
	}
	out.drs = mc.ConfigurationEx.(*types.ClusterConfigInfoEx).DrsConfig.DefaultVmBehavior
	return out
}

// checkOutcome asserts what a finished rolling patch must leave behind and logs the
// figures.
func checkOutcome(t *testing.T, p simProc, before platform, rep report.Report) {
	t.Helper()
	st := p.stats(t)
	now := readPlatform(t, p)
	if rep.State != "succeeded" || rep.Summary.NodesDone != 4 {
		t.Errorf("report: state %s, %d nodes done; want succeeded, 4", rep.State, rep.Summary.NodesDone)
	}
	for name, h := range now.hosts {
		if st.Reboots[name] != 1 || st.Installs[name] != 1 {
			t.Errorf("host %s: rebooted %d, patched %d times; want exactly once each", name, st.Reboots[name], st.Installs[name])
		}
		if h.Config.Product.Build != p.TargetBuild {
			t.Errorf("host %s: build %s, want %s", name, h.Config.Product.Build, p.TargetBuild)
		}
		if h.Runtime.InMaintenanceMode || h.Runtime.ConnectionState != types.HostSystemConnectionStateConnected {
			t.Errorf("host %s left in maintenance=%v, %s", name, h.Runtime.InMaintenanceMode, h.Runtime.ConnectionState)
		}
		if b := before.hosts[name].Runtime.BootTime; b == nil || h.Runtime.BootTime == nil || !h.Runtime.BootTime.After(*b) {
			t.Errorf("host %s: boot time did not change", name)
		}
		if st.MaxInFlight[name] > maxPerNode {
			t.Errorf("host %s had %d relocations in flight at once, policy allows %d", name, st.MaxInFlight[name], maxPerNode)
		}
	}
	for _, vm := range now.vms {
		if vm.Runtime.PowerState != types.VirtualMachinePowerStatePoweredOn {
			t.Errorf("vm %s is %s", vm.Name, vm.Runtime.PowerState)
		}
	}
	if len(st.PowerOffs) != 0 || len(st.LostVMs) != 0 {
		t.Errorf("VMs powered off %v, lost %v; want none", st.PowerOffs, st.LostVMs)
	}
	if len(st.Refused) != 0 {
		t.Errorf("the strict simulator refused %d call(s): %+v", len(st.Refused), st.Refused)
	}
	if now.drs != before.drs {
		t.Errorf("DRS automation %s after the run, was %s", now.drs, before.drs)
	}
	// Figures.
	total, most, least := 0, 0, 1<<30
	for _, vm := range now.vms {
		n := st.Relocations[vm.Name]
		total += n
		most, least = max(most, n), min(least, n)
	}
	var drains []string
	names := make([]string, 0, len(st.DrainSeconds))
	for h := range st.DrainSeconds {
		names = append(names, h)
	}
	sort.Strings(names)
	for _, h := range names {
		for _, s := range st.DrainSeconds[h] {
			drains = append(drains, fmt.Sprintf("%s %.1fs", h, s))
		}
	}
	peak := 0
	for _, n := range st.MaxInFlight {
		peak = max(peak, n)
	}
	t.Logf("FIGURES: relocations %d for %d VMs (per VM min %d, max %d, mean %.2f); drain seconds per host: %s; most relocations in flight: %d per host, %d in the cluster",
		total, len(now.vms), least, most, float64(total)/float64(len(now.vms)), strings.Join(drains, ", "), peak, st.MaxInFlightTotal)
}

func decodeReport(t *testing.T, r *droverRun) report.Report {
	t.Helper()
	var rep report.Report
	if err := json.Unmarshal([]byte(r.stdout.String()), &rep); err != nil {
		t.Fatalf("decode report: %v\n%s", err, r.stdout)
	}
	return rep
}

func TestE2EApply(t *testing.T) {
	if os.Getenv("DROVER_VSPHERE_E2E") != "1" {
		t.Skip("set DROVER_VSPHERE_E2E=1 (make e2e-vsphere) to run drover against the simulator process")
	}
	drover := binary(t, "DROVER_BIN", "../../cmd/drover")
	vcsim := binary(t, "DROVER_VCSIM_BIN", "../../cmd/drover-vcsim")

	t.Run("inventory-lists-4-nodes-16-vms", func(t *testing.T) {
		p := startSimProcess(t, vcsim)
		cfg := writeConfig(t, p)
		r, code := runDrover(t, drover, cfg, filepath.Join(t.TempDir(), "s.db"), "inventory", "--json")
		if code != 0 {
			t.Fatalf("inventory: exit %d\n%s", code, r.stderr)
		}
		var inv struct {
			Nodes []struct {
				Name string            `json:"name"`
				VMs  []json.RawMessage `json:"vms"`
			} `json:"nodes"`
		}
		if err := json.Unmarshal([]byte(r.stdout.String()), &inv); err != nil {
			t.Fatalf("inventory --json: %v\n%s", err, r.stdout)
		}
		vms := 0
		for _, n := range inv.Nodes {
			vms += len(n.VMs)
		}
		if len(inv.Nodes) != 4 || vms != 16 {
			t.Fatalf("inventory: %d nodes, %d VMs; want 4, 16\n%s", len(inv.Nodes), vms, r.stdout)
		}
		if !strings.Contains(r.stderr.String(), "plain http") {
			t.Errorf("no warning about http:// in:\n%s", r.stderr)
		}
		if strings.Contains(r.stdout.String()+r.stderr.String(), e2ePassword) {
			t.Fatal("the password shows in drover's output")
		}
	})

	t.Run("rolling-patch", func(t *testing.T) {
		p := startSimProcess(t, vcsim)
		cfg := writeConfig(t, p)
		before := readPlatform(t, p)
		began := time.Now()
		r, code := runDrover(t, drover, cfg, filepath.Join(t.TempDir(), "s.db"), "apply", "--yes", "--json")
		if code != 0 {
			t.Fatalf("apply: exit %d\n%s", code, r.stderr)
		}
		t.Logf("apply took %s", time.Since(began).Round(100*time.Millisecond))
		checkOutcome(t, p, before, decodeReport(t, r))
	})

	t.Run("kill-9-during-relocations-then-resume", func(t *testing.T) {
		p := startSimProcess(t, vcsim)
		cfg := writeConfig(t, p)
		state := filepath.Join(t.TempDir(), "s.db")
		before := readPlatform(t, p)
		r := startDrover(t, drover, cfg, state, "apply", "--yes", "--json")
		deadline := time.Now().Add(2 * time.Minute)
		for p.stats(t).InFlight < 2 {
			if time.Now().After(deadline) {
				t.Fatal("no relocations in flight within 2m")
			}
			select {
			case <-r.done:
				t.Fatalf("apply ended before it was killed:\n%s", r.stderr)
			case <-time.After(50 * time.Millisecond):
			}
		}
		if err := r.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-r.done
		t.Logf("drover apply killed with %d relocation(s) in flight", p.stats(t).InFlight)
		list, code := runDrover(t, drover, cfg, state, "runs", "list", "--json")
		var rl []struct {
			ID    string `json:"id"`
			State string `json:"state"`
		}
		if code != 0 || json.Unmarshal([]byte(list.stdout.String()), &rl) != nil || len(rl) != 1 || rl[0].State != "running" {
			t.Fatalf("runs list after the kill: exit %d, %s", code, list.stdout)
		}
		resumed, code := runDrover(t, drover, cfg, state, "runs", "resume", rl[0].ID, "--json")
		if code != 0 {
			t.Fatalf("runs resume: exit %d\n%s", code, resumed.stderr)
		}
		t.Logf("the resumed run joined %d relocation(s) left in flight", strings.Count(resumed.stderr.String(), "joining a relocation already in flight")+strings.Count(resumed.stderr.String(), "joining migration in flight"))
		rep := decodeReport(t, resumed)
		if rep.Resumes < 1 {
			t.Errorf("report counts %d resumes", rep.Resumes)
		}
		checkOutcome(t, p, before, rep)
	})
}
