package hyperv_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/droverhq/drover/drivers"
	"github.com/droverhq/drover/drivers/hyperv"
)

func TestExampleConfigValidates(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "hyperv", "example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Cluster struct {
			HyperV  map[string]any `yaml:"hyperv"`
			Updater struct {
				WindowsUpdate map[string]any `yaml:"windows_update"`
			} `yaml:"updater"`
		} `yaml:"cluster"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	cfg := hyperv.NewConfig()
	if err := drivers.Decode(doc.Cluster.HyperV, cfg); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("example hyperv section: %v", err)
	}
	u := hyperv.NewUpdaterConfig()
	if err := drivers.Decode(doc.Cluster.Updater.WindowsUpdate, u); err != nil {
		t.Fatal(err)
	}
	if err := u.Validate(); err != nil {
		t.Errorf("example windows_update section: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	base := func() map[string]any {
		return map[string]any{"nodes": []any{"hv1"}, "winrm": map[string]any{"username": "u", "password_env": "P"}}
	}
	for _, tc := range []struct {
		name  string
		edit  func(map[string]any)
		field string
	}{
		{"no-nodes", func(r map[string]any) { r["nodes"] = []any{} }, "nodes"},
		{"duplicate-node", func(r map[string]any) { r["nodes"] = []any{"hv1", "HV1"} }, "nodes[1]"},
		{"node-with-a-path", func(r map[string]any) { r["nodes"] = []any{"https://hv1/wsman"} }, "nodes[0]"},
		{"unknown-transport", func(r map[string]any) { r["transport"] = "psrp" }, "transport"},
		{"unknown-drain", func(r map[string]any) { r["drain"] = "force" }, "drain"},
		{"unknown-failback", func(r map[string]any) { r["failback"] = "now" }, "failback"},
		{"ntlm-without-password-env", func(r map[string]any) { delete(r["winrm"].(map[string]any), "password_env") }, "winrm.password_env"},
		{"basic-over-http", func(r map[string]any) {
			w := r["winrm"].(map[string]any)
			w["auth"], w["https"] = "basic", false
		}, "winrm.https"},
		{"kerberos-without-realm", func(r map[string]any) { r["winrm"].(map[string]any)["auth"] = "kerberos" }, "winrm.realm"},
		{"certificate-without-files", func(r map[string]any) { r["winrm"].(map[string]any)["auth"] = "certificate" }, "winrm.cert_file"},
		{"ssh-without-known-hosts", func(r map[string]any) {
			r["transport"] = "ssh"
			r["ssh"] = map[string]any{"user": "u", "key_file": "k"}
		}, "ssh.known_hosts"},
		{"ssh-without-auth", func(r map[string]any) {
			r["transport"] = "ssh"
			r["ssh"] = map[string]any{"user": "u", "known_hosts": "kh"}
		}, "ssh.key_file"},
		{"reboot-delay-zero", func(r map[string]any) { r["reboot_delay"] = "0s" }, "reboot_delay"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := base()
			tc.edit(raw)
			cfg := hyperv.NewConfig()
			if err := drivers.Decode(raw, cfg); err != nil {
				t.Fatal(err)
			}
			err := cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.field+":") {
				t.Errorf("validate: %v; want an error naming %s", err, tc.field)
			}
		})
	}
	cfg := hyperv.NewConfig()
	if err := drivers.Decode(base(), cfg); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("minimal config: %v", err)
	}
	if err := drivers.Decode(map[string]any{"winrm": map[string]any{"password": "x"}}, hyperv.NewConfig()); err == nil || !strings.Contains(err.Error(), "password") {
		t.Errorf("a password in the config: %v; want an unknown-key error (only password_env exists)", err)
	}
}
