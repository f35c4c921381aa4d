package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/cmd/internal/chaos"
	"github.com/droverhq/drover/runs/etcdtest"
)

// TestCLI_BadInputHA: `drover serve` with a bad ha section or a bad etcd refuses to
// start with the key to fix (exit 2), or says etcd does not answer (exit 1); the
// etcd password is never printed.
func TestCLI_BadInputHA(t *testing.T) {
	bin := droverBinary(t)
	root := moduleRoot(t)
	procs := &chaos.Procs{}
	t.Cleanup(procs.KillAll)
	etcd := etcdtest.Start(t, 1)
	cli := etcd.Client()
	ctx := context.Background()
	// Authentication on, with a root user whose password the rows get wrong.
	const rootPassword = "etcd-root-pw-5d1f"
	if _, err := cli.UserAdd(ctx, "root", rootPassword); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.UserGrantRole(ctx, "root", "root"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.AuthEnable(ctx); err != nil {
		t.Fatal(err)
	}
	ep := etcd.Endpoints()[0]
	// A loopback port nobody listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	l.Close()
	demo := filepath.Join(root, "testdata", "clusters", "demo.yaml")
	base := "cluster:\n  driver: sim\n  sim: {cluster_file: " + demo + "}\nserver: {listen: 127.0.0.1:0}\n"
	const secret = "hunter22-etcd"
	tests := []struct {
		name     string
		ha       string
		env      []string
		wantCode int
		want     string
	}{
		{name: "no-endpoints", ha: "ha: {etcd: {prefix: /d}, replica: a}", wantCode: 2,
			want: "drover: ha.etcd.endpoints: not set (list the client URLs of your etcd members, e.g. [https://10.0.0.1:2379, https://10.0.0.2:2379, https://10.0.0.3:2379])"},
		{name: "lease-ttl-too-short", ha: "ha: {etcd: {endpoints: [" + ep + "]}, lease_ttl: 1s, replica: a}", wantCode: 2,
			want: "drover: ha.lease_ttl: 1s is too short to be safe: a pause of the leader's process or host would depose it for nothing (use at least 3s (default 10s))"},
		{name: "password-env-unset", ha: "ha: {etcd: {endpoints: [" + ep + "], username: root, password_env: DROVER_TEST_ETCD_PW}, replica: a}", wantCode: 2,
			want: "drover: ha.etcd.password_env: environment variable DROVER_TEST_ETCD_PW is not set or empty (export the password in that variable before starting drover)"},
		{name: "password-in-url", ha: "ha: {etcd: {endpoints: [\"http://root:" + secret + "@127.0.0.1:2379\"]}, replica: a}", wantCode: 2,
			want: "drover: ha.etcd.endpoints[0]: carries user information (remove the user from the URL; set ha.etcd.username and ha.etcd.password_env)"},
		{name: "ca-file-not-pem", ha: "ha: {etcd: {endpoints: [\"https://127.0.0.1:2379\"], tls: {ca_file: drover.yaml}}, replica: a}", wantCode: 2,
			want: "drover: ha.etcd.tls.ca_file: $DIR/drover.yaml holds no PEM certificate; give the CA that signed the etcd members' certificates"},
		{name: "http-endpoint-with-tls", ha: "ha: {etcd: {endpoints: [" + ep + "], tls: {ca_file: drover.yaml}}, replica: a}", wantCode: 2,
			want: "drover: ha.etcd.endpoints[0]: is http while ha.etcd.tls is set (use https:// with ha.etcd.tls, or remove ha.etcd.tls)"},
		{name: "bad-replica-name", ha: "ha: {etcd: {endpoints: [" + ep + "]}, replica: \"a/b\"}", wantCode: 2,
			want: "drover: ha.replica: \"a/b\" is not a usable replica name (use letters, digits, '.', '_' and '-' (at most 63), e.g. drover-a)"},
		{name: "wrong-password", ha: "ha: {etcd: {endpoints: [" + ep + "], username: root, password_env: DROVER_TEST_ETCD_PW}, replica: a}",
			env: []string{"DROVER_TEST_ETCD_PW=" + secret}, wantCode: 2,
			want: "drover: ha.etcd.username / ha.etcd.password_env: etcd at " + ep + " refused user \"root\" with the password in $DROVER_TEST_ETCD_PW; set the right password in that variable"},
		{name: "etcd-unreachable", ha: "ha: {etcd: {endpoints: [" + dead + "]}, replica: a}", wantCode: 1,
			want: "drover: ha.etcd.endpoints: etcd at " + dead + " does not answer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, "drover.yaml"), base+tt.ha+"\n")
			start := time.Now()
			code, stderr := runDrover(t, bin, dir, tt.env, "--config", "drover.yaml", "serve")
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, tt.wantCode, stderr)
			}
			got := errorMessage(stderr, dir, "")
			if !strings.HasPrefix(got, tt.want) {
				t.Errorf("message:\n got  %s\n want %s...\nstderr:\n%s", got, tt.want, stderr)
			}
			for _, s := range []string{secret, rootPassword} {
				if strings.Contains(stderr, s) {
					t.Errorf("stderr shows the etcd password:\n%s", stderr)
				}
			}
			if d := time.Since(start); d > 30*time.Second {
				t.Errorf("took %s to refuse", d)
			}
		})
	}
	t.Run("two-replicas-same-name", func(t *testing.T) {
		dir := t.TempDir()
		conf := base + "ha: {etcd: {endpoints: [" + ep + "], username: root, password_env: DROVER_TEST_ETCD_PW}, lease_ttl: 3s, replica: dup}\n"
		writeFile(t, filepath.Join(dir, "drover.yaml"), conf)
		t.Setenv("DROVER_TEST_ETCD_PW", rootPassword)
		first := startDaemon(t, procs, bin, filepath.Join(dir, "drover.yaml"), filepath.Join(dir, "first.log"))
		defer first.proc.Kill()
		code, stderr := runDrover(t, bin, dir, []string{"DROVER_TEST_ETCD_PW=" + rootPassword}, "--config", "drover.yaml", "serve")
		want := "drover: ha.replica: replica dup: another live replica uses this name (dup); give every replica its own name"
		if got := errorMessage(stderr, dir, ""); code != 2 || got != want {
			t.Errorf("second replica named dup: exit %d, message\n got  %s\n want %s", code, got, want)
		}
		if strings.Contains(stderr, rootPassword) || strings.Contains(readFile(filepath.Join(dir, "first.log")), rootPassword) {
			t.Error("the etcd password shows in stderr or the log")
		}
	})
	if _, err := os.Stat(filepath.Join(root, "drover.yaml")); err == nil {
		t.Fatal("a row wrote into the repository")
	}
}
