package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/droverhq/drover/drivers"
	_ "github.com/droverhq/drover/drivers/sim"
	"github.com/droverhq/drover/orchestrator"
)

func writeFile(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const baseFile = `
state: state.db
cluster:
  name: file-cluster
  driver: sim
  sim:
    cluster_file: clusters/c.yaml
    time_scale: 10
policy:
  max_parallel_migrations: 3
  reboot_timeout: 20m
`

func TestLoad_Precedence(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, dir, "drover.yaml", baseFile)
	tests := []struct {
		name  string
		env   map[string]string
		flags map[string]string // flag name -> value, bound to key of the same name with _ for -
		check func(t *testing.T, c *Config)
	}{
		{name: "defaults-and-file", check: func(t *testing.T, c *Config) {
			if c.Policy.MaxParallelMigrations != 3 || c.Policy.RebootTimeout.D() != 20*time.Minute {
				t.Errorf("file values not read: %+v", c.Policy)
			}
			if c.Policy.MaxMigrationsPerNode != 8 || c.Policy.RetriesPerNode != 3 || c.Policy.DrainScheduler != "adaptive" || c.Policy.MaxParallelNodes != 1 {
				t.Errorf("defaults not applied: %+v", c.Policy)
			}
		}},
		{name: "env-beats-file", env: map[string]string{"DROVER_POLICY_MAX_PARALLEL_MIGRATIONS": "7"}, check: func(t *testing.T, c *Config) {
			if c.Policy.MaxParallelMigrations != 7 {
				t.Errorf("max_parallel_migrations = %d, want 7 from the environment", c.Policy.MaxParallelMigrations)
			}
		}},
		{name: "env-only-key", env: map[string]string{"DROVER_POLICY_RETRIES_PER_NODE": "5", "DROVER_POLICY_FAILBACK": "immediate"}, check: func(t *testing.T, c *Config) {
			if c.Policy.RetriesPerNode != 5 || c.Policy.Failback != "immediate" {
				t.Errorf("env-only keys ignored: retries %d failback %q", c.Policy.RetriesPerNode, c.Policy.Failback)
			}
		}},
		{name: "flag-beats-env", env: map[string]string{"DROVER_POLICY_MAX_PARALLEL_MIGRATIONS": "7"}, flags: map[string]string{"policy.max_parallel_migrations": "9"}, check: func(t *testing.T, c *Config) {
			if c.Policy.MaxParallelMigrations != 9 {
				t.Errorf("max_parallel_migrations = %d, want 9 from the flag", c.Policy.MaxParallelMigrations)
			}
		}},
		{name: "nested-driver-key-from-env", env: map[string]string{"DROVER_CLUSTER_SIM_TIME_SCALE": "99"}, check: func(t *testing.T, c *Config) {
			sim := c.Cluster.Sections["sim"].(map[string]any)
			if sim["time_scale"] != "99" && sim["time_scale"] != 99.0 {
				t.Errorf("cluster.sim.time_scale = %v, want 99 from the environment", sim["time_scale"])
			}
		}},
		{name: "relative-paths-from-the-file-resolve-against-its-folder", check: func(t *testing.T, c *Config) {
			if c.State != filepath.Join(dir, "state.db") {
				t.Errorf("state = %s, want it next to the config file", c.State)
			}
			sim := c.Cluster.Sections["sim"].(map[string]any)
			if sim["cluster_file"] != "clusters/c.yaml" || c.BaseDir != dir {
				t.Errorf("cluster_file %v with base %s: the driver resolves it against BaseDir", sim["cluster_file"], c.BaseDir)
			}
		}},
		{name: "relative-paths-from-env-stay-relative-to-the-working-directory", env: map[string]string{"DROVER_STATE": "other.db"}, check: func(t *testing.T, c *Config) {
			if c.State != "other.db" {
				t.Errorf("state = %s, want other.db as given", c.State)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
			var bindings []Binding
			for key, val := range tt.flags {
				fs.String(key, "", "")
				if err := fs.Set(key, val); err != nil {
					t.Fatal(err)
				}
				bindings = append(bindings, Binding{Key: key, Flag: fs.Lookup(key)})
			}
			c, err := Load(LoadOptions{File: file, Flags: bindings})
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			tt.check(t, c)
		})
	}
}

func TestLoad_EmptySectionDoesNotHideEnv(t *testing.T) {
	file := writeFile(t, t.TempDir(), "c.yaml", "cluster:\n  name: x\npolicy:\n")
	t.Setenv("DROVER_POLICY_RETRIES_PER_NODE", "6")
	c, err := Load(LoadOptions{File: file})
	if err != nil {
		t.Fatal(err)
	}
	if c.Policy.RetriesPerNode != 6 || c.Policy.MaxMigrationsPerNode != orchestrator.DefaultPolicy().MaxMigrationsPerNode {
		t.Errorf("an empty policy: section hid env and defaults: %+v", c.Policy)
	}
}

func TestLoad_UnchangedFlagDoesNotOverride(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, dir, "drover.yaml", baseFile)
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	fs.Int("max", 1, "")
	c, err := Load(LoadOptions{File: file, Flags: []Binding{{Key: "policy.max_parallel_migrations", Flag: fs.Lookup("max")}}})
	if err != nil {
		t.Fatal(err)
	}
	if c.Policy.MaxParallelMigrations != 3 {
		t.Errorf("an unset flag's default overrode the file: %d", c.Policy.MaxParallelMigrations)
	}
}

func TestLoad_Errors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		body    string
		env     map[string]string
		sets    []string
		file    string
		wantErr []string
	}{
		{name: "missing-file", file: filepath.Join(dir, "nope.yaml"), wantErr: []string{"--config", "does not exist"}},
		{name: "malformed-yaml", body: "cluster: [unclosed\n", wantErr: []string{"--config", "cannot parse"}},
		{name: "unknown-top-level-key", body: "polcy: {failback: none}\n", wantErr: []string{"polcy: unknown key"}},
		{name: "key-starting-with-a-dot", body: ".olicy: {failback: none}\n", wantErr: []string{".olicy: unknown key"}},
		{name: "unknown-policy-key", body: "policy: {max_paralel_migrations: 2}\n", wantErr: []string{"policy.max_paralel_migrations: unknown key"}},
		{name: "unknown-driver", body: "cluster: {driver: vmware}\n", wantErr: []string{"cluster.driver", "unknown driver \"vmware\"", "use one of"}},
		{name: "unknown-driver-section", body: "cluster: {driver: sim, simm: {url: x}}\n", wantErr: []string{"cluster.simm: unknown key"}},
		{name: "zero-limit", body: "policy: {max_parallel_migrations: 0}\n", wantErr: []string{"policy.max_parallel_migrations", "at least 1"}},
		{name: "negative-limit", body: "policy: {max_migrations_per_node: -2}\n", wantErr: []string{"policy.max_migrations_per_node", "at least 1"}},
		{name: "duration-without-unit", body: "policy: {reboot_timeout: 900}\n", wantErr: []string{"policy.reboot_timeout", "without a unit"}},
		{name: "bad-duration", body: "policy: {reboot_timeout: soon}\n", wantErr: []string{"policy.reboot_timeout"}},
		{name: "bad-env-number", env: map[string]string{"DROVER_POLICY_RETRIES_PER_NODE": "many"}, body: "{}\n", wantErr: []string{"policy.retries_per_node"}},
		{name: "bad-failback", body: "policy: {failback: sometimes}\n", wantErr: []string{"policy.failback", "none, immediate or policy"}},
		{name: "bad-set", body: "{}\n", sets: []string{"policy.failback"}, wantErr: []string{"--set", "key=value"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			file := tt.file
			if file == "" {
				file = writeFile(t, t.TempDir(), "c.yaml", tt.body)
			}
			_, err := Load(LoadOptions{File: file, Sets: tt.sets})
			if err == nil {
				t.Fatal("Load succeeded")
			}
			var fe *drivers.FieldError
			if !errors.As(err, &fe) {
				t.Errorf("error %v names no field", err)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestConfig_DriverConfig(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, dir, "c.yaml", "cluster: {driver: sim, sim: {time_scale: -1, cluster_file: x.yaml}}\n")
	c, err := Load(LoadOptions{File: file})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.DriverConfig()
	if err == nil || !strings.Contains(err.Error(), "cluster.sim.time_scale") {
		t.Fatalf("DriverConfig = %v, want an error naming cluster.sim.time_scale", err)
	}
	kind, _, err := c.UpdaterConfig()
	if err != nil || kind != "sim" {
		t.Errorf("UpdaterConfig = %q, %v; want the sim driver's own plug-in", kind, err)
	}
}
