package updaters

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// testSSHServer is an SSH server on 127.0.0.1 that runs exec requests with /bin/sh -c,
// for testing the SSH runner end to end (handshake, host key checking, auth, exit codes).
type testSSHServer struct {
	addr     string
	hostKeys []ssh.Signer
	// started receives each command when the server starts running it.
	started chan string
	// running counts the commands running; a session's end kills its command's
	// process group before the count drops.
	running atomic.Int32
	// authKey is the client key the server accepts (its file: keyPath); password the
	// password.
	authKey  ssh.Signer
	keyPath  string
	password string
}

type sshServerOpts struct {
	hostKeyTypes []string // "ed25519", "rsa"
}

func newSigner(t testing.TB, typ string) ssh.Signer {
	t.Helper()
	var key any
	switch typ {
	case "ed25519":
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		key = k
	case "rsa":
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		key = k
	}
	s, err := ssh.NewSignerFromKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func startSSHServer(t *testing.T, opts sshServerOpts) *testSSHServer {
	t.Helper()
	if len(opts.hostKeyTypes) == 0 {
		opts.hostKeyTypes = []string{"ed25519"}
	}
	srv := &testSSHServer{started: make(chan string, 16), password: "s3cret-pw"}
	srv.authKey, srv.keyPath = writeClientKey(t)
	cfg := &ssh.ServerConfig{
		PasswordCallback: func(_ ssh.ConnMetadata, pw []byte) (*ssh.Permissions, error) {
			if string(pw) == srv.password {
				return nil, nil
			}
			return nil, errors.New("bad password")
		},
		PublicKeyCallback: func(_ ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
			if string(k.Marshal()) == string(srv.authKey.PublicKey().Marshal()) {
				return nil, nil
			}
			return nil, errors.New("unknown key")
		},
	}
	for _, typ := range opts.hostKeyTypes {
		s := newSigner(t, typ)
		srv.hostKeys = append(srv.hostKeys, s)
		cfg.AddHostKey(s)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.addr = ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
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
			wg.Go(func() { srv.serve(ctx, c, cfg, &wg) })
		}
	})
	t.Cleanup(func() {
		cancel()
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return srv
}

func (s *testSSHServer) serve(ctx context.Context, c net.Conn, cfg *ssh.ServerConfig, wg *sync.WaitGroup) {
	sc, chans, reqs, err := ssh.NewServerConn(c, cfg)
	if err != nil {
		c.Close()
		return
	}
	defer sc.Close()
	wg.Go(func() { ssh.DiscardRequests(reqs) })
	for nc := range chans {
		if nc.ChannelType() != "session" {
			_ = nc.Reject(ssh.UnknownChannelType, "only sessions")
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			continue
		}
		wg.Go(func() { s.session(ctx, ch, creqs) })
	}
}

func (s *testSSHServer) session(ctx context.Context, ch ssh.Channel, reqs <-chan *ssh.Request) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		// The client is gone (or asked for a signal): stop the command, then close.
		cancel()
		wg.Wait()
		ch.Close()
	}()
	for req := range reqs {
		switch req.Type {
		case "exec":
			if len(req.Payload) < 4 {
				_ = req.Reply(false, nil)
				continue
			}
			n := binary.BigEndian.Uint32(req.Payload)
			cmdline := string(req.Payload[4 : 4+n])
			_ = req.Reply(true, nil)
			wg.Go(func() {
				cmd := exec.CommandContext(ctx, "/bin/sh", "-c", cmdline)
				cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
				cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
				cmd.Stdout = ch
				cmd.Stderr = ch.Stderr()
				if err := cmd.Start(); err != nil {
					ch.Close()
					return
				}
				s.running.Add(1)
				defer s.running.Add(-1)
				select {
				case s.started <- cmdline:
				default: // nobody listens: tests that run many commands
				}
				err := cmd.Wait()
				// The session's end takes its process group along, even when the
				// command exited by itself (as a hang-up does on a terminal
				// session): only what left the group, by setsid or systemd-run,
				// outlives the session.
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				code := 0
				var ee *exec.ExitError
				if errors.As(err, &ee) {
					code = ee.ExitCode()
					if code < 0 {
						code = 255
					}
				}
				status := make([]byte, 4)
				binary.BigEndian.PutUint32(status, uint32(code))
				_, _ = ch.SendRequest("exit-status", false, status)
				ch.Close()
			})
		case "signal":
			cancel()
		default:
			_ = req.Reply(false, nil)
		}
	}
}

// knownHostsFile writes a known_hosts file with a line for addr for each key.
func knownHostsFile(t *testing.T, addr string, keys ...ssh.PublicKey) string {
	t.Helper()
	var data []byte
	for _, k := range keys {
		data = append(data, knownhosts.Line([]string{knownhosts.Normalize(addr)}, k)+"\n"...)
	}
	p := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// writeClientKey makes a client key, writes it as an OpenSSH private key file and
// returns the signer and the file's path.
func writeClientKey(t *testing.T) (ssh.Signer, string) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "id_ed25519")
	if err := os.WriteFile(p, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	return signer, p
}
