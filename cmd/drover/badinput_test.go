package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/cmd/internal/chaos"
	"github.com/droverhq/drover/runs"
)

// TestCLI_BadInput runs the real binary on wrong configs and command lines. Each
// must fail with the exit code and the exact message of its row (the field and the
// fix), and write nothing: no file in its folder (config, state file, default state
// folder under HOME) is created or changed, and the sim server the configs point at
// sees no change either. Messages are compared whole, with the case's folder, this
// process's pid and host and timestamps replaced by $DIR, $PID, $HOST and $TIME.
func TestCLI_BadInput(t *testing.T) {
	bin := droverBinary(t)
	root := moduleRoot(t)
	procs := &chaos.Procs{}
	t.Cleanup(procs.KillAll)
	ctx := context.Background()
	srv, err := chaos.StartSim(ctx, procs, bin, filepath.Join(root, "testdata", "clusters", "demo.yaml"), 1, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	simBefore := simFingerprint(t, srv)
	demo := filepath.Join(root, "testdata", "clusters", "demo.yaml")
	// remote is a valid config of a cluster served by srv; embedded one simulated
	// in-process; libvirt one of a libvirt cluster (never reached: its rows fail
	// before any connection).
	remote := "state: state.db\ncluster:\n  name: t\n  driver: sim\n  sim:\n    url: " + srv.URL + "\n"
	embedded := "state: state.db\ncluster:\n  driver: sim\n  sim:\n    cluster_file: " + demo + "\n"
	libvirt := func(host string) string {
		return "state: state.db\ncluster:\n  name: t\n  driver: libvirt\n  libvirt:\n    state_dir: lv\n    hosts: [" + host + "]\n"
	}
	cfg := []string{"--config", "drover.yaml"}
	args := func(a ...string) []string { return append(append([]string{}, cfg...), a...) }
	const (
		durationFix = "(write a duration with its unit, such as 90s, 15m or 1h)"
		knownKeys   = "known keys: cluster, clusters, log, policy, schedule, server, state, webhooks, windows"
		policyKeys  = "keys of policy: canary, cpu_overcommit, drain_scheduler, drain_timeout, failback, failback_hours, failback_tz, force, health_gate, local_storage, max_failed_nodes, max_migrations_per_node, max_parallel_migrations, max_parallel_nodes, memory_headroom_mib, migration_timeout, node_order, nodes, non_migratable, order_label, override_reserve, poll_interval, post_hook, pre_hook, reboot_evidence, reboot_timeout, require_all_nodes_online, reserve_nodes, retries_per_node, stop_after, warn_after"
		lockedBy    = "is in use by another drover process, pid $PID on $HOST (test) since $TIME; wait for it to finish, stop it with `drover runs stop`, or set `state` to another file (config key state)"
	)
	tests := []struct {
		name   string
		config string // drover.yaml ("" = none)
		// state prepares state.db: "", "empty" (a state file without runs),
		// "garbage", "folder" or "locked" (held by a live process: this test).
		state    string
		env      []string
		args     []string
		wantCode int
		want     string // the error drover prints, from its "drover: " on
	}{
		// The config file.
		{name: "config-file-missing", args: []string{"--config", "nope.yaml", "inventory"}, wantCode: 2,
			want: "drover: --config: file nope.yaml does not exist (give the path of a YAML config file, e.g. testdata/demo.yaml)"},
		{name: "config-file-from-env-missing", env: []string{"DROVER_CONFIG=nope.yaml"}, args: []string{"inventory"}, wantCode: 2,
			want: "drover: DROVER_CONFIG: file nope.yaml does not exist (give the path of a YAML config file, e.g. testdata/demo.yaml)"},
		{name: "config-is-a-folder", args: []string{"--config", ".", "inventory"}, wantCode: 2,
			want: "drover: --config: . is a folder (give the path of a YAML file)"},
		{name: "config-malformed-yaml", config: "cluster: [\n", args: args("inventory"), wantCode: 2,
			want: "drover: --config: cannot parse drover.yaml: yaml: line 1: did not find expected node content (fix the YAML syntax)"},
		{name: "config-duplicate-key", config: remote + "cluster: {}\n", args: args("inventory"), wantCode: 2,
			want: "drover: --config: cannot parse drover.yaml: yaml: unmarshal errors:\n  line 7: mapping key \"cluster\" already defined at line 2 (fix the YAML syntax)"},
		{name: "unknown-top-level-key", config: remote + "polcy: {failback: none}\n", args: args("inventory"), wantCode: 2,
			want: "drover: polcy: unknown key (remove it or check its spelling; top-level keys are state, cluster, policy, log)"},
		{name: "unknown-policy-key", config: remote + "policy: {max_paralel_migrations: 2}\n", args: args("apply", "--yes"), wantCode: 2,
			want: "drover: policy.max_paralel_migrations: unknown key (did you mean policy.max_parallel_migrations? remove it or check its spelling; " + policyKeys + ")"},
		// Drivers.
		{name: "unknown-driver", config: strings.Replace(remote, "driver: sim", "driver: hyperx", 1), args: args("inventory"), wantCode: 2,
			want: `drover: cluster.driver: unknown driver "hyperx" (use one of: hyperv, libvirt, proxmox, sim, vsphere)`},
		{name: "unknown-driver-section", config: remote + "  vmware: {host: x}\n", args: args("inventory"), wantCode: 2,
			want: "drover: cluster.vmware: unknown key (remove it; driver sections are: hyperv, libvirt, proxmox, sim, vsphere)"},
		{name: "sim-without-cluster-file-or-url", config: "cluster: {driver: sim}\n", args: args("inventory"), wantCode: 2,
			want: "drover: cluster.sim.cluster_file: is required when url is empty (give a cluster file, e.g. testdata/clusters/demo.yaml, or a url)"},
		{name: "sim-url-not-http", config: "cluster: {driver: sim, sim: {url: 'ftp://x'}}\n", args: args("inventory"), wantCode: 2,
			want: `drover: cluster.sim.url: not an http or https URL (give http://HOST:PORT of ` + "`drover sim serve`" + `, or leave it empty to simulate in-process)`},
		{name: "sim-cluster-file-missing", config: "cluster: {driver: sim, sim: {cluster_file: nope.yaml}}\n", args: args("inventory"), wantCode: 2,
			want: "drover: cluster.sim: open sim driver: start embedded sim: load cluster: open $DIR/nope.yaml: no such file or directory (fix the path in the cluster.sim section; relative paths resolve against the config file's folder)"},
		{name: "sim-negative-time-scale", config: embedded + "    time_scale: -1\n", args: args("inventory"), wantCode: 2,
			want: "drover: cluster.sim.time_scale: must be > 0 and <= 1e6, got -1 (give model seconds per wall second, e.g. 1 or 60)"},
		{name: "unknown-update-plugin", config: remote + "  updater: {kind: zypper}\n", args: args("inventory"), wantCode: 2,
			want: `drover: cluster.updater.kind: unknown update plug-in "zypper" (use one of: apt, command, esxcli, sim, windows_update)`},
		// A URI mistyped around its user info must not print the password in it.
		{name: "libvirt-uri-password-not-echoed", config: libvirt(`{name: h1, uri: "qemu+tcp://root:hunter22@h1:x/system"}`), args: args("inventory"), wantCode: 2,
			want: `drover: cluster.libvirt.hosts[0].uri: not a URI: what follows the host's colon is not a port number (user info does not belong in the URL) (use qemu+tcp://HOST/system or qemu+unix:///system?socket=/path/libvirt-sock)`},
		{name: "libvirt-peer-uri-unspecified-address", config: libvirt(`{name: h1, uri: "qemu+unix:///system", peer_uri: "qemu+tcp://0.0.0.0/system"}`), args: args("inventory"), wantCode: 2,
			want: "drover: cluster.libvirt.hosts[0].peer_uri: host 0.0.0.0 is the unspecified address: give the host's own address (use qemu+tcp://HOST/system, qemu+tls://HOST/system or qemu+ssh://USER@HOST/system as the other hosts' libvirtd reach this host)"},
		{name: "libvirt-uri-shortened-ipv4", config: libvirt(`{name: h1, uri: "qemu+tcp://10.1/system"}`), args: args("inventory"), wantCode: 2,
			want: `drover: cluster.libvirt.hosts[0].uri: host "10.1" is not a dotted IPv4 address a.b.c.d nor a host name: write the address in full (use qemu+tcp://HOST/system or qemu+unix:///system?socket=/path/libvirt-sock)`},
		// Limits and policy values.
		{name: "zero-max-parallel-migrations", config: remote + "policy: {max_parallel_migrations: 0}\n", args: args("apply", "--yes"), wantCode: 2,
			want: "drover: policy.max_parallel_migrations: must be at least 1, got 0 (set 1 or more, e.g. 4)"},
		{name: "negative-max-migrations-per-node-flag", config: remote, args: args("apply", "--yes", "--max-migrations-per-node", "-2"), wantCode: 2,
			want: "drover: policy.max_migrations_per_node: must be at least 1, got -2 (set 1 or more, e.g. 2)"},
		{name: "negative-retries", config: remote + "policy: {retries_per_node: -1}\n", args: args("apply", "--yes"), wantCode: 2,
			want: "drover: policy.retries_per_node: must not be negative, got -1 (set 0 or more, e.g. 3)"},
		{name: "negative-reserve-nodes-flag", config: remote, args: args("apply", "--yes", "--reserve-nodes", "-1"), wantCode: 2,
			want: "drover: policy.reserve_nodes: must not be negative, got -1 (set 0 or more)"},
		{name: "max-failed-nodes-below-minus-one", config: remote, args: args("apply", "--yes", "--max-failed-nodes", "-5"), wantCode: 2,
			want: "drover: policy.max_failed_nodes: got -5 (set 0 or more, or -1 for a third of the nodes)"},
		{name: "zero-reboot-timeout", config: remote + "policy: {reboot_timeout: 0s}\n", args: args("apply", "--yes"), wantCode: 2,
			want: "drover: policy.reboot_timeout: must be positive, got 0s (set a positive duration, e.g. 15m)"},
		{name: "duration-without-unit", config: remote + "policy: {reboot_timeout: 15}\n", args: args("apply", "--yes"), wantCode: 2,
			want: "drover: policy.reboot_timeout: 15 is a number without a unit: write a duration such as 90s, 15m or 1h " + durationFix},
		{name: "duration-flag-without-unit", config: remote, args: args("apply", "--yes", "--reboot-timeout", "5"), wantCode: 2,
			want: `drover: policy.reboot_timeout: time: missing unit in duration "5" ` + durationFix},
		{name: "duration-in-words", config: remote + "policy: {drain_timeout: 15 minutes}\n", args: args("apply", "--yes"), wantCode: 2,
			want: `drover: policy.drain_timeout: time: unknown unit " minutes" in duration "15 minutes" ` + durationFix},
		{name: "unknown-failback-mode", config: remote, args: args("apply", "--yes", "--failback", "sometimes"), wantCode: 2,
			want: `drover: policy.failback: unknown mode "sometimes" (use none, immediate or policy)`},
		{name: "unknown-non-migratable-mode", config: remote + "policy: {non_migratable: maybe}\n", args: args("apply", "--yes"), wantCode: 2,
			want: `drover: policy.non_migratable: unknown mode "maybe" (use fail, shutdown or skip)`},
		{name: "unknown-node-order", config: remote + "policy: {node_order: random}\n", args: args("apply", "--yes"), wantCode: 2,
			want: `drover: policy.node_order: unknown order "random" (use one of: fewest-vms, explicit, fault-domain, label, move-once)`},
		{name: "unknown-node", config: remote, args: args("apply", "--yes", "--nodes", "n1,zz"), wantCode: 2,
			want: `drover: policy.nodes[1]: unknown node "zz" (use a node name from ` + "`drover inventory`)"},
		{name: "node-listed-twice", config: remote, args: args("apply", "--yes", "--nodes", "n1,n1"), wantCode: 2,
			want: `drover: policy.nodes[1]: node "n1" listed twice (list each node once)`},
		{name: "unknown-log-level", config: remote + "log: {level: loud}\n", args: args("inventory"), wantCode: 2,
			want: `drover: log.level: unknown level "loud" (use debug, info, warn or error (empty: info, warn under a live display))`},
		{name: "cluster-name-with-space", config: strings.Replace(remote, "name: t", "name: 'a b'", 1), args: args("inventory"), wantCode: 2,
			want: `drover: cluster.name: invalid name "a b" (use letters, digits, '-' and '_')`},
		// Environment variables.
		{name: "env-not-a-number", config: remote, env: []string{"DROVER_POLICY_MAX_PARALLEL_MIGRATIONS=abc"}, args: args("apply", "--yes"), wantCode: 2,
			want: "drover: policy.max_parallel_migrations: cannot parse value as 'int': strconv.ParseInt: invalid syntax (set by environment variable DROVER_POLICY_MAX_PARALLEL_MIGRATIONS) (write a whole number, e.g. 4)"},
		{name: "env-negative-limit", config: remote, env: []string{"DROVER_POLICY_MAX_MIGRATIONS_PER_NODE=-1"}, args: args("apply", "--yes"), wantCode: 2,
			want: "drover: policy.max_migrations_per_node: must be at least 1, got -1 (set by environment variable DROVER_POLICY_MAX_MIGRATIONS_PER_NODE) (set 1 or more, e.g. 2)"},
		{name: "env-not-a-bool", config: remote, env: []string{"DROVER_POLICY_FORCE=maybe"}, args: args("apply", "--yes"), wantCode: 2,
			want: "drover: policy.force: cannot parse value as 'bool': strconv.ParseBool: invalid syntax (set by environment variable DROVER_POLICY_FORCE) (write true or false)"},
		{name: "env-bad-duration", config: remote, env: []string{"DROVER_POLICY_REBOOT_TIMEOUT=soon"}, args: args("apply", "--yes"), wantCode: 2,
			want: `drover: policy.reboot_timeout: time: invalid duration "soon" (set by environment variable DROVER_POLICY_REBOOT_TIMEOUT) ` + durationFix},
		{name: "env-only-driver-key", config: remote, env: []string{"DROVER_CLUSTER_SIM_TIMEOUT=10"}, args: args("inventory"), wantCode: 2,
			want: "drover: cluster.sim.timeout: time: missing unit in duration (set by environment variable DROVER_CLUSTER_SIM_TIMEOUT) " + durationFix},
		{name: "env-unknown-driver", config: remote, env: []string{"DROVER_CLUSTER_DRIVER=nope"}, args: args("inventory"), wantCode: 2,
			want: `drover: cluster.driver: unknown driver "nope" (set by environment variable DROVER_CLUSTER_DRIVER) (use one of: hyperv, libvirt, proxmox, sim, vsphere)`},
		{name: "flag-beats-env-in-the-message", config: remote, env: []string{"DROVER_POLICY_MAX_PARALLEL_MIGRATIONS=3"}, args: args("apply", "--yes", "--max-parallel-migrations", "0"), wantCode: 2,
			want: "drover: policy.max_parallel_migrations: must be at least 1, got 0 (set 1 or more, e.g. 4)"},
		// Command lines.
		{name: "unknown-command", config: remote, args: args("frobnicate"), wantCode: 2,
			want: `drover: unknown command "frobnicate" for "drover"`},
		{name: "unknown-flag", config: remote, args: args("apply", "--bogus"), wantCode: 2,
			want: "drover: unknown flag: --bogus; see 'drover apply --help'"},
		{name: "missing-run-id", config: remote, args: args("runs", "show"), wantCode: 2,
			want: "drover: drover runs show needs ID (got 0 arguments); see 'drover runs show --help'"},
		{name: "extra-argument", config: remote, args: args("inventory", "extra"), wantCode: 2,
			want: `drover: drover inventory takes no arguments, got ["extra"]; see 'drover inventory --help'`},
		{name: "set-without-value", config: remote, args: args("--set", "policy.failback", "inventory"), wantCode: 2,
			want: `drover: --set: "policy.failback" is not key=value (write e.g. --set policy.failback=immediate)`},
		{name: "set-unknown-key", config: remote, args: args("--set", "policy.nope=1", "inventory"), wantCode: 2,
			want: "drover: policy.nope: unknown key (remove it or check its spelling; " + policyKeys + ")"},
		{name: "apply-unconfirmed-off-a-terminal", config: remote, args: args("apply"), wantCode: 2,
			want: "drover: apply changes the cluster: confirm with --yes (or run on a terminal)"},
		{name: "sim-serve-without-cluster", args: []string{"sim", "serve"}, wantCode: 2,
			want: "drover: --cluster: required (the cluster file to simulate, e.g. testdata/clusters/demo.yaml)"},
		{name: "sim-serve-zero-time-scale", args: []string{"sim", "serve", "--cluster", demo, "--time-scale", "0"}, wantCode: 2,
			want: "drover: --time-scale: must be > 0, got 0 (e.g. 1 or 60)"},
		{name: "sim-serve-not-loopback", args: []string{"sim", "serve", "--cluster", demo, "--listen", "0.0.0.0:0"}, wantCode: 2,
			want: "drover: --listen: 0.0.0.0:0 is not a loopback address (the simulator has no authentication: use 127.0.0.1:PORT)"},
		{name: "server-url-not-http", args: []string{"--server", "ftp://x", "runs", "list"}, wantCode: 2,
			want: "drover: --server: give the daemon's URL, e.g. http://127.0.0.1:8086"},
		{name: "server-with-set", args: []string{"--server", "http://127.0.0.1:1", "--set", "policy.failback=none", "runs", "list"}, wantCode: 2,
			want: "drover: --set changes the local config, which --server does not read; configure the daemon instead"},
		// The daemon's config.
		{name: "serve-token-not-a-digest", config: remote + "server:\n  tokens: [{name: ci, role: operator, sha256: hunter22}]\n", args: args("serve"), wantCode: 2,
			want: `drover: server.tokens[0].sha256: not a 64-digit hex SHA-256 digest (give the hex SHA-256 digest of the token: printf %s "$TOKEN" | sha256sum)`},
		{name: "serve-on-the-network-without-tls", config: remote + "server:\n  listen: 0.0.0.0:8086\n", args: args("serve"), wantCode: 2,
			want: "drover: server.listen: 0.0.0.0:8086 is not a loopback address: the API would be reachable from the network without TLS and tokens (listen on 127.0.0.1 (the default), or set server.tls.cert, server.tls.key and server.tokens)"},
		{name: "webhook-unknown-event", config: remote + "webhooks:\n  - {url: 'https://hooks.example/T0/hunter22', events: [run_exploded]}\n", args: args("serve"), wantCode: 2,
			want: `drover: webhooks[0].events[0]: unknown event "run_exploded" (use run_started, run_resumed, run_finished, node_failed, approval_needed, waiting)`},
		{name: "webhook-url-not-http-not-echoed", config: remote + "webhooks:\n  - {url: 'ftp://user:hunter22@hooks.example/x'}\n", args: args("serve"), wantCode: 2,
			want: "drover: webhooks[0].url: not a valid http(s) URL (give an http:// or https:// URL)"},
		// The state file.
		{name: "state-is-a-folder", config: remote, state: "folder", args: args("apply", "--yes"), wantCode: 2,
			want: "drover: open state file $DIR/state.db: it is a folder; set `state` to a file path such as $DIR/state.db/drover.db (config key state)"},
		{name: "state-not-a-drover-file", config: remote, state: "garbage", args: args("apply", "--yes"), wantCode: 2,
			want: "drover: open state file $DIR/state.db: not a Drover state file or damaged (invalid database); move it away or set `state` to another file (config key state)"},
		{name: "state-folder-missing", config: strings.Replace(remote, "state.db", "nodir/state.db", 1), args: args("apply", "--yes"), wantCode: 2,
			want: "drover: open state file $DIR/nodir/state.db: folder $DIR/nodir does not exist: create it or set `state` to a path in an existing folder (config key state)"},
		{name: "state-locked-by-a-live-process", config: remote, state: "locked", args: args("apply", "--yes"), wantCode: 2,
			want: "drover: state file $DIR/state.db " + lockedBy},
		{name: "state-locked-read-command", config: remote, state: "locked", args: args("runs", "list"), wantCode: 2,
			want: "drover: state file $DIR/state.db " + lockedBy},
		{name: "resume-unknown-run", config: remote, state: "empty", args: args("runs", "resume", "20260101-000000-abcdef"), wantCode: 1,
			want: "drover: run 20260101-000000-abcdef of cluster t: not found; see `drover runs list`"},
		{name: "resume-without-state-file", config: remote, args: args("runs", "resume", "20260101"), wantCode: 1,
			want: "drover: run 20260101: not found: no state file yet (check --state or the config key state; `drover apply` starts a run)"},
	}
	if len(tests) < 30 {
		t.Fatalf("only %d bad inputs", len(tests))
	}
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.config != "" {
				writeFile(t, filepath.Join(dir, "drover.yaml"), tt.config)
			}
			statePath := filepath.Join(dir, "state.db")
			switch tt.state {
			case "empty":
				st, err := runs.Open(statePath, runs.Options{})
				if err != nil {
					t.Fatal(err)
				}
				st.Close()
			case "garbage":
				writeFile(t, statePath, "not a database\n")
			case "folder":
				if err := os.Mkdir(statePath, 0o700); err != nil {
					t.Fatal(err)
				}
			case "locked":
				st, err := runs.Open(statePath, runs.Options{Owner: runs.Self("test", time.Now())})
				if err != nil {
					t.Fatal(err)
				}
				defer st.Close()
			}
			before := snapshot(t, dir)
			code, stderr := runDrover(t, bin, dir, tt.env, tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, tt.wantCode, stderr)
			}
			if got := errorMessage(stderr, dir, host); got != tt.want {
				t.Errorf("message:\n got  %s\n want %s\nstderr:\n%s", got, tt.want, stderr)
			}
			if strings.Contains(stderr, "hunter22") {
				t.Errorf("stderr repeats the secret of the config:\n%s", stderr)
			}
			if after := snapshot(t, dir); after != before {
				t.Errorf("files changed:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
	if after := simFingerprint(t, srv); after != simBefore {
		t.Errorf("the sim changed:\nbefore %s\nafter  %s", simBefore, after)
	}
}

var timestamp = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)`)

// errorMessage is the error in stderr: from the first line starting "drover: " (what
// comes before, such as apply's plan, is not the error) to the end, with the case's
// folder, this process's pid and host, and timestamps replaced by $DIR, $PID, $HOST
// and $TIME.
func errorMessage(stderr, dir, host string) string {
	msg := stderr
	if !strings.HasPrefix(msg, "drover: ") {
		if i := strings.Index(msg, "\ndrover: "); i >= 0 {
			msg = msg[i+1:]
		}
	}
	msg = strings.ReplaceAll(strings.TrimSuffix(msg, "\n"), dir, "$DIR")
	msg = strings.ReplaceAll(msg, fmt.Sprintf("pid %d on %s (", os.Getpid(), host), "pid $PID on $HOST (")
	return timestamp.ReplaceAllString(msg, "$$TIME")
}

// runDrover runs the binary in dir with a clean environment (HOME in dir, so
// that a default state path would show up in the snapshot) plus env.
func runDrover(t *testing.T, bin, dir string, env []string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + filepath.Join(dir, "home"), "XDG_STATE_HOME=" + filepath.Join(dir, "xdg")}, env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatalf("run drover %v: %v", args, err)
		}
	}
	return cmd.ProcessState.ExitCode(), stderr.String()
}

// snapshot describes every file and folder under dir: name, mode and content hash.
func snapshot(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		info, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s %v", rel, info.Mode())
		if d.Type().IsRegular() {
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(data)
			fmt.Fprintf(&b, " %s", hex.EncodeToString(sum[:6]))
		}
		b.WriteString("; ")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// simFingerprint is what a command could have changed on the sim: node states,
// where the VMs are, and the logs of actions.
func simFingerprint(t *testing.T, s *chaos.Sim) string {
	t.Helper()
	ctx := context.Background()
	inv, err := s.Client.Inventory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st, err := s.Client.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(struct {
		Inv                                any
		Migrations, Events, Rejections, KV int
		Reboots                            map[string]int
	}{inv, len(st.Migrations), len(st.NodeEvents), len(st.Rejections), st.InstallFailures, st.Reboots})
	return string(b)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
