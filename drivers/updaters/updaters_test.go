package updaters

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/drivers"
)

// Real outputs of `apt list --upgradable` (Debian 12 and Ubuntu 22.04).
const (
	aptDebian = `WARNING: apt does not have a stable CLI interface. Use with caution in scripts.

Listing... Done
base-files/stable 12.4+deb12u13 amd64 [upgradable from: 12.4+deb12u12]
libc-bin/stable-security 2.36-9+deb12u14 amd64 [upgradable from: 2.36-9+deb12u13]
libc6/stable-security 2.36-9+deb12u14 amd64 [upgradable from: 2.36-9+deb12u13]
linux-image-6.1.0-56-cloud-amd64/stable-security,stable-security 6.1.192-2 amd64 [upgradable from: 6.1.192-1]
`
	aptUbuntu = "Listing... Done\r\n" +
		"libssl3/jammy-updates,jammy-security 3.0.2-0ubuntu1.18 amd64 [upgradable from: 3.0.2-0ubuntu1.15]\r\n" +
		"openssl/jammy-updates,jammy-security 3.0.2-0ubuntu1.18 amd64 [upgradable from: 3.0.2-0ubuntu1.15]\r\n" +
		"N: There is 1 additional version. Please use the '-a' switch to see it\r\n"
	aptNothing = "WARNING: apt does not have a stable CLI interface. Use with caution in scripts.\n\nListing... Done\n"
)

func TestParseAptUpgradable(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []cluster.Update
		wantErr string
	}{
		{name: "debian-with-warning", in: aptDebian, want: []cluster.Update{
			{Name: "base-files", Version: "12.4+deb12u13"},
			{Name: "libc-bin", Version: "2.36-9+deb12u14"},
			{Name: "libc6", Version: "2.36-9+deb12u14"},
			{Name: "linux-image-6.1.0-56-cloud-amd64", Version: "6.1.192-2"},
		}},
		{name: "ubuntu-crlf-and-note", in: aptUbuntu, want: []cluster.Update{
			{Name: "libssl3", Version: "3.0.2-0ubuntu1.18"},
			{Name: "openssl", Version: "3.0.2-0ubuntu1.18"},
		}},
		{name: "nothing-upgradable", in: aptNothing},
		{name: "empty", in: ""},
		{name: "epoch-and-tilde", in: "vim/stable 2:9.0.1378-2~bpo11+1 amd64 [upgradable from: 2:9.0.1378-1]\n",
			want: []cluster.Update{{Name: "vim", Version: "2:9.0.1378-2~bpo11+1"}}},
		{name: "multiarch-name", in: "libc6:i386/stable 2.36-9 i386 [upgradable from: 2.36-8]\n",
			want: []cluster.Update{{Name: "libc6:i386", Version: "2.36-9"}}},
		{name: "localized-header-rejected", in: "Auflistung… Fertig\n", wantErr: "line 1"},
		{name: "error-text-rejected", in: "E: Could not open lock file /var/lib/dpkg/lock-frontend\n", wantErr: "line 1"},
		{name: "no-suite", in: "vim 9.0 amd64\n", wantErr: "no /suite"},
		{name: "bad-name", in: "Vim/stable 9.0 amd64\n", wantErr: "invalid package name"},
		{name: "bad-version", in: "vim/stable ;rm amd64\n", wantErr: "invalid version"},
		{name: "bad-trailer", in: "vim/stable 9.0 amd64 surprise\n", wantErr: "unexpected trailer"},
		{name: "too-short", in: "vim/stable 9.0\n", wantErr: "want"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseAptUpgradable(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func FuzzParseAptUpgradable(f *testing.F) {
	for _, s := range []string{aptDebian, aptUbuntu, aptNothing, "", "a/b 1 c\n", "x/y 1.0 amd64 [upgradable from: 0.9]", "N: note\nLising"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		ups, err := ParseAptUpgradable(in)
		if err != nil {
			return
		}
		for _, u := range ups {
			// Whatever was accepted is a well-formed package: safe to print in reports
			// and to use as an argument.
			if !validPackageName(u.Name) || !validVersion(u.Version) {
				t.Fatalf("accepted malformed update %+v from %q", u, in)
			}
			if strings.ContainsAny(u.Name+u.Version, " \t\r\n/;$`'\"") {
				t.Fatalf("accepted update with unsafe characters %+v", u)
			}
		}
	})
}

// fakeRunner answers commands from a script: the first rule whose key is contained in
// the joined argv wins. It records every call.
type fakeRunner struct {
	mu    sync.Mutex
	rules []fakeRule
	calls []string
}

type fakeRule struct {
	match string
	out   Output
	err   error
	// then, when set, replaces out for every later match (state changes, e.g. after
	// an upgrade nothing is upgradable any more).
	then *Output
	hits int
}

func (f *fakeRunner) Run(_ context.Context, target string, argv []string) (Output, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	line := strings.Join(argv, " ")
	// The scripts are long and tested over SSH; the calls name them.
	line = strings.ReplaceAll(strings.ReplaceAll(line, jobScript, "JOB"), aptUpgradeScript, "UPGRADE")
	f.calls = append(f.calls, target+": "+line)
	for i := range f.rules {
		r := &f.rules[i]
		if strings.Contains(line, r.match) {
			r.hits++
			if r.hits > 1 && r.then != nil {
				return *r.then, nil
			}
			return r.out, r.err
		}
	}
	return Output{}, fmt.Errorf("fake runner: unexpected command %q", line)
}

func TestAptUpdater_Install(t *testing.T) {
	noReboot := fmt.Errorf("run test: %w", &ExitError{Code: 1})
	tests := []struct {
		name        string
		cfg         AptConfig
		rules       []fakeRule
		want        drivers.InstallResult
		wantCalls   []string
		wantErrPart string
	}{
		{
			name: "upgrade-all-reboot-needed",
			cfg:  AptConfig{Refresh: true, Target: Target{Hosts: map[string]string{"n1": "10.0.0.1"}}},
			rules: []fakeRule{
				{match: "drover-job status", out: Output{Stdout: "none\n"}},
				{match: "drover-job start", out: Output{Stdout: "started\n"}},
				{match: "drover-job wait", out: Output{Stdout: "done 0\nSetting up libc6 ...\n"}},
				{match: "apt-get update"},
				{match: "apt list", out: Output{Stdout: aptDebian}, then: &Output{Stdout: aptNothing}},
				{match: "reboot-required"},
			},
			want: drivers.InstallResult{
				Installed: []cluster.Update{
					{Name: "base-files", Version: "12.4+deb12u13"}, {Name: "libc-bin", Version: "2.36-9+deb12u14"},
					{Name: "libc6", Version: "2.36-9+deb12u14"}, {Name: "linux-image-6.1.0-56-cloud-amd64", Version: "6.1.192-2"},
				},
				RebootRequired: true, Output: "Setting up libc6 ...",
			},
			wantCalls: []string{
				"10.0.0.1: /bin/sh -c JOB drover-job status /var/lib/drover/jobs/apt ",
				"10.0.0.1: env LC_ALL=C apt-get update -qq",
				"10.0.0.1: env LC_ALL=C apt list --upgradable",
				"10.0.0.1: /bin/sh -c JOB drover-job start /var/lib/drover/jobs/apt  " +
					"base-files 12.4+deb12u13\nlibc-bin 2.36-9+deb12u14\nlibc6 2.36-9+deb12u14\nlinux-image-6.1.0-56-cloud-amd64 6.1.192-2\n " +
					"/bin/sh -c UPGRADE drover-apt-upgrade env LC_ALL=C DEBIAN_FRONTEND=noninteractive apt-get -y -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold dist-upgrade",
				"10.0.0.1: /bin/sh -c JOB drover-job wait /var/lib/drover/jobs/apt ",
				"10.0.0.1: env LC_ALL=C apt list --upgradable",
				"10.0.0.1: test -f /var/run/reboot-required",
			},
		},
		{
			name: "held-back-reported-failed-sudo",
			cfg:  AptConfig{Sudo: true},
			rules: []fakeRule{
				{match: "drover-job status", out: Output{Stdout: "none\n"}},
				{match: "drover-job start", out: Output{Stdout: "started\n"}},
				{match: "drover-job wait", out: Output{Stdout: "done 0\n"}},
				{match: "apt list", out: Output{Stdout: aptUbuntu}, then: &Output{Stdout: "openssl/jammy-updates 3.0.2-0ubuntu1.18 amd64 [upgradable from: 3.0.2-0ubuntu1.15]\n"}},
				{match: "reboot-required", err: noReboot},
			},
			want: drivers.InstallResult{
				Installed: []cluster.Update{{Name: "libssl3", Version: "3.0.2-0ubuntu1.18"}},
				Failed:    []drivers.UpdateFailure{{Update: cluster.Update{Name: "openssl", Version: "3.0.2-0ubuntu1.18"}, Error: "still upgradable after dist-upgrade (held back or failed)"}},
			},
			wantCalls: []string{
				"n1: sudo -n /bin/sh -c JOB drover-job status /var/lib/drover/jobs/apt ",
				"n1: sudo -n env LC_ALL=C apt list --upgradable",
				"n1: sudo -n /bin/sh -c JOB drover-job start /var/lib/drover/jobs/apt  libssl3 3.0.2-0ubuntu1.18\nopenssl 3.0.2-0ubuntu1.18\n " +
					"/bin/sh -c UPGRADE drover-apt-upgrade env LC_ALL=C DEBIAN_FRONTEND=noninteractive apt-get -y -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold dist-upgrade",
				"n1: sudo -n /bin/sh -c JOB drover-job wait /var/lib/drover/jobs/apt ",
				"n1: sudo -n env LC_ALL=C apt list --upgradable",
				"n1: sudo -n test -f /var/run/reboot-required",
			},
		},
		{
			name: "nothing-pending-no-upgrade",
			rules: []fakeRule{
				{match: "drover-job status", out: Output{Stdout: "none\n"}},
				{match: "apt list", out: Output{Stdout: aptNothing}}, {match: "reboot-required", err: noReboot},
			},
			wantCalls: []string{"n1: /bin/sh -c JOB drover-job status /var/lib/drover/jobs/apt ", "n1: env LC_ALL=C apt list --upgradable", "n1: test -f /var/run/reboot-required"},
		},
		{
			name: "upgrade-fails",
			rules: []fakeRule{
				{match: "drover-job status", out: Output{Stdout: "none\n"}},
				{match: "drover-job start", out: Output{Stdout: "started\n"}},
				{match: "drover-job wait", out: Output{Stdout: "done 100\nE: dpkg was interrupted\n"}},
				{match: "apt list", out: Output{Stdout: aptDebian}},
			},
			wantErrPart: "exit status 100: E: dpkg was interrupted",
		},
		{
			name: "joins-the-upgrade-of-this-run",
			rules: []fakeRule{
				{match: "drover-job status", out: Output{Stdout: "running\nlibc6 2.36-9+deb12u14\n"}},
				{match: "drover-job wait", out: Output{Stdout: "done 0\nSetting up libc6 ...\n"}},
				{match: "apt list", out: Output{Stdout: aptNothing}}, {match: "reboot-required"},
			},
			want: drivers.InstallResult{Installed: []cluster.Update{{Name: "libc6", Version: "2.36-9+deb12u14"}}, RebootRequired: true, Output: "Setting up libc6 ..."},
			wantCalls: []string{
				"n1: /bin/sh -c JOB drover-job status /var/lib/drover/jobs/apt ",
				"n1: /bin/sh -c JOB drover-job wait /var/lib/drover/jobs/apt ",
				"n1: env LC_ALL=C apt list --upgradable", "n1: test -f /var/run/reboot-required",
			},
		},
		{
			name:        "node-answers-garbage",
			rules:       []fakeRule{{match: "drover-job status", out: Output{Stdout: "done maybe\n"}}},
			wantErrPart: "job state",
		},
		{
			name: "reboot-check-broken",
			rules: []fakeRule{
				{match: "drover-job status", out: Output{Stdout: "none\n"}},
				{match: "apt list", out: Output{Stdout: aptNothing}}, {match: "reboot-required", err: &ExitError{Code: 2}},
			},
			wantErrPart: "reboot-required",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fr := &fakeRunner{rules: tt.rules}
			tt.cfg.Timeout, tt.cfg.JobDir = NewAptConfig().Timeout, DefaultJobDir
			u := NewAptUpdater(tt.cfg, fr, nil)
			got, err := u.Install(t.Context(), "n1")
			if tt.wantErrPart != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErrPart) || !strings.Contains(err.Error(), "node n1") {
					t.Fatalf("err = %v, want one naming node n1 and %q", err, tt.wantErrPart)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("result = %+v\nwant     %+v", got, tt.want)
			}
			if !reflect.DeepEqual(fr.calls, tt.wantCalls) {
				t.Errorf("calls = %q\nwant    %q", fr.calls, tt.wantCalls)
			}
		})
	}
}

func TestCommandUpdater_Install(t *testing.T) {
	dir := t.TempDir()
	cfg := CommandConfig{
		Scan:           `printf 'kernel 6.1.2\nopenssl\n'`,
		Install:        `echo "patched $DROVER_NODE" > ` + ShellQuote(dir) + `/marker-"$DROVER_NODE"; echo installed`,
		RebootRequired: `test -f ` + ShellQuote(dir) + `/marker-"$DROVER_NODE"`,
		Timeout:        NewCommandConfig().Timeout,
	}
	u := NewCommandUpdater(cfg, LocalRunner{}, nil)

	ups, err := u.Scan(t.Context(), "hostA")
	if err != nil {
		t.Fatal(err)
	}
	wantUps := []cluster.Update{{Name: "kernel", Version: "6.1.2"}, {Name: "openssl"}}
	if !reflect.DeepEqual(ups, wantUps) {
		t.Fatalf("Scan = %+v, want %+v", ups, wantUps)
	}
	if req, err := u.rebootRequired(t.Context(), "hostA"); err != nil || req {
		t.Fatalf("rebootRequired before install = %v, %v; want false, nil", req, err)
	}
	res, err := u.Install(t.Context(), "hostA")
	if err != nil {
		t.Fatal(err)
	}
	if !res.RebootRequired || !reflect.DeepEqual(res.Installed, wantUps) || res.Output != "installed" {
		t.Fatalf("Install = %+v", res)
	}
	marker, err := os.ReadFile(filepath.Join(dir, "marker-hostA"))
	if err != nil || string(marker) != "patched hostA\n" {
		t.Fatalf("marker = %q, %v; want the install command to have run for hostA", marker, err)
	}

	failing := NewCommandUpdater(CommandConfig{Install: "echo disk full >&2; exit 7", Timeout: cfg.Timeout}, LocalRunner{}, nil)
	if _, err := failing.Install(t.Context(), "hostB"); err == nil || !strings.Contains(err.Error(), "exit status 7: disk full") {
		t.Fatalf("failing install err = %v", err)
	}
}

func TestCommandUpdater_OverSSH(t *testing.T) {
	srv := startSSHServer(t, sshServerOpts{})
	dir := t.TempDir()
	raw := map[string]any{
		"scan":            "echo pkg-a 1.0",
		"install":         "touch " + ShellQuote(dir) + "/ssh-marker-$DROVER_NODE",
		"reboot_required": "exit 1",
		"hosts":           map[string]any{"node-1": srv.addr},
		"ssh": map[string]any{
			"user":        "drover",
			"key_file":    filepath.Base(srv.keyPath),
			"known_hosts": knownHostsFile(t, srv.addr, srv.hostKeys[0].PublicKey()),
		},
	}
	info, ok := drivers.LookupUpdater("command")
	if !ok {
		t.Fatal("updater command not registered")
	}
	cfg := info.NewConfig()
	if err := drivers.Decode(raw, cfg); err != nil {
		t.Fatal(err)
	}
	u, err := cfg.Open(t.Context(), drivers.Env{BaseDir: filepath.Dir(srv.keyPath)})
	if err != nil {
		t.Fatal(err)
	}
	res, err := u.Install(t.Context(), "node-1")
	if err != nil {
		t.Fatal(err)
	}
	if res.RebootRequired || len(res.Installed) != 1 || res.Installed[0].Name != "pkg-a" {
		t.Fatalf("Install = %+v", res)
	}
	if _, err := os.Stat(filepath.Join(dir, "ssh-marker-node-1")); err != nil {
		t.Fatalf("install did not run over SSH: %v", err)
	}
}

func TestCommandConfig_Validate(t *testing.T) {
	tests := []struct {
		name      string
		raw       map[string]any
		wantField []string
	}{
		{name: "local-ok", raw: map[string]any{"install": "true"}},
		{name: "ssh-ok", raw: map[string]any{"install": "true", "ssh": map[string]any{"user": "root", "key_file": "k"}, "hosts": map[string]any{"n1": "10.0.0.1"}}},
		{name: "no-install", raw: map[string]any{"scan": "true"}, wantField: []string{"install"}},
		{name: "bad-timeout", raw: map[string]any{"install": "true", "timeout": "-1s"}, wantField: []string{"timeout"}},
		{name: "hosts-without-ssh", raw: map[string]any{"install": "true", "hosts": map[string]any{"n1": "x"}}, wantField: []string{"hosts"}},
		{name: "ssh-errors-prefixed", raw: map[string]any{"install": "true", "ssh": map[string]any{"key_file": "k"}}, wantField: []string{"ssh.user"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewCommandConfig()
			if err := drivers.Decode(tt.raw, c); err != nil {
				t.Fatalf("Decode: %v", err)
			}
			assertFields(t, c.Validate(), tt.wantField)
		})
	}
}

func TestAptConfig_Validate(t *testing.T) {
	tests := []struct {
		name      string
		raw       map[string]any
		wantField []string
	}{
		{name: "ok", raw: map[string]any{"ssh": map[string]any{"user": "root", "password_env": "PW"}, "sudo": true}},
		{name: "no-ssh", raw: map[string]any{}, wantField: []string{"ssh"}},
		{name: "job-dir-relative", raw: map[string]any{"ssh": map[string]any{"user": "root", "password_env": "PW"}, "job_dir": "jobs"}, wantField: []string{"job_dir"}},
		{name: "job-dir-own", raw: map[string]any{"ssh": map[string]any{"user": "root", "password_env": "PW"}, "job_dir": "/srv/drover"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewAptConfig()
			if err := drivers.Decode(tt.raw, c); err != nil {
				t.Fatalf("Decode: %v", err)
			}
			assertFields(t, c.Validate(), tt.wantField)
		})
	}
}

func TestDecode_UnknownNestedKey(t *testing.T) {
	c := NewCommandConfig()
	err := drivers.Decode(map[string]any{"install": "true", "ssh": map[string]any{"usr": "root"}}, c)
	if err == nil || !strings.Contains(err.Error(), "ssh.usr") {
		t.Fatalf("Decode = %v, want an error naming ssh.usr", err)
	}
}
