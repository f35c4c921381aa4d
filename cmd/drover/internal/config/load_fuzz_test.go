package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/droverhq/drover/drivers"
	_ "github.com/droverhq/drover/drivers/all"
)

// FuzzLoad feeds arbitrary config files and --set overrides to Load: it must not
// panic, every error must be a field error naming the key and the fix, and a config
// that loads must validate, and so must its driver and update plug-in sections or
// they must say which of their keys is wrong.
func FuzzLoad(f *testing.F) {
	for _, seed := range []string{"../../../../testdata/demo.yaml", "../../../../testdata/libvirt/example.yaml"} {
		if b, err := os.ReadFile(seed); err == nil {
			f.Add(b, "")
		}
	}
	for _, s := range []struct{ yaml, set string }{
		{"state: s.db\ncluster: {driver: sim, sim: {url: 'http://127.0.0.1:1'}}\n", "policy.failback=immediate"},
		{"cluster: {driver: sim, sim: {cluster_file: c.yaml, time_scale: -1}}\n", "policy.max_parallel_migrations=0"},
		{"policy: {reboot_timeout: 15, nodes: [a, a]}\n", "policy.nodes=a,b"},
		{"cluster: [\n", ""},
		{"cluster: {driver: sim, updater: {kind: command, command: {install: x, ssh: {password: p, password_env: E}}}}\n", "cluster.updater.command.timeout=5"},
		{"polcy: 1\nlog: {level: loud}\n", "=x"},
		{"clusters: [{name: a}, {name: a}]\n", "server.listen=0.0.0.0:1"},
		{"policy: {drain_timeout: -1s, cpu_overcommit: .nan}\n", "policy.force=maybe"},
	} {
		f.Add([]byte(s.yaml), s.set)
	}
	dir := f.TempDir()
	path := filepath.Join(dir, "drover.yaml")
	f.Fuzz(func(t *testing.T, data []byte, set string) {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		var sets []string
		if set != "" {
			sets = []string{set}
		}
		cfg, err := Load(LoadOptions{File: path, Sets: sets})
		if err != nil {
			requireFieldErrors(t, "Load", err)
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("a loaded config does not validate: %v", err)
		}
		if _, err := cfg.DriverConfig(); err != nil {
			requireFieldErrors(t, "DriverConfig", err)
		}
		if _, _, err := cfg.UpdaterConfig(); err != nil {
			requireFieldErrors(t, "UpdaterConfig", err)
		}
	})
}

func requireFieldErrors(t *testing.T, op string, err error) {
	t.Helper()
	for _, e := range flatten(err) {
		var fe *drivers.FieldError
		if !errors.As(e, &fe) || fe.Field == "" || fe.Fix == "" {
			t.Fatalf("%s: error without a field and a fix: %v", op, e)
		}
	}
}
