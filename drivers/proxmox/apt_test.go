package proxmox

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/drivers"
	"github.com/droverhq/drover/drivers/proxmox/pvesim"
	"github.com/droverhq/drover/drivers/updaters"
)

// aptLab is the lab with pending packages on pve2 and an upgrade slow enough to be
// caught running; the apt plug-in (no ssh section) runs over the driver's SSH, as a
// user's config does.
func aptLab(t *testing.T, upgrade time.Duration) (*lab, *Driver, drivers.Updater) {
	t.Helper()
	opts := testCluster()
	opts.Nodes[1].Pending = []pvesim.Package{
		{Name: "pve-manager", Version: "9.1.2", OldVersion: "9.1.1"},
		{Name: "proxmox-kernel-6.14", Version: "6.14.11-1", OldVersion: "6.14.8-2"},
	}
	opts.Timing = pvesim.DefaultTiming()
	opts.Timing.UpgradeTime = upgrade
	l := newLab(t, opts)
	d := l.open(t)
	u, err := updaters.NewAptConfig().Open(context.Background(), drivers.Env{Driver: d, BaseDir: l.dir, Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return l, d, u
}

func names(ups []cluster.Update) []string {
	var out []string
	for _, u := range ups {
		out = append(out, u.Name+" "+u.Version)
	}
	return out
}

var wantInstalled = []string{"pve-manager 9.1.2", "proxmox-kernel-6.14 6.14.11-1"}

// TestApt_DetachedJobSurvivesCancel: the upgrade runs as a detached job on the node.
// Cancelling the Install ends only the waiting; the job goes on in the model, and the
// next Install joins it (no second upgrade) and reports what it installed.
func TestApt_DetachedJobSurvivesCancel(t *testing.T) {
	l, _, u := aptLab(t, 2*time.Second)
	ctx, cancel := context.WithCancel(drivers.WithRunID(context.Background(), "run-1"))
	errc := make(chan error, 1)
	go func() { _, err := u.Install(ctx, "pve2"); errc <- err }()
	waitUntil(t, "the upgrade job to start", 10*time.Second, func() bool { return l.c.Model.Snapshot().Stats.AptJobsStarted == 1 })
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Install: %v, want context.Canceled", err)
	}
	if s := l.c.Model.Snapshot(); len(s.Nodes[1].Pending) != 2 || s.Stats.Upgrades != 0 {
		t.Fatalf("the upgrade finished before its time (pending %v, upgrades %d): the test proves nothing", s.Nodes[1].Pending, s.Stats.Upgrades)
	}
	res, err := u.Install(drivers.WithRunID(context.Background(), "run-1"), "pve2")
	if err != nil {
		t.Fatal(err)
	}
	if got := names(res.Installed); !slices.Equal(got, wantInstalled) || len(res.Failed) != 0 || !res.RebootRequired {
		t.Errorf("joined Install: installed %v failed %v reboot %v; want %v, none, true", got, res.Failed, res.RebootRequired, wantInstalled)
	}
	if !strings.Contains(res.Output, "Setting up pve-manager (9.1.2)") {
		t.Errorf("output %q lacks the job's log", res.Output)
	}
	// A third Install of the same run reports the finished job again.
	res, err = u.Install(drivers.WithRunID(context.Background(), "run-1"), "pve2")
	if err != nil || !slices.Equal(names(res.Installed), wantInstalled) {
		t.Errorf("third Install: %v, %v", names(res.Installed), err)
	}
	s := l.c.Model.Snapshot()
	if s.Stats.AptJobsStarted != 1 || s.Stats.Upgrades != 1 || len(s.Nodes[1].Pending) != 0 {
		t.Errorf("jobs started %d, upgrades %d, pending %v; want 1, 1, none", s.Stats.AptJobsStarted, s.Stats.Upgrades, s.Nodes[1].Pending)
	}
}

// TestApt_RebootKillsJobAndDpkgIsRepaired: a reboot kills the upgrade mid-dpkg. The
// waiting Install fails, the job is "lost", and the next Install of the run starts it
// again: the upgrade script meets "dpkg was interrupted", runs dpkg --configure -a,
// then the upgrade.
func TestApt_RebootKillsJobAndDpkgIsRepaired(t *testing.T) {
	l, d, u := aptLab(t, 3*time.Second)
	ctx := drivers.WithRunID(context.Background(), "run-2")
	errc := make(chan error, 1)
	go func() { _, err := u.Install(ctx, "pve2"); errc <- err }()
	waitUntil(t, "the upgrade job to start", 10*time.Second, func() bool { return l.c.Model.Snapshot().Stats.AptJobsStarted == 1 })
	if err := d.RebootNode(context.Background(), "pve2"); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err == nil {
		t.Fatal("Install succeeded although the node went down under its upgrade")
	}
	waitUntil(t, "pve2 to be back", 15*time.Second, func() bool {
		s := l.c.Model.Snapshot()
		return s.Nodes[1].Online && s.Nodes[1].Reboots == 1
	})
	if s := l.c.Model.Snapshot(); s.Stats.AptJobsLost != 1 || len(s.Nodes[1].Pending) != 2 {
		t.Fatalf("after the reboot: jobs lost %d, pending %v; want 1 and both packages", s.Stats.AptJobsLost, s.Nodes[1].Pending)
	}
	// The sshd comes back a model tick after the node.
	var res drivers.InstallResult
	var err error
	waitUntil(t, "an Install after the reboot", 15*time.Second, func() bool {
		res, err = u.Install(ctx, "pve2")
		return err == nil || !strings.Contains(err.Error(), "dial")
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := names(res.Installed); !slices.Equal(got, wantInstalled) {
		t.Errorf("installed %v, want %v", got, wantInstalled)
	}
	if !strings.Contains(res.Output, "dpkg was interrupted") || !strings.Contains(res.Output, "dpkg --configure -a") {
		t.Errorf("output %q does not show the dpkg repair", res.Output)
	}
	s := l.c.Model.Snapshot()
	if s.Stats.AptJobsStarted != 2 || s.Stats.DpkgRepairs != 1 || s.Stats.Upgrades != 1 {
		t.Errorf("jobs started %d, dpkg repairs %d, upgrades %d; want 2, 1, 1", s.Stats.AptJobsStarted, s.Stats.DpkgRepairs, s.Stats.Upgrades)
	}
}

// TestRegistration_LendsNodeShell: the registry tells the config layer that proxmox
// lends its SSH, which lets `updater: {kind: apt}` go without an ssh section.
func TestRegistration_LendsNodeShell(t *testing.T) {
	info, ok := drivers.Lookup("proxmox")
	if !ok || !info.NodeShell {
		t.Fatalf("proxmox registered %v with NodeShell %v, want true", ok, info.NodeShell)
	}
}
