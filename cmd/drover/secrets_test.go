package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/droverhq/drover/cmd/internal/chaos"
)

// TestCLI_SecretsStayOut configures real secrets (an SSH password of the command
// update plug-in, in the file or in the environment; one of the libvirt driver's
// SSH section; a daemon API token; webhook URLs with secret paths and queries),
// patches a simulated cluster through a real SSH server that checks the password,
// locally and through the daemon, and greps every output for the secrets: stdout and
// stderr of each command at log level debug, the JSON and the rendered reports,
// error messages of wrong and conflicting secrets, the daemon's logs (failed webhook
// deliveries included), the notifications sent, and the bytes of the state files
// and everything else written next to them. The state files must be private (0600).
// SSH host keys are checked: an unknown host or a changed key is an error before
// any password is offered.
func TestCLI_SecretsStayOut(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a rolling run over SSH")
	}
	bin := droverBinary(t)
	root := moduleRoot(t)
	procs := &chaos.Procs{}
	t.Cleanup(procs.KillAll)
	ctx := context.Background()
	password := "pw-" + randomHex(t, 12)
	token := "tok-" + randomHex(t, 16)
	wrongToken := "tok-wrong-" + randomHex(t, 8)
	wrongPassword := "pw-wrong-" + randomHex(t, 8)
	// Webhook URLs carry their secret in the path or the query (Slack, Teams).
	hookPath := "hook-" + randomHex(t, 12)
	hookQuery := "hq-" + randomHex(t, 12)
	hookPath2 := "hook2-" + randomHex(t, 12)
	// The libvirt driver's SSH password.
	lvPassword := "lvpw-" + randomHex(t, 12)
	secrets := []string{password, token, wrongToken, wrongPassword, hookPath, hookQuery, hookPath2, lvPassword}

	srv, err := chaos.StartSim(ctx, procs, bin, filepath.Join(root, "testdata", "clusters", "demo.yaml"), 60, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	nodes := filepath.Join(dir, "nodes")
	if err := os.Mkdir(nodes, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"n1", "n2", "n3", "n4"} {
		writeFile(t, filepath.Join(nodes, n), "openssl 3.0.15\n")
	}
	sshd := startPasswordSSH(t, password)
	writeFile(t, filepath.Join(dir, "known_hosts"), knownhosts.Line([]string{knownhosts.Normalize(sshd.addr)}, sshd.hostKey.PublicKey())+"\n")
	config := func(state, ssh string) string {
		return fmt.Sprintf(`state: %s
log: {level: debug}
cluster:
  name: s
  driver: sim
  sim: {url: %s}
  updater:
    kind: command
    command:
      scan: cat %s/"$DROVER_NODE"
      install: '> %[3]s/"$DROVER_NODE"'
      hosts: {n1: %[4]s, n2: %[4]s, n3: %[4]s, n4: %[4]s}
      ssh: {user: drover, known_hosts: known_hosts, %[5]s}
policy: {max_parallel_migrations: 4, max_migrations_per_node: 2}
`, state, srv.URL, nodes, sshd.addr, ssh)
	}
	writeFile(t, filepath.Join(dir, "file.yaml"), config("state.db", "password: "+password))
	writeFile(t, filepath.Join(dir, "env.yaml"), config("state.db", "password_env: DROVER_TEST_SSH_PASSWORD"))
	writeFile(t, filepath.Join(dir, "wrong.yaml"), config("wrong.db", "password: "+wrongPassword))
	writeFile(t, filepath.Join(dir, "both.yaml"), config("both.db", "password: "+password+", password_env: DROVER_TEST_SSH_PASSWORD"))
	writeFile(t, filepath.Join(dir, "empty_known_hosts"), "")
	writeFile(t, filepath.Join(dir, "unknown-host.yaml"), strings.Replace(config("unknown.db", "password: "+password), "known_hosts: known_hosts", "known_hosts: empty_known_hosts", 1))
	_, otherKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	otherSigner, err := ssh.NewSignerFromKey(otherKey)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "other_known_hosts"), knownhosts.Line([]string{knownhosts.Normalize(sshd.addr)}, otherSigner.PublicKey())+"\n")
	writeFile(t, filepath.Join(dir, "changed-key.yaml"), strings.Replace(config("changed.db", "password: "+password), "known_hosts: known_hosts", "known_hosts: other_known_hosts", 1))
	if b, _ := os.ReadFile(filepath.Join(dir, "file.yaml")); !bytes.Contains(b, []byte(password)) {
		t.Fatal("the config does not hold the password: the greps below would prove nothing")
	}

	var outputs []string
	var lastErr string
	run := func(env []string, wantCode int, args ...string) string {
		t.Helper()
		code, stdout, stderr := runDroverOut(t, bin, dir, env, args...)
		outputs = append(outputs, fmt.Sprintf("drover %s\n%s\n%s", strings.Join(args[:2], " "), stdout, stderr))
		if code != wantCode {
			t.Errorf("drover %s: exit %d, want %d\n%s", strings.Join(args[:2], " "), code, wantCode, stderr)
		}
		lastErr = stderr
		return stdout
	}
	pwEnv := []string{"DROVER_TEST_SSH_PASSWORD=" + password}
	// The password in the config file: a whole run, then every way to read it.
	run(nil, 0, "--config", "file.yaml", "inventory", "--json")
	run(nil, 0, "--config", "file.yaml", "apply", "--dry-run", "--json")
	run(nil, 0, "--config", "file.yaml", "plan", "--json")
	out := run(nil, 0, "--config", "file.yaml", "apply", "--yes", "--json")
	var rep struct {
		ID    string `json:"id"`
		State string `json:"state"`
	}
	if err := json.Unmarshal(lastLine(out), &rep); err != nil || rep.State != "succeeded" {
		t.Fatalf("apply over SSH: %v, report %+v; the run must reach the secret's every use", err, rep)
	}
	run(nil, 0, "--config", "file.yaml", "runs", "list", "--json")
	run(nil, 0, "--config", "file.yaml", "runs", "show", rep.ID, "--json")
	run(nil, 0, "--config", "file.yaml", "runs", "show", rep.ID)
	for _, format := range []string{"html", "md", "csv", "json"} {
		run(nil, 0, "--config", "file.yaml", "runs", "report", rep.ID, "--format", format)
	}
	// The password from the environment (password_env), and DROVER_* overrides.
	for _, n := range []string{"n1", "n2"} {
		writeFile(t, filepath.Join(nodes, n), "zlib 1.3\n")
	}
	run(pwEnv, 0, "--config", "env.yaml", "apply", "--yes", "--json", "--nodes", "n1,n2")
	run([]string{"DROVER_CLUSTER_UPDATER_COMMAND_SSH_PASSWORD=" + password}, 0, "--config", "env.yaml", "--set", "cluster.updater.command.ssh.password_env=", "inventory")
	// Wrong and conflicting secrets: errors must not echo them.
	run(nil, 1, "--config", "wrong.yaml", "apply", "--yes", "--json")
	run(pwEnv, 2, "--config", "both.yaml", "inventory")
	if !strings.Contains(lastErr, "cluster.updater.command.ssh.password: two sources for one password") {
		t.Errorf("conflicting passwords: %s", lastErr)
	}
	// SSH host keys are checked: a host missing from known_hosts is refused, before
	// the password is sent to it.
	tries := sshd.logins() + sshd.refused()
	run(nil, 1, "--config", "unknown-host.yaml", "apply", "--dry-run")
	if !strings.Contains(lastErr, "host unknown") || !strings.Contains(lastErr, "ssh-keyscan") {
		t.Errorf("unknown SSH host: %s", lastErr)
	}
	if now := sshd.logins() + sshd.refused(); now != tries {
		t.Errorf("the password was offered to a host known_hosts does not know (%d logins)", now-tries)
	}
	// A host whose key changed (another machine answers at its address) is refused
	// the same way.
	run(nil, 1, "--config", "changed-key.yaml", "apply", "--dry-run")
	if !strings.Contains(lastErr, "host key mismatch") {
		t.Errorf("changed SSH host key: %s", lastErr)
	}
	if now := sshd.logins() + sshd.refused(); now != tries {
		t.Errorf("the password was offered to a host whose key changed (%d logins)", now-tries)
	}
	// The libvirt driver's SSH section: its password stays out of what a failing
	// inventory prints (the hosts' libvirtd are down), at log level debug.
	lvPort := closedPort(t)
	writeFile(t, filepath.Join(dir, "libvirt.yaml"), fmt.Sprintf(`state: libvirt.db
log: {level: debug}
cluster:
  name: lv
  driver: libvirt
  libvirt:
    state_dir: lvstate
    connect_timeout: 2s
    ssh: {user: root, password: %s, known_hosts: known_hosts}
    hosts:
      - {name: kvm1, uri: "qemu+tcp://127.0.0.1:%d/system", ssh_address: "%s", boot_id_command: [cat, /proc/sys/kernel/random/boot_id]}
  updater: {kind: command, command: {scan: "true", install: "true"}}
`, lvPassword, lvPort, sshd.addr))
	// No node answers: inventory prints the table and the host's error, and exits 1.
	run(nil, 1, "--config", "libvirt.yaml", "inventory", "--json")
	run(nil, 1, "--config", "libvirt.yaml", "inventory")
	// The only host is unreachable: no majority is up, so the run is refused before
	// anything is written; its error must not carry the password either.
	run(nil, 1, "--config", "libvirt.yaml", "apply", "--yes", "--json")
	if !strings.Contains(lastErr, "only 0 of 1 nodes are up") {
		t.Errorf("apply with every libvirt host unreachable: %s", lastErr)
	}
	if _, err := os.Stat(filepath.Join(dir, "libvirt.db")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a refused run wrote its state file libvirt.db (%v)", err)
	}
	run([]string{"DROVER_CLUSTER_UPDATER_COMMAND_SSH_PASSWORD=" + wrongPassword}, 2, "--config", "env.yaml", "--set", "policy.max_parallel_migrations=0", "apply", "--yes")

	// The daemon: tokens are configured as digests; clients send the token. Its
	// webhooks fail, one refusing (500), one dropping the connection: both
	// failures are logged, and neither log line may show the URL's secret part.
	hooks := startHookReceivers(t)
	sum := sha256.Sum256([]byte(token))
	serveCfg := config("serve.db", "password: "+password) + fmt.Sprintf(`server:
  listen: 127.0.0.1:0
  tokens: [{name: ci, role: operator, sha256: %s}]
webhooks:
  - {url: "%s/%s?token=%s", retries: 0}
  - {url: "%s/%s", retries: 0}
`, hex.EncodeToString(sum[:]), hooks.refusing, hookPath, hookQuery, hooks.dropping, hookPath2)
	writeFile(t, filepath.Join(dir, "serve.yaml"), serveCfg)
	daemonLog := filepath.Join(dir, "serve.log")
	url := startServe(t, procs, bin, dir, daemonLog)
	run([]string{"DROVER_TOKEN=" + token}, 0, "--server", url, "runs", "list", "--json")
	run([]string{"DROVER_TOKEN=" + wrongToken}, 2, "--server", url, "runs", "list", "--json")
	run(nil, 2, "--server", url, "--token", wrongToken, "runs", "list")
	writeFile(t, filepath.Join(nodes, "n3"), "curl 8.11\n")
	run([]string{"DROVER_TOKEN=" + token}, 0, "--server", url, "apply", "--yes", "--json", "--nodes", "n3")
	run([]string{"DROVER_TOKEN=" + token}, 0, "--server", url, "runs", "show", "last", "--json")
	// run_started and run_finished, to each webhook: wait until all four failed.
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, err := os.ReadFile(daemonLog)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Count(string(b), "webhook refused") >= 2 && strings.Count(string(b), "webhook not delivered") >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the daemon did not log the 4 failed webhook deliveries:\n%s", b)
		}
		time.Sleep(50 * time.Millisecond) // polling the log for a condition, with a deadline
	}
	procs.KillAll()
	if got := hooks.paths(); len(got) < 4 || !slices.Contains(got, "/"+hookPath) || !slices.Contains(got, "/"+hookPath2) {
		t.Errorf("webhook requests %v: want run_started and run_finished at both secret paths", got)
	}
	outputs = append(outputs, "webhook bodies\n"+hooks.bodies())

	for _, o := range outputs {
		for _, s := range secrets {
			if _, printed, _ := strings.Cut(o, "\n"); strings.Contains(printed, s) {
				t.Errorf("secret %q printed by %s...", s, strings.SplitN(o, "\n", 2)[0])
			}
		}
	}
	// Everything drover wrote: state files, their owner files, the daemon's log.
	// (The configs hold the password on purpose: they are the user's files.)
	written := []string{daemonLog}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".db") {
			written = append(written, filepath.Join(dir, e.Name()))
		}
	}
	if len(written) < 3 {
		t.Fatalf("only %v written: the runs did not happen", written)
	}
	for _, path := range written {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range secrets {
			if bytes.Contains(data, []byte(s)) {
				t.Errorf("secret %q stored in %s", s, filepath.Base(path))
			}
		}
	}
	for _, name := range []string{"state.db", "serve.db"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("state file %s not written: %v", name, err)
		}
	}
	for _, path := range written[1:] { // every state file and its sidecars
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if perm := st.Mode().Perm(); perm != 0o600 {
			t.Errorf("%s has mode %v, want 0600", filepath.Base(path), perm)
		}
	}
	if sshd.logins() == 0 || sshd.refused() == 0 {
		t.Errorf("ssh logins %d, refused %d: the password was not used both ways", sshd.logins(), sshd.refused())
	}
}

// hookReceivers are two webhook endpoints on 127.0.0.1 that never accept a
// notification: refusing answers 500, dropping closes the connection.
type hookReceivers struct {
	refusing, dropping string
	mu                 sync.Mutex
	got                []string
	body               strings.Builder
}

func startHookReceivers(t *testing.T) *hookReceivers {
	t.Helper()
	h := &hookReceivers{}
	record := func(r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		defer h.mu.Unlock()
		h.got = append(h.got, r.URL.Path)
		// What drover put in the notification; the path is the receiver's own.
		fmt.Fprintf(&h.body, "%v\n%s\n", r.Header, b)
	}
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		record(r)
		http.Error(w, "no", http.StatusInternalServerError)
	}))
	dropping := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		record(r)
		panic(http.ErrAbortHandler) // the connection is closed without an answer
	}))
	dropping.Config.ErrorLog = log.New(io.Discard, "", 0)
	t.Cleanup(refusing.Close)
	t.Cleanup(dropping.Close)
	h.refusing, h.dropping = refusing.URL, dropping.URL
	return h
}

func (h *hookReceivers) paths() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.got)
}

func (h *hookReceivers) bodies() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.body.String()
}

// closedPort returns a loopback TCP port nothing listens on (it was just free).
func closedPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}

// startServe starts `drover serve` with dir/serve.yaml and returns its API URL.
func startServe(t *testing.T, procs *chaos.Procs, bin, dir, logPath string) string {
	t.Helper()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config", "serve.yaml", "serve")
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + filepath.Join(dir, "home")}
	cmd.Stdout = pw
	p, err := procs.Start("drover serve", cmd, false, logPath)
	pw.Close()
	if err != nil {
		pr.Close()
		t.Fatal(err)
	}
	urls := make(chan string, 1)
	go func() {
		defer pr.Close()
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if _, rest, ok := strings.Cut(sc.Text(), "API on "); ok {
				urls <- strings.Fields(rest)[0]
			}
		}
	}()
	select {
	case u := <-urls:
		return u
	case <-p.Done():
		b, _ := os.ReadFile(logPath)
		t.Fatalf("drover serve exited: %s", b)
	case <-time.After(30 * time.Second):
		t.Fatal("drover serve did not say where it listens")
	}
	return ""
}

func runDroverOut(t *testing.T, bin, dir string, env []string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + filepath.Join(dir, "home")}, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("run drover %v: %v", args, err)
		}
	}
	return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
}

func lastLine(s string) []byte {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return []byte(lines[len(lines)-1])
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// passwordSSH is an SSH server on 127.0.0.1 that accepts one password and runs
// exec requests with /bin/sh -c: the nodes of the test, as the command plug-in
// reaches them.
type passwordSSH struct {
	addr    string
	hostKey ssh.Signer

	mu            sync.Mutex
	ok, rejection int
}

func (s *passwordSSH) logins() int  { s.mu.Lock(); defer s.mu.Unlock(); return s.ok }
func (s *passwordSSH) refused() int { s.mu.Lock(); defer s.mu.Unlock(); return s.rejection }

func startPasswordSSH(t *testing.T, password string) *passwordSSH {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(key)
	if err != nil {
		t.Fatal(err)
	}
	s := &passwordSSH{hostKey: signer}
	cfg := &ssh.ServerConfig{PasswordCallback: func(_ ssh.ConnMetadata, pw []byte) (*ssh.Permissions, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if string(pw) == password {
			s.ok++
			return nil, nil
		}
		s.rejection++
		return nil, errors.New("wrong password")
	}}
	cfg.AddHostKey(signer)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() { serveSSH(c, cfg) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return s
}

func serveSSH(c net.Conn, cfg *ssh.ServerConfig) {
	sc, chans, reqs, err := ssh.NewServerConn(c, cfg)
	if err != nil {
		c.Close()
		return
	}
	defer sc.Close()
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			_ = nc.Reject(ssh.UnknownChannelType, "sessions only")
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			continue
		}
		go sshSession(ch, creqs)
	}
}

// sshSession runs one exec request and reports its exit status.
func sshSession(ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer ch.Close()
	for req := range reqs {
		if req.Type != "exec" {
			_ = req.Reply(false, nil)
			continue
		}
		var payload struct{ Command string }
		if err := ssh.Unmarshal(req.Payload, &payload); err != nil {
			_ = req.Reply(false, nil)
			return
		}
		_ = req.Reply(true, nil)
		cmd := exec.Command("/bin/sh", "-c", payload.Command)
		cmd.Stdout, cmd.Stderr = ch, ch.Stderr()
		status := uint32(0)
		if err := cmd.Run(); err != nil {
			status = 1
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				status = uint32(ee.ExitCode())
			}
		}
		_, _ = ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{status}))
		return
	}
}
