package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/drivers/vsphere/vcsimstrict"
)

// TestCLI_BadInputVSphere runs the real binary on wrong vsphere configs against the
// strict vCenter simulator: each fails with its exit code (2 before any connection, 1
// once vCenter answered) and a message naming the key and the fix, never the
// password, and writes no file.
func TestCLI_BadInputVSphere(t *testing.T) {
	bin := droverBinary(t)
	if code, stdout, _ := runDroverOut(t, bin, t.TempDir(), nil, "version", "--json"); code != 0 || !strings.Contains(stdout, `"vsphere"`) || !strings.Contains(stdout, `"esxcli"`) {
		t.Fatalf("version --json does not list vsphere and esxcli: exit %d, %s", code, stdout)
	}
	plain, err := vcsimstrict.Start(vcsimstrict.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(plain.Close)
	tlsSim, err := vcsimstrict.Start(vcsimstrict.Options{TLS: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tlsSim.Close)
	password := plain.Options().Password
	section := func(url, extra string) string {
		return "state: state.db\ncluster:\n  name: vc\n  driver: vsphere\n  vsphere:\n    url: " + url +
			"\n    username: drover@vsphere.local\n    password_env: DROVER_VSPHERE_PASSWORD\n    datacenter: DC0\n    cluster: DC0_C0\n" + extra +
			"  updater:\n    kind: esxcli\n    esxcli:\n      depot: https://depot.example.com/esxi8/index.xml\n      profile: ESXi-8.0U3c-24280767-standard\n"
	}
	good := func(extra string) string { return section(plain.URL.String(), extra) }
	withEnv := []string{"DROVER_VSPHERE_PASSWORD=" + password}
	tests := []struct {
		name     string
		config   string
		env      []string
		wantCode int
		want     []string // parts of the message after "drover: "
	}{
		{"no-url", strings.Replace(good(""), "url: "+plain.URL.String(), "url: ''", 1), withEnv, 2,
			[]string{"cluster.vsphere.url: required", "https://vcenter.example.com/sdk"}},
		{"url-with-password", strings.Replace(good(""), "url: http://", "url: http://admin:hunter22@", 1), withEnv, 2,
			[]string{"cluster.vsphere.url: user info in the URL", "use username and password_env"}},
		{"password-env-unset", good(""), nil, 1,
			[]string{"cluster.vsphere.password_env: environment variable DROVER_VSPHERE_PASSWORD is empty or not set", "export DROVER_VSPHERE_PASSWORD"}},
		{"wrong-password", good(""), []string{"DROVER_VSPHERE_PASSWORD=hunter22"}, 1,
			[]string{"cluster.vsphere.password_env: vCenter refused the login of drover@vsphere.local", "check username and the password in DROVER_VSPHERE_PASSWORD"}},
		{"unknown-datacenter", strings.Replace(good(""), "datacenter: DC0", "datacenter: DC9", 1), withEnv, 1,
			[]string{`cluster.vsphere.datacenter: no datacenter "DC9" in this vCenter`, "use one of: DC0"}},
		{"unknown-cluster", strings.Replace(good(""), "cluster: DC0_C0", "cluster: prod", 1), withEnv, 1,
			[]string{`cluster.vsphere.cluster: no cluster "prod" in datacenter DC0`, "use one of: DC0_C0"}},
		{"tls-untrusted", section(tlsSim.URL.String(), ""), withEnv, 1,
			[]string{"cluster.vsphere.url: TLS check failed", "set ca_file to vCenter's CA"}},
		{"tls-conflicting-keys", good("    insecure: true\n    thumbprint: AB:CD\n"), withEnv, 2,
			[]string{"cluster.vsphere.insecure: conflicting TLS settings", "cluster.vsphere.thumbprint: not a thumbprint"}},
		{"ca-file-missing", good("    ca_file: nope.pem\n"), withEnv, 1,
			[]string{"cluster.vsphere.ca_file:", "give a PEM file"}},
		{"esxcli-no-profile", strings.Replace(good(""), "      profile: ESXi-8.0U3c-24280767-standard\n", "", 1), withEnv, 2,
			[]string{"cluster.updater.esxcli.profile: required"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, "drover.yaml"), tt.config)
			before := snapshot(t, dir)
			code, stderr := runDrover(t, bin, dir, tt.env, "--config", "drover.yaml", "inventory")
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, tt.wantCode, stderr)
			}
			msg := errorMessage(stderr, dir, "")
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("message lacks %q:\n%s", w, msg)
				}
			}
			if strings.Contains(stderr, password) || strings.Contains(stderr, "hunter22") {
				t.Errorf("stderr shows a password:\n%s", stderr)
			}
			if after := snapshot(t, dir); after != before {
				t.Errorf("files changed:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

// TestCLI_VSpherePasswordStaysOut patches the strict simulator with a password of
// its own and looks for it everywhere drover writes: output, logs at debug level,
// the report and the state file.
func TestCLI_VSpherePasswordStaysOut(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a rolling run")
	}
	bin := droverBinary(t)
	password := "vc-" + randomHex(t, 12)
	sim, err := vcsimstrict.Start(vcsimstrict.Options{Password: password, RelocateDuration: 50 * time.Millisecond, RebootDuration: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	o := sim.Options()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "drover.yaml"), "state: state.db\ncluster:\n  name: vc\n  driver: vsphere\n  vsphere:\n    url: "+sim.URL.String()+
		"\n    username: "+o.Username+"\n    password_env: DROVER_VSPHERE_PASSWORD\n    datacenter: DC0\n    cluster: DC0_C0\n    poll_interval: 50ms\n"+
		"  updater:\n    kind: esxcli\n    esxcli:\n      depot: "+o.Depot+"\n      profile: "+o.Profile+"\npolicy:\n  poll_interval: 200ms\n  reboot_timeout: 1m\n")
	env := []string{"DROVER_VSPHERE_PASSWORD=" + password}
	var seen strings.Builder
	for _, args := range [][]string{
		{"--log-level", "debug", "inventory", "--json"},
		{"--log-level", "debug", "apply", "--yes", "--json"},
		{"runs", "list", "--json"},
	} {
		code, stdout, stderr := runDroverOut(t, bin, dir, env, append([]string{"--config", "drover.yaml"}, args...)...)
		if code != 0 {
			t.Fatalf("drover %v: exit %d\n%s", args, code, stderr)
		}
		seen.WriteString(stdout + stderr)
	}
	if !strings.Contains(seen.String(), `"state":"succeeded"`) {
		t.Fatalf("the run did not succeed:\n%s", seen.String())
	}
	state, err := os.ReadFile(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(seen.String(), password) || strings.Contains(string(state), password) {
		t.Fatal("the vCenter password shows in drover's output or state file")
	}
}
