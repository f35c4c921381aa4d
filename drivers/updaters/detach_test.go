package updaters

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/drivers"
)

// fakeAptNode puts fake apt-get, apt and dpkg first in PATH: the commands the SSH
// test server runs (it is this machine) find them, like a node's shell would find
// the real ones. Their state lives in the returned folder:
//
//   - dist-upgrade writes upgrade.PID, prints "Unpacking", waits for the file "go",
//     prints "Setting up" and marks the updates installed; with "interrupted" present
//     it refuses the way apt does after a killed dpkg;
//   - apt list --upgradable lists four updates until they are installed;
//   - dpkg --configure -a removes "interrupted" (fails with "dpkg-broken") and logs
//     its call to dpkg-calls.
func fakeAptNode(t *testing.T) string {
	t.Helper()
	state := t.TempDir()
	bin := t.TempDir()
	s := ShellQuote(state)
	scripts := map[string]string{
		"apt-get": `case "$*" in
*dist-upgrade*)
	if [ -f ` + s + `/interrupted ]; then
		echo "E: dpkg was interrupted, you must manually run 'dpkg --configure -a' to correct the problem." >&2
		exit 100
	fi
	echo $$ >` + s + `/upgrade.$$
	echo "Unpacking libc6 ..."
	while [ ! -f ` + s + `/go ]; do sleep 0.05; done
	echo "Setting up libc6 ..."
	: >` + s + `/installed
	exit 0;;
*update*) exit 0;;
esac
exit 1`,
		"apt": `[ "$*" = "list --upgradable" ] || exit 1
echo "Listing... Done"
[ -f ` + s + `/installed ] && exit 0
printf '%s' ` + ShellQuote(strings.TrimPrefix(aptDebian, "WARNING: apt does not have a stable CLI interface. Use with caution in scripts.\n\nListing... Done\n")),
		"dpkg": `[ "$*" = "--configure -a" ] || exit 1
echo call >>` + s + `/dpkg-calls
[ -f ` + s + `/dpkg-broken ] && { echo "dpkg: error processing package libc6" >&2; exit 1; }
rm -f ` + s + `/interrupted
echo "Setting up libc6 (configured) ..."`,
	}
	for name, body := range scripts {
		if err := os.WriteFile(filepath.Join(bin, name), []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Cleanup(func() {
		// Never leave a fake upgrade behind, also when the test failed.
		_ = os.WriteFile(filepath.Join(state, "go"), nil, 0o600)
		for _, pid := range upgradePIDs(t, state) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	return state
}

// upgradePIDs lists the processes of the fake dist-upgrades started so far.
func upgradePIDs(t *testing.T, state string) []int {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(state, "upgrade.*"))
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, f := range files {
		pid, err := strconv.Atoi(strings.TrimPrefix(filepath.Ext(f), "."))
		if err != nil {
			t.Fatalf("bad upgrade file %s", f)
		}
		pids = append(pids, pid)
	}
	return pids
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

// waitFor polls cond until it holds or 20 s have passed.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func aptOverSSH(t *testing.T) (*AptUpdater, *testSSHServer) {
	t.Helper()
	srv := startSSHServer(t, sshServerOpts{})
	r, err := NewSSHRunner(SSHConfig{User: "drover", KeyFile: srv.keyPath, KnownHosts: knownHostsFile(t, srv.addr, srv.hostKeys[0].PublicKey())}, "")
	if err != nil {
		t.Fatal(err)
	}
	cfg := AptConfig{Refresh: true, Timeout: time.Minute, JobDir: filepath.Join(t.TempDir(), "jobs"), Target: Target{Hosts: map[string]string{"n1": srv.addr}}}
	return NewAptUpdater(cfg, r, nil), srv
}

var fakeUpdates = []cluster.Update{
	{Name: "base-files", Version: "12.4+deb12u13"}, {Name: "libc-bin", Version: "2.36-9+deb12u14"},
	{Name: "libc6", Version: "2.36-9+deb12u14"}, {Name: "linux-image-6.1.0-56-cloud-amd64", Version: "6.1.192-2"},
}

// Ctrl-C in the middle of apt-get: the SSH session dies, apt-get does not. The
// next Install of the run joins it and reports its result, and one after that
// reports the same without running apt-get again.
func TestAptUpdater_CancelNeverKillsTheUpgrade(t *testing.T) {
	state := fakeAptNode(t)
	u, srv := aptOverSSH(t)
	ctx := drivers.WithRunID(t.Context(), "run-1")

	first, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() {
		_, err := u.Install(first, "n1")
		errc <- err
	}()
	waitFor(t, "dist-upgrade runs", func() bool { return len(upgradePIDs(t, state)) == 1 })
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Install = %v, want context.Canceled", err)
	}
	// Every session of the cancelled Install has ended and its processes are
	// killed: whatever survives now survives Drover's shutdown.
	waitFor(t, "the cancelled sessions are gone", func() bool { return srv.running.Load() == 0 })
	pid := upgradePIDs(t, state)[0]
	if !alive(pid) {
		t.Fatalf("apt-get (pid %d) died with the cancelled Install", pid)
	}

	if err := os.WriteFile(filepath.Join(state, "go"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := u.Install(ctx, "n1")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(res.Installed, fakeUpdates) || len(res.Failed) != 0 {
		t.Errorf("joined Install reported %+v failed %+v, want the 4 updates installed", res.Installed, res.Failed)
	}
	if !strings.Contains(res.Output, "Unpacking libc6") || !strings.Contains(res.Output, "Setting up libc6") {
		t.Errorf("output %q, want the whole log of the one upgrade", res.Output)
	}
	waitFor(t, "apt-get has exited", func() bool { return !alive(pid) })

	again, err := u.Install(ctx, "n1")
	if err != nil || !reflect.DeepEqual(again.Installed, fakeUpdates) {
		t.Errorf("third Install = %+v, %v; want the same result again", again, err)
	}
	if n := len(upgradePIDs(t, state)); n != 1 {
		t.Errorf("dist-upgrade ran %d times, want once", n)
	}
}

// An upgrade killed in the middle (not by Drover: a crash, an OOM kill) leaves
// dpkg interrupted. The next Install finds the job dead, starts it again, and
// the job repairs dpkg before it upgrades.
func TestAptUpdater_RepairsInterruptedDpkg(t *testing.T) {
	state := fakeAptNode(t)
	u, _ := aptOverSSH(t)
	ctx := drivers.WithRunID(t.Context(), "run-2")

	first, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() {
		_, err := u.Install(first, "n1")
		errc <- err
	}()
	waitFor(t, "dist-upgrade runs", func() bool { return len(upgradePIDs(t, state)) == 1 })
	cancel()
	<-errc
	// Kill the job the hard way (its process group: the job shell and apt-get);
	// dpkg is left half done.
	pid := upgradePIDs(t, state)[0]
	pgid, err := syscall.Getpgid(pid)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(-pgid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the killed upgrade is gone", func() bool { return !alive(pid) })
	for _, f := range []string{"interrupted", "go"} {
		if err := os.WriteFile(filepath.Join(state, f), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	res, err := u.Install(ctx, "n1")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(res.Installed, fakeUpdates) {
		t.Errorf("Installed %+v, want the 4 updates", res.Installed)
	}
	if !strings.Contains(res.Output, "dpkg was interrupted: running env LC_ALL=C DEBIAN_FRONTEND=noninteractive dpkg --configure -a") {
		t.Errorf("output %q does not show the repair", res.Output)
	}
	calls, _ := os.ReadFile(filepath.Join(state, "dpkg-calls"))
	if got := strings.Count(string(calls), "call"); got != 1 {
		t.Errorf("dpkg --configure -a ran %d times, want once", got)
	}
	if n := len(upgradePIDs(t, state)); n != 2 {
		t.Errorf("dist-upgrade started %d times, want 2 (the killed one, the one after the repair)", n)
	}
}

// A repair that fails fails the install with dpkg's words, and the next Install
// tries again rather than joining the failure.
func TestAptUpdater_FailedRepairIsRetried(t *testing.T) {
	state := fakeAptNode(t)
	u, _ := aptOverSSH(t)
	ctx := drivers.WithRunID(t.Context(), "run-3")
	for _, f := range []string{"interrupted", "dpkg-broken", "go"} {
		if err := os.WriteFile(filepath.Join(state, f), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	_, err := u.Install(ctx, "n1")
	if err == nil || !strings.Contains(err.Error(), "exit status 1") || !strings.Contains(err.Error(), "dpkg: error processing package libc6") {
		t.Fatalf("Install with a broken dpkg = %v, want exit status 1 with dpkg's error", err)
	}
	if err := os.Remove(filepath.Join(state, "dpkg-broken")); err != nil {
		t.Fatal(err)
	}
	res, err := u.Install(ctx, "n1")
	if err != nil || !reflect.DeepEqual(res.Installed, fakeUpdates) {
		t.Fatalf("Install after dpkg was fixed = %+v, %v; want the 4 updates", res.Installed, err)
	}
	calls, _ := os.ReadFile(filepath.Join(state, "dpkg-calls"))
	if got := strings.Count(string(calls), "call"); got != 2 {
		t.Errorf("dpkg --configure -a ran %d times, want 2", got)
	}
}
