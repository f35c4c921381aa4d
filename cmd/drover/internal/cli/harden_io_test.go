package cli

import (
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// TestRunsReport_OutputIsPrivateAndNeverFollowsSymlinks: -o FILE writes a 0600
// file; a symlink planted at FILE is replaced, its target left untouched (issue 10,
// item 13).
func TestRunsReport_OutputIsPrivateAndNeverFollowsSymlinks(t *testing.T) {
	cfg := testSetup(t, smallCluster, "")
	if out, errOut, code := runCLI(t, "--config", cfg, "apply", "--yes"); code != 0 {
		t.Fatalf("apply: exit %d\n%s\n%s", code, out, errOut)
	}
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	if err := os.WriteFile(victim, []byte("precious\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "report.md")
	if err := os.Symlink(victim, link); err != nil {
		t.Fatal(err)
	}
	fresh := filepath.Join(dir, "fresh.md")
	for _, target := range []string{link, fresh} {
		if out, errOut, code := runCLI(t, "--config", cfg, "runs", "report", "last", "--format", "md", "-o", target); code != 0 {
			t.Fatalf("report -o %s: exit %d\n%s\n%s", target, code, out, errOut)
		}
		st, err := os.Lstat(target)
		if err != nil {
			t.Fatal(err)
		}
		if !st.Mode().IsRegular() || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want a regular file with mode 0600", target, st.Mode())
		}
		b, _ := os.ReadFile(target)
		if !strings.HasPrefix(string(b), "# Drover run ") {
			t.Errorf("%s holds %.60q, want the report", target, b)
		}
	}
	if b, _ := os.ReadFile(victim); string(b) != "precious\n" {
		t.Errorf("the symlink's target was written: %q", b)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 3 {
		t.Errorf("folder holds %d entries, want victim, report.md and fresh.md (no temp file left)", len(entries))
	}
}

// TestRemote_RefusesTokenOverPlainHTTPToTheNetwork: --server http://<not
// loopback> sends no request (so no token) unless --insecure-http (issue 10, item
// 14).
func TestRemote_RefusesTokenOverPlainHTTPToTheNetwork(t *testing.T) {
	var hits atomic.Int32
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte("[]"))
	}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts.Listener = ln
	ts.Start()
	t.Cleanup(ts.Close)
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	t.Setenv("DROVER_TOKEN", remoteViewer)
	// The refusal comes before any connection. The host is under .invalid, which
	// never resolves: a regression fails to resolve it rather than reach anything.
	_, errOut, code := runCLI(t, "runs", "list", "--server", "http://drover-test.invalid:"+port)
	if code != 2 || !strings.Contains(errOut, "plain http to a host that is not loopback would send the token in clear") || !strings.Contains(errOut, "--insecure-http") {
		t.Errorf("http to a non-loopback host: exit %d, want 2 and the refusal\n%s", code, errOut)
	}
	for _, u := range []string{"http://127.0.0.1:" + port, "http://localhost:" + port, "http://[::1]:" + port} {
		_, errOut, code := runCLI(t, "runs", "list", "--server", u)
		if strings.Contains(errOut, "in clear") {
			t.Errorf("%s: loopback refused: exit %d\n%s", u, code, errOut)
		}
	}
	if hits.Load() == 0 {
		t.Error("no loopback call reached the server")
	}
}
