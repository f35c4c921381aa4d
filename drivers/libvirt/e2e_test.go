package libvirt_test

// End-to-end tests against a real three-host libvirt cluster (lab/lab.sh). They run only
// with DROVER_LIBVIRT_LAB=1, as root, after `lab/lab.sh deps`:
//
//	DROVER_LIBVIRT_LAB=1 go test -count=1 -v -run TestLab ./drivers/libvirt/
//
// The test brings the lab up and always tears it down (t.Cleanup, and on SIGINT/SIGTERM).
// With DROVER_LIBVIRT_LAB_KEEP=1 it uses a lab that is already up and leaves it up.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/drivers"
	_ "github.com/droverhq/drover/drivers/libvirt"
)

var labHosts = []string{"hostA", "hostB", "hostC"}

type lab struct {
	t      *testing.T
	script string
}

func (l *lab) run(args ...string) (string, error) {
	out, err := exec.Command(l.script, args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func (l *lab) must(args ...string) string {
	l.t.Helper()
	out, err := l.run(args...)
	if err != nil {
		l.t.Fatalf("lab.sh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

var heartbeatRE = regexp.MustCompile(`^boot=([0-9a-f-]+) n=([0-9]+)$`)

// heartbeat returns the guest's boot id and counter from its console log.
func (l *lab) heartbeat(vm string) (string, int) {
	l.t.Helper()
	out := l.must("heartbeat", vm)
	m := heartbeatRE.FindStringSubmatch(out)
	if m == nil {
		l.t.Fatalf("heartbeat %s: unexpected %q", vm, out)
	}
	n, _ := strconv.Atoi(m[2])
	return m[1], n
}

// waitHeartbeatAbove polls the console log until vm's counter exceeds n (same boot id).
func (l *lab) waitHeartbeatAbove(vm, boot string, n int) int {
	l.t.Helper()
	var got int
	var gotBoot string
	ok := poll(20*time.Second, func() bool {
		gotBoot, got = l.heartbeat(vm)
		return gotBoot != boot || got > n
	})
	if gotBoot != boot {
		l.t.Fatalf("vm %s rebooted: boot id %s, was %s", vm, gotBoot, boot)
	}
	if !ok {
		l.t.Fatalf("vm %s heartbeat stuck at %d", vm, got)
	}
	return got
}

// definedOn lists the hosts where vm is defined, with its state.
func (l *lab) definedOn(vm string) map[string]string {
	l.t.Helper()
	out := map[string]string{}
	for _, h := range labHosts {
		if st, err := l.run("virsh", h, "domstate", vm); err == nil {
			out[h] = st
		}
	}
	return out
}

// poll calls cond every 100 ms until it is true or the deadline passes.
// guestBootTimeout bounds the wait for a guest's first heartbeat: TCG guests boot in
// 2-4 s on an idle machine, but several times slower when the 2 cores are busy.
const guestBootTimeout = 2 * time.Minute

func poll(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		<-tick.C
	}
}

func labScript(t *testing.T) string {
	p, err := filepath.Abs("lab/lab.sh")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// labConfig is the driver config for the lab, as the raw map a config file yields.
func labConfig(script, stateDir string) map[string]any {
	var hosts []any
	for i, h := range labHosts {
		ip := fmt.Sprintf("10.99.0.%d", i+1)
		uri, _ := exec.Command(script, "uri", h).Output()
		hosts = append(hosts, map[string]any{
			"name":            h,
			"uri":             strings.TrimSpace(string(uri)),
			"peer_uri":        "qemu+tcp://" + ip + "/system",
			"migration_uri":   "tcp://" + ip,
			"reboot_command":  []any{script, "reboot-host", h},
			"boot_id_command": []any{script, "boot-id", h},
		})
	}
	return map[string]any{
		"hosts":             hosts,
		"state_dir":         stateDir,
		"poll_interval":     "100ms",
		"migration_timeout": "2m",
	}
}

func openDriver(ctx context.Context, raw map[string]any) (drivers.Driver, error) {
	info, ok := drivers.Lookup("libvirt")
	if !ok {
		return nil, errors.New("driver libvirt not registered")
	}
	cfg := info.NewConfig()
	if err := drivers.Decode(raw, cfg); err != nil {
		return nil, err
	}
	return cfg.Open(ctx, drivers.Env{})
}

func startLab(t *testing.T) *lab {
	if os.Getenv("DROVER_LIBVIRT_LAB") != "1" {
		t.Skip("set DROVER_LIBVIRT_LAB=1 (as root, after lab/lab.sh deps) to run the libvirt lab tests")
	}
	l := &lab{t: t, script: labScript(t)}
	if os.Getenv("DROVER_LIBVIRT_LAB_KEEP") == "1" {
		return l
	}
	_, _ = l.run("down") // leftovers of an earlier, killed run
	var once sync.Once
	down := func() {
		once.Do(func() {
			if out, err := l.run("down"); err != nil {
				t.Errorf("lab.sh down: %v\n%s", err, out)
			}
			// Nothing of the lab may survive it: namespaces hold its daemons and guests.
			if left, _ := filepath.Glob("/run/netns/drover-*"); len(left) > 0 {
				t.Errorf("lab.sh down left namespaces behind: %v", left)
			}
		})
	}
	t.Cleanup(down)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	stop := make(chan struct{})
	t.Cleanup(func() { signal.Stop(sig); close(stop) })
	go func() {
		select {
		case s := <-sig:
			down()
			fmt.Fprintf(os.Stderr, "lab torn down after %v\n", s)
			os.Exit(1)
		case <-stop:
		}
	}()
	start := time.Now()
	l.must("up")
	t.Logf("lab up in %s", time.Since(start).Round(10*time.Millisecond))
	return l
}

func filterVMs(vms []cluster.VM, name string) []cluster.VM {
	var out []cluster.VM
	for _, v := range vms {
		if v.Name == name {
			out = append(out, v)
		}
	}
	return out
}

func vmOf(t *testing.T, inv cluster.Inventory, name string) cluster.VM {
	t.Helper()
	vm, ok := inv.VM(name)
	if !ok {
		t.Fatalf("vm %s missing from inventory %+v", name, inv.VMs)
	}
	return vm
}

func TestLab(t *testing.T) {
	l := startLab(t)
	stateDir := t.TempDir()
	raw := labConfig(l.script, stateDir)
	ctx := t.Context()
	drv, err := openDriver(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { drv.Close() })
	// Guests boot in 2-4 s: wait for every heartbeat before testing anything.
	for _, vm := range []string{"vm1", "vm2", "vm3", "vm4"} {
		if !poll(guestBootTimeout, func() bool { _, err := l.run("heartbeat", vm); return err == nil }) {
			t.Fatalf("vm %s never printed a heartbeat", vm)
		}
	}

	t.Run("inventory-three-hosts", func(t *testing.T) {
		inv, err := drv.Inventory(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(inv.Nodes) != 3 {
			t.Fatalf("nodes = %+v", inv.Nodes)
		}
		for _, n := range inv.Nodes {
			if n.State != cluster.NodeUp || n.MemoryMiB <= 0 || n.CPUs <= 0 || n.BootID == "" {
				t.Errorf("node %+v: want up with memory, cpus and a boot id", n)
			}
		}
		for _, name := range []string{"vm1", "vm2", "vm3", "vm4"} {
			vm := vmOf(t, inv, name)
			if vm.Node != "hostA" || vm.Power != cluster.PowerRunning || !vm.Migratable || vm.MemoryMiB != 112 || vm.VCPUs != 1 {
				t.Errorf("vm %+v: want running, migratable, 112 MiB, 1 vCPU on hostA", vm)
			}
		}
		if !drv.Capabilities().BootID {
			t.Error("Capabilities().BootID = false with boot_id_command on every host")
		}
	})

	t.Run("boot-id-read-once-per-connection", func(t *testing.T) {
		// The boot id command (an SSH login on real hosts) runs once per libvirt
		// connection, and again once the host's libvirtd went away with a reboot.
		counted := maps.Clone(raw)
		count := filepath.Join(t.TempDir(), "boot-id-calls")
		var hosts []any
		for _, hc := range raw["hosts"].([]any) {
			h := maps.Clone(hc.(map[string]any))
			h["boot_id_command"] = []any{"/bin/sh", "-c", `echo "$2" >>"$0"; exec "$1" boot-id "$2"`, count, l.script, h["name"]}
			hosts = append(hosts, h)
		}
		counted["hosts"] = hosts
		drv2, err := openDriver(ctx, counted)
		if err != nil {
			t.Fatal(err)
		}
		defer drv2.Close()
		calls := func() map[string]int {
			data, _ := os.ReadFile(count)
			out := map[string]int{}
			for _, h := range strings.Fields(string(data)) {
				out[h]++
			}
			return out
		}
		bootOf := func() string {
			inv, err := drv2.Inventory(ctx)
			if err != nil {
				t.Fatal(err)
			}
			n, _ := inv.Node("hostB")
			return n.BootID
		}
		before := bootOf()
		for range 3 {
			if got := bootOf(); got != before {
				t.Fatalf("boot id of hostB changed from %s to %s without a reboot", before, got)
			}
		}
		if got := calls(); got["hostA"] != 1 || got["hostB"] != 1 || got["hostC"] != 1 {
			t.Fatalf("boot id command calls after 4 inventories = %v, want 1 per host", got)
		}
		l.must("reboot-host", "hostB")
		after := bootOf()
		if after == before || after != strings.TrimSpace(l.must("boot-id", "hostB")) {
			t.Fatalf("boot id of hostB after reboot-host = %s (was %s), want the new one", after, before)
		}
		if got := calls(); got["hostB"] != 2 || got["hostA"] != 1 {
			t.Fatalf("boot id command calls = %v, want a second one for the rebooted hostB only", got)
		}
	})

	t.Run("paused-host-refuses-migration", func(t *testing.T) {
		if err := drv.PauseNode(ctx, "hostC", ""); err != nil {
			t.Fatal(err)
		}
		_, err := drv.Migrate(ctx, drivers.MigrateRequest{VM: "vm1", From: "hostA", To: "hostC"}, nil)
		if !errors.Is(err, drivers.ErrRejected) {
			t.Fatalf("Migrate to paused host: %v, want ErrRejected", err)
		}
		inv, err := drv.Inventory(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := inv.Node("hostC"); n.State != cluster.NodePaused || !n.Paused {
			t.Fatalf("hostC = %+v, want paused", n)
		}
		if vmOf(t, inv, "vm1").Node != "hostA" {
			t.Fatal("vm1 moved despite the refusal")
		}
		if err := drv.ResumeNode(ctx, "hostC"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("metadata-pinned-vm-refused", func(t *testing.T) {
		l.must("pin", "vm4")
		defer l.run("unpin", "vm4")
		inv, err := drv.Inventory(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if vm := vmOf(t, inv, "vm4"); vm.Migratable || !strings.Contains(vm.NotMigratableReason, "pinned by lab.sh pin") {
			t.Fatalf("pinned vm4 = %+v, want not migratable with the metadata's reason", vm)
		}
		_, err = drv.Migrate(ctx, drivers.MigrateRequest{VM: "vm4", From: "hostA", To: "hostB"}, nil)
		if !errors.Is(err, drivers.ErrRejected) || !strings.Contains(err.Error(), "pinned by lab.sh pin") {
			t.Fatalf("Migrate of pinned vm = %v, want ErrRejected with the reason", err)
		}
		l.must("unpin", "vm4")
		inv, err = drv.Inventory(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if vm := vmOf(t, inv, "vm4"); !vm.Migratable {
			t.Fatalf("unpinned vm4 = %+v, want migratable", vm)
		}
	})

	t.Run("live-migration-keeps-guest-running", func(t *testing.T) {
		boot, before := l.heartbeat("vm1")
		var reports []drivers.MigrationProgress
		start := time.Now()
		res, err := drv.Migrate(ctx, drivers.MigrateRequest{VM: "vm1", From: "hostA", To: "hostB"}, func(p drivers.MigrationProgress) {
			reports = append(reports, p)
		})
		wall := time.Since(start)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("vm1 hostA->hostB: wall %s, reported %s, downtime %s, %.1f MiB, %d progress reports",
			wall.Round(time.Millisecond), res.Duration, res.Downtime, res.TransferredMiB, len(reports))
		if res.AlreadyThere || res.Duration <= 0 || res.Duration > wall || res.TransferredMiB < 1 {
			t.Errorf("result %+v: want a real migration with job statistics", res)
		}
		if len(reports) == 0 {
			t.Error("no progress reports")
		}
		for _, p := range reports {
			if p.VM != "vm1" || p.From != "hostA" || p.To != "hostB" {
				t.Errorf("progress %+v names the wrong migration", p)
			}
		}
		if got := l.definedOn("vm1"); len(got) != 1 || got["hostB"] != "running" {
			t.Fatalf("vm1 defined on %v, want only hostB, running", got)
		}
		l.waitHeartbeatAbove("vm1", boot, before+1)

		again, err := drv.Migrate(ctx, drivers.MigrateRequest{VM: "vm1", From: "hostA", To: "hostB"}, nil)
		if err != nil || !again.AlreadyThere {
			t.Fatalf("repeat Migrate = %+v, %v; want AlreadyThere", again, err)
		}
	})

	t.Run("cancel-aborts-migration", func(t *testing.T) {
		// Throttle the migration to 2 MiB/s so that it is certainly in flight when we
		// cancel, then restore the bandwidth.
		speed := l.must("virsh", "hostA", "migrate-getspeed", "vm2")
		l.must("virsh", "hostA", "migrate-setspeed", "vm2", "2")
		defer l.run("virsh", "hostA", "migrate-setspeed", "vm2", speed)
		boot, before := l.heartbeat("vm2")
		mctx, cancel := context.WithCancel(ctx)
		defer cancel()
		var inFlight drivers.MigrationProgress
		_, err := drv.Migrate(mctx, drivers.MigrateRequest{VM: "vm2", From: "hostA", To: "hostC"}, func(p drivers.MigrationProgress) {
			if p.Phase == "precopy" && p.TransferredMiB > 0 && inFlight.VM == "" {
				inFlight = p
				cancel()
			}
		})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Migrate after cancel = %v, want context.Canceled", err)
		}
		t.Logf("cancelled at %.1f MiB transferred, %.1f MiB remaining: %v", inFlight.TransferredMiB, inFlight.RemainingMiB, err)
		if got := l.definedOn("vm2"); len(got) != 1 || got["hostA"] != "running" {
			t.Fatalf("vm2 defined on %v, want only hostA, running", got)
		}
		l.waitHeartbeatAbove("vm2", boot, before+1)
	})

	t.Run("timeout-aborts-as-not-converged", func(t *testing.T) {
		speed := l.must("virsh", "hostA", "migrate-getspeed", "vm2")
		l.must("virsh", "hostA", "migrate-setspeed", "vm2", "2")
		defer l.run("virsh", "hostA", "migrate-setspeed", "vm2", speed)
		short := maps.Clone(raw)
		short["migration_timeout"] = "1500ms"
		drv2, err := openDriver(ctx, short)
		if err != nil {
			t.Fatal(err)
		}
		defer drv2.Close()
		_, err = drv2.Migrate(ctx, drivers.MigrateRequest{VM: "vm2", From: "hostA", To: "hostC"}, nil)
		if !errors.Is(err, drivers.ErrNotConverged) || !strings.Contains(err.Error(), "stays on hostA") {
			t.Fatalf("Migrate past migration_timeout = %v, want ErrNotConverged, vm stays on hostA", err)
		}
		if got := l.definedOn("vm2"); len(got) != 1 || got["hostA"] != "running" {
			t.Fatalf("vm2 defined on %v, want only hostA, running", got)
		}
	})

	t.Run("concurrent-calls-join-one-migration", func(t *testing.T) {
		// The second call starts once the first reports progress: it must join that
		// migration and get its result, not start another or answer AlreadyThere.
		req := drivers.MigrateRequest{VM: "vm1", From: "hostB", To: "hostC"}
		inFlight := make(chan struct{})
		var once sync.Once
		var second drivers.MigrationResult
		var secondErr error
		var wg sync.WaitGroup
		wg.Go(func() {
			<-inFlight
			second, secondErr = drv.Migrate(ctx, req, nil)
		})
		first, err := drv.Migrate(ctx, req, func(drivers.MigrationProgress) { once.Do(func() { close(inFlight) }) })
		once.Do(func() { close(inFlight) }) // no progress at all: let the goroutine finish
		wg.Wait()
		if err != nil || secondErr != nil {
			t.Fatalf("Migrate: %v / %v", err, secondErr)
		}
		if first.AlreadyThere || second != first {
			t.Fatalf("results %+v / %+v: want one real migration, both callers with its result", first, second)
		}
		if got := l.definedOn("vm1"); len(got) != 1 || got["hostC"] != "running" {
			t.Fatalf("vm1 defined on %v, want only hostC, running", got)
		}
	})

	t.Run("client-killed-mid-migration", func(t *testing.T) {
		speed := l.must("virsh", "hostA", "migrate-getspeed", "vm3")
		l.must("virsh", "hostA", "migrate-setspeed", "vm3", "8")
		defer l.run("virsh", "hostA", "migrate-setspeed", "vm3", speed)
		boot, before := l.heartbeat("vm3")
		cfgJSON, _ := json.Marshal(raw)
		cmd := exec.Command(os.Args[0], "-test.run=^TestLabHelperMigrate$", "-test.v")
		cmd.Env = append(os.Environ(), "DROVER_LIBVIRT_HELPER_CONFIG="+string(cfgJSON), "DROVER_LIBVIRT_HELPER_MIGRATE=vm3:hostA:hostB")
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		killed := false
		defer func() {
			if !killed {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
			}
		}()
		// The inventory must show the migration in flight: vm3 once, on hostA, moving
		// to hostB.
		var seen cluster.VM
		if !poll(30*time.Second, func() bool {
			inv, err := drv.Inventory(ctx)
			if err != nil {
				return false
			}
			seen = vmOf(t, inv, "vm3")
			if n := len(filterVMs(inv.VMs, "vm3")); n != 1 {
				t.Fatalf("vm3 reported %d times: %+v", n, inv.VMs)
			}
			return seen.MigratingTo == "hostB"
		}) {
			t.Fatalf("migration never seen in flight; last vm3 = %+v; helper output:\n%s", seen, out.String())
		}
		if seen.Node != "hostA" || seen.Power != cluster.PowerRunning {
			t.Fatalf("vm3 in flight = %+v, want running on hostA", seen)
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		killed = true
		killedAt := time.Now()
		t.Logf("helper killed with the migration in flight")
		defer func() { t.Logf("vm3 settled %s after the kill", time.Since(killedAt).Round(time.Millisecond)) }()

		// A new Migrate (a resumed Drover) must join or redo the migration, not start a
		// second one, and end with the VM on hostB.
		res, err := drv.Migrate(ctx, drivers.MigrateRequest{VM: "vm3", From: "hostA", To: "hostB"}, nil)
		if err != nil {
			t.Fatalf("Migrate after crash: %v", err)
		}
		t.Logf("Migrate after the crash: %+v", res)
		if got := l.definedOn("vm3"); len(got) != 1 || got["hostB"] != "running" {
			t.Fatalf("vm3 defined on %v, want only hostB, running", got)
		}
		l.waitHeartbeatAbove("vm3", boot, before+1)
		again, err := drv.Migrate(ctx, drivers.MigrateRequest{VM: "vm3", From: "hostA", To: "hostB"}, nil)
		if err != nil || !again.AlreadyThere {
			t.Fatalf("repeat Migrate = %+v, %v; want AlreadyThere", again, err)
		}
	})

	t.Run("reboot-host", func(t *testing.T) {
		// vm4 goes to hostC first: a reboot without draining loses it (it comes back
		// shut off), which is exactly what Drover exists to prevent.
		if _, err := drv.Migrate(ctx, drivers.MigrateRequest{VM: "vm4", To: "hostC"}, nil); err != nil {
			t.Fatal(err)
		}
		inv, err := drv.Inventory(ctx)
		if err != nil {
			t.Fatal(err)
		}
		before, _ := inv.Node("hostC")
		if err := drv.RebootNode(ctx, "hostC"); err != nil {
			t.Fatal(err)
		}
		if !poll(60*time.Second, func() bool { ok, err := drv.NodeReady(ctx, "hostC"); return err == nil && ok }) {
			t.Fatal("hostC not ready after reboot")
		}
		inv, err = drv.Inventory(ctx)
		if err != nil {
			t.Fatal(err)
		}
		after, _ := inv.Node("hostC")
		if after.State != cluster.NodeUp || after.BootID == before.BootID {
			t.Fatalf("hostC after reboot = %+v (boot id before %s): want up with a new boot id", after, before.BootID)
		}
		if vm := vmOf(t, inv, "vm4"); vm.Node != "hostC" || vm.Power != cluster.PowerStopped {
			t.Fatalf("vm4 after an undrained reboot = %+v, want stopped on hostC", vm)
		}
		_, err = drv.Migrate(ctx, drivers.MigrateRequest{VM: "vm4", From: "hostC", To: "hostA"}, nil)
		if !errors.Is(err, drivers.ErrRejected) {
			t.Fatalf("Migrate of a stopped vm = %v, want ErrRejected", err)
		}
	})
}

// TestLabHelperMigrate is the client process of client-killed-mid-migration: it runs
// one Migrate and is killed by the parent test while the migration is in flight.
func TestLabHelperMigrate(t *testing.T) {
	spec := os.Getenv("DROVER_LIBVIRT_HELPER_MIGRATE")
	if spec == "" {
		t.Skip("helper process of TestLab")
	}
	var raw map[string]any
	if err := json.Unmarshal([]byte(os.Getenv("DROVER_LIBVIRT_HELPER_CONFIG")), &raw); err != nil {
		t.Fatal(err)
	}
	drv, err := openDriver(t.Context(), raw)
	if err != nil {
		t.Fatal(err)
	}
	defer drv.Close()
	parts := strings.Split(spec, ":")
	res, err := drv.Migrate(t.Context(), drivers.MigrateRequest{VM: parts[0], From: parts[1], To: parts[2]}, func(p drivers.MigrationProgress) {
		fmt.Printf("progress %+v\n", p)
	})
	fmt.Printf("migrate returned %+v %v\n", res, err)
}
