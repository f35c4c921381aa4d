package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestCLI_BadInputAptSSH: the apt plug-in without an ssh section is a config error
// (exit 2, naming cluster.updater.apt.ssh and the fix) with every driver that does
// not lend its own SSH; nothing is written. (With proxmox, which lends its SSH, the
// same section is valid: make e2e-proxmox runs such a config.)
func TestCLI_BadInputAptSSH(t *testing.T) {
	bin := droverBinary(t)
	demo := filepath.Join(moduleRoot(t), "testdata", "clusters", "demo.yaml")
	embedded := "state: state.db\ncluster:\n  driver: sim\n  sim:\n    cluster_file: " + demo + "\n"
	libvirt := "state: state.db\ncluster:\n  name: t\n  driver: libvirt\n  libvirt:\n    state_dir: lv\n    hosts: [{name: h1, uri: \"qemu+tcp://h1/system\"}]\n"
	const want = "drover: cluster.updater.apt.ssh: required: apt runs on the nodes over SSH (add an ssh section (user, key_file or password_env, known_hosts); only drivers that reach their nodes over SSH themselves, such as proxmox, lend theirs)"
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, config string
		args         []string
	}{
		{"sim-inventory", embedded + "  updater: {kind: apt}\n", []string{"inventory"}},
		{"sim-apply", embedded + "  updater:\n    kind: apt\n    apt: {timeout: 30m}\n", []string{"apply", "--yes"}},
		{"sim-analyze", embedded + "  updater: {kind: apt}\n", []string{"analyze"}},
		{"libvirt-apply", libvirt + "  updater: {kind: apt}\n", []string{"apply", "--yes"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, "drover.yaml"), tt.config)
			before := snapshot(t, dir)
			code, stderr := runDrover(t, bin, dir, nil, append([]string{"--config", "drover.yaml"}, tt.args...)...)
			if code != 2 {
				t.Errorf("exit code %d, want 2; stderr:\n%s", code, stderr)
			}
			if got := errorMessage(stderr, dir, host); got != want {
				t.Errorf("message:\n got  %s\n want %s", got, want)
			}
			if after := snapshot(t, dir); after != before {
				t.Errorf("files changed:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}
