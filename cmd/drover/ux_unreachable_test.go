package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCLI_UnreachableHostsAreNamed: a libvirt cluster whose every host refuses the
// connection. inventory does not exit 0 with "down 0 MiB", and analyze fails
// driver_reachable naming each host and its error.
func TestCLI_UnreachableHostsAreNamed(t *testing.T) {
	bin := droverBinary(t)
	dir := t.TempDir()
	var ports []string
	for range 2 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		ln.Close() // nothing listens there now: the connection is refused
		ports = append(ports, port)
	}
	writeFile(t, filepath.Join(dir, "lv.yaml"), "state: state.db\ncluster:\n  name: t\n  driver: libvirt\n  libvirt:\n    state_dir: lv\n    connect_timeout: 2s\n"+
		"    hosts:\n      - {name: kvm1, uri: \"qemu+tcp://127.0.0.1:"+ports[0]+"/system\"}\n      - {name: kvm2, uri: \"qemu+tcp://127.0.0.1:"+ports[1]+"/system\"}\n"+
		"  updater: {kind: command, command: {scan: \"true\", install: \"true\"}}\n")
	run := func(args ...string) (int, string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, append([]string{"--config", "lv.yaml"}, args...)...)
		cmd.Dir = dir
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + filepath.Join(dir, "home"), "XDG_STATE_HOME=" + filepath.Join(dir, "xdg")}
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			if _, ok := err.(*exec.ExitError); !ok {
				t.Fatalf("drover %v: %v", args, err)
			}
		}
		return cmd.ProcessState.ExitCode(), out.String()
	}
	code, out := run("inventory")
	if code != 1 || !strings.Contains(out, "no node of cluster t answers") || strings.Contains(out, "0 MiB") {
		t.Errorf("inventory: exit %d, want 1 saying no node answers, no \"0 MiB\" for nodes that do not say:\n%s", code, out)
	}
	for _, h := range []string{"kvm1", "kvm2"} {
		if !strings.Contains(out, "WARNING: node "+h+" does not answer: ") {
			t.Errorf("inventory does not name %s and its error:\n%s", h, out)
		}
	}
	code, out = run("analyze")
	if code == 0 {
		t.Errorf("analyze of a cluster none of whose hosts answers exits 0:\n%s", out)
	}
	for _, h := range []string{"kvm1", "kvm2"} {
		if !strings.Contains(out, h+" (down: ") || !strings.Contains(out, "connection refused") {
			t.Errorf("analyze does not name %s with its error:\n%s", h, out)
		}
	}
}
