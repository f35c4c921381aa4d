package updaters

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/drivers"
)

func TestSSHRunner_Run(t *testing.T) {
	srv := startSSHServer(t, sshServerOpts{})
	multi := startSSHServer(t, sshServerOpts{hostKeyTypes: []string{"rsa", "ed25519"}})
	other := newSigner(t, "ed25519")

	tests := []struct {
		name string
		srv  *testSSHServer
		cfg  func(*testSSHServer) SSHConfig
		argv []string
		// want is the expected stdout; wantErr parts of the error; wantExit the exit code.
		want     string
		wantErr  []string
		wantExit int
	}{
		{
			name: "known-host-key-auth", srv: srv,
			cfg: func(s *testSSHServer) SSHConfig {
				return SSHConfig{User: "drover", KeyFile: s.keyPath, KnownHosts: knownHostsFile(t, s.addr, s.hostKeys[0].PublicKey())}
			},
			argv: []string{"echo", "hello world", "it's"}, want: "hello world it's\n",
		},
		{
			name: "password-auth", srv: srv,
			cfg: func(s *testSSHServer) SSHConfig {
				return SSHConfig{User: "drover", Password: s.password, KnownHosts: knownHostsFile(t, s.addr, s.hostKeys[0].PublicKey())}
			},
			argv: []string{"printf", "%s", "$HOME;`x`"}, want: "$HOME;`x`",
		},
		{
			name: "exit-status-and-stderr", srv: srv,
			cfg: func(s *testSSHServer) SSHConfig {
				return SSHConfig{User: "drover", KeyFile: s.keyPath, KnownHosts: knownHostsFile(t, s.addr, s.hostKeys[0].PublicKey())}
			},
			argv: []string{"sh", "-c", "echo broken >&2; exit 3"}, wantErr: []string{"exit status 3: broken"}, wantExit: 3,
		},
		{
			name: "unknown-host-refused", srv: srv,
			cfg: func(s *testSSHServer) SSHConfig {
				return SSHConfig{User: "drover", KeyFile: s.keyPath, KnownHosts: knownHostsFile(t, "127.0.0.2:22", s.hostKeys[0].PublicKey())}
			},
			argv: []string{"true"}, wantErr: []string{"host unknown", "ssh-keyscan"},
		},
		{
			name: "mismatched-key-refused", srv: srv,
			cfg: func(s *testSSHServer) SSHConfig {
				return SSHConfig{User: "drover", KeyFile: s.keyPath, KnownHosts: knownHostsFile(t, s.addr, other.PublicKey())}
			},
			argv: []string{"true"}, wantErr: []string{"host key mismatch"},
		},
		{
			name: "insecure-ignore-host-key-explicit", srv: srv,
			cfg: func(s *testSSHServer) SSHConfig {
				return SSHConfig{User: "drover", KeyFile: s.keyPath, InsecureIgnoreHostKey: true}
			},
			argv: []string{"echo", "ok"}, want: "ok\n",
		},
		{
			// The server has an RSA and an ed25519 key; known_hosts has only the ed25519
			// one. Without HostKeyAlgorithms from known_hosts the client's default
			// preference picks RSA and the handshake fails with a key mismatch.
			name: "host-key-algorithms-from-known-hosts", srv: multi,
			cfg: func(s *testSSHServer) SSHConfig {
				return SSHConfig{User: "drover", KeyFile: s.keyPath, KnownHosts: knownHostsFile(t, s.addr, s.hostKeys[1].PublicKey())}
			},
			argv: []string{"echo", "ed"}, want: "ed\n",
		},
		{
			name: "wrong-password-not-leaked", srv: srv,
			cfg: func(s *testSSHServer) SSHConfig {
				return SSHConfig{User: "drover", Password: "hunter2-wrong", KnownHosts: knownHostsFile(t, s.addr, s.hostKeys[0].PublicKey())}
			},
			argv: []string{"true"}, wantErr: []string{"unable to authenticate"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg(tt.srv)
			r, err := NewSSHRunner(cfg, "")
			if err != nil {
				t.Fatalf("NewSSHRunner: %v", err)
			}
			out, err := r.Run(t.Context(), tt.srv.addr, tt.argv)
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("Run: %v", err)
				}
				if out.Stdout != tt.want {
					t.Fatalf("stdout = %q, want %q", out.Stdout, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Run succeeded with %q, want error %q", out.Stdout, tt.wantErr)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if code, ok := ExitCode(err); ok != (tt.wantExit != 0) || code != tt.wantExit {
				t.Errorf("ExitCode = %d, %v; want %d", code, ok, tt.wantExit)
			}
			if cfg.Password != "" && strings.Contains(err.Error(), cfg.Password) {
				t.Errorf("error leaks the password: %q", err)
			}
		})
	}
}

func TestSSHRunner_RunCancel(t *testing.T) {
	srv := startSSHServer(t, sshServerOpts{})
	r, err := NewSSHRunner(SSHConfig{User: "drover", KeyFile: srv.keyPath, KnownHosts: knownHostsFile(t, srv.addr, srv.hostKeys[0].PublicKey())}, "")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		_, err := r.Run(ctx, srv.addr, []string{"sleep", "60"})
		errc <- err
	}()
	<-srv.started // the command runs on the server: now cancel it
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run after cancel = %v, want context.Canceled", err)
	}
}

func TestSSHConfig_Validate(t *testing.T) {
	tests := []struct {
		name      string
		raw       map[string]any
		wantField []string
	}{
		{name: "key-auth-ok", raw: map[string]any{"user": "root", "key_file": "id"}},
		{name: "password-env-ok", raw: map[string]any{"user": "root", "password_env": "PW"}},
		{name: "no-user", raw: map[string]any{"key_file": "id"}, wantField: []string{"user"}},
		{name: "no-auth", raw: map[string]any{"user": "root"}, wantField: []string{"key_file"}},
		{name: "two-passwords", raw: map[string]any{"user": "root", "password": "x", "password_env": "PW"}, wantField: []string{"password"}},
		{name: "bad-port", raw: map[string]any{"user": "root", "key_file": "id", "port": 70000}, wantField: []string{"port"}},
		{name: "passphrase-without-key", raw: map[string]any{"user": "root", "password": "x", "key_passphrase_env": "P"}, wantField: []string{"key_passphrase_env"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c SSHConfig
			if err := drivers.Decode(tt.raw, &c); err != nil {
				t.Fatalf("Decode: %v", err)
			}
			assertFields(t, c.Validate(), tt.wantField)
		})
	}
}

func TestSSHConfig_String(t *testing.T) {
	c := SSHConfig{User: "root", Password: "topsecret"}
	if s := c.String(); strings.Contains(s, "topsecret") {
		t.Fatalf("String() leaks the password: %s", s)
	}
	if v := c.LogValue().String(); strings.Contains(v, "topsecret") {
		t.Fatalf("LogValue() leaks the password: %s", v)
	}
}

func TestShellJoin(t *testing.T) {
	tests := []struct {
		name string
		argv []string
	}{
		{name: "plain", argv: []string{"a", "b-c", "d/e"}},
		{name: "spaces-and-quotes", argv: []string{"it's here", `"x"`, ""}},
		{name: "metacharacters", argv: []string{"$HOME", "`id`", "a;b", "a|b", "*", "~", "\\n", "line\nbreak"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// printf prints each argument on its own line: the shell must hand back
			// exactly the argv we quoted.
			script := "printf '%s\\0' " + ShellJoin(tt.argv)
			out, err := exec.Command("/bin/sh", "-c", script).Output()
			if err != nil {
				t.Fatal(err)
			}
			got := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
			if strings.Join(got, "|") != strings.Join(tt.argv, "|") || len(got) != len(tt.argv) {
				t.Fatalf("shell saw %q, want %q", got, tt.argv)
			}
		})
	}
}

// assertFields checks that err holds exactly one *drivers.FieldError per wanted field
// (by field name), or is nil when none are wanted.
func assertFields(t *testing.T, err error, want []string) {
	t.Helper()
	if len(want) == 0 {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("no error, want errors on %v", want)
	}
	var got []string
	var walk func(error)
	walk = func(e error) {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range j.Unwrap() {
				walk(x)
			}
			return
		}
		var fe *drivers.FieldError
		if errors.As(e, &fe) {
			got = append(got, fe.Field)
		}
	}
	walk(err)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("error fields = %v, want %v (error: %v)", got, want, err)
	}
}

func TestLocalRunner_RunCancelKillsChildren(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	// The shell forks sleep (the trailing echo keeps it from exec'ing): killing only
	// the shell would leave sleep holding the output pipe for 60 s.
	_, err := LocalRunner{}.Run(ctx, "", []string{"/bin/sh", "-c", "sleep 60; echo late"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run = %v, want context.DeadlineExceeded", err)
	}
	// Well under cmd.WaitDelay (5 s): the process group was killed, not waited out.
	if d := time.Since(start); d > 4*time.Second {
		t.Fatalf("Run returned after %s: children of the cancelled command kept it waiting", d)
	}
}
