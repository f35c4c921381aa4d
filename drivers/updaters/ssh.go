package updaters

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/droverhq/drover/drivers"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// SSHConfig is how Drover logs in to nodes over SSH. Host key checking is on unless
// InsecureIgnoreHostKey is set explicitly.
type SSHConfig struct {
	// User to log in as (required).
	User string `mapstructure:"user"`
	// Port is the default port for targets without one (22).
	Port int `mapstructure:"port"`
	// Password authentication: the password itself, or the name of an environment
	// variable holding it (preferred: keeps the secret out of config files).
	Password    string `mapstructure:"password"`
	PasswordEnv string `mapstructure:"password_env"`
	// KeyFile is a private key for public key authentication; KeyPassphraseEnv names
	// the environment variable holding its passphrase, if it has one.
	KeyFile          string `mapstructure:"key_file"`
	KeyPassphraseEnv string `mapstructure:"key_passphrase_env"`
	// KnownHosts is the known_hosts file (default ~/.ssh/known_hosts).
	KnownHosts string `mapstructure:"known_hosts"`
	// InsecureIgnoreHostKey disables host key checking. Never the default.
	InsecureIgnoreHostKey bool `mapstructure:"insecure_ignore_host_key"`
	// ConnectTimeout bounds dial and handshake (default 15s).
	ConnectTimeout time.Duration `mapstructure:"connect_timeout"`
}

// String keeps secrets out of logs and error messages that print the config.
func (c SSHConfig) String() string {
	return fmt.Sprintf("ssh{user=%s port=%d key_file=%s known_hosts=%s}", c.User, c.Port, c.KeyFile, c.KnownHosts)
}

// LogValue keeps secrets out of structured logs.
func (c SSHConfig) LogValue() slog.Value { return slog.StringValue(c.String()) }

// Validate checks the config without touching the disk; fields are named relative to
// the ssh section.
func (c SSHConfig) Validate() error {
	var errs []error
	if c.User == "" {
		errs = append(errs, drivers.Fieldf("user", "set the login user, e.g. user: root", "required"))
	}
	if c.Port < 0 || c.Port > 65535 {
		errs = append(errs, drivers.Fieldf("port", "use a TCP port 1-65535 or leave it out for 22", "out of range: %d", c.Port))
	}
	auths := 0
	for _, s := range []string{c.Password, c.PasswordEnv, c.KeyFile} {
		if s != "" {
			auths++
		}
	}
	switch {
	case auths == 0:
		errs = append(errs, drivers.Fieldf("key_file", "set key_file, password_env or password", "no authentication method configured"))
	case c.Password != "" && c.PasswordEnv != "":
		errs = append(errs, drivers.Fieldf("password", "set either password or password_env, not both", "two sources for one password"))
	}
	if c.KeyPassphraseEnv != "" && c.KeyFile == "" {
		errs = append(errs, drivers.Fieldf("key_passphrase_env", "set key_file too, or remove it", "passphrase without a key"))
	}
	if c.ConnectTimeout < 0 {
		errs = append(errs, drivers.Fieldf("connect_timeout", "use a positive duration such as 15s", "negative"))
	}
	return errors.Join(errs...)
}

// SSHRunner runs commands on remote targets over SSH, one connection per command (a
// node that reboots drops its connections anyway).
type SSHRunner struct {
	cfg      *ssh.ClientConfig
	hostKeys ssh.HostKeyCallback // nil when host key checking is off
	port     int
	timeout  time.Duration
}

var _ Runner = (*SSHRunner)(nil)

// NewSSHRunner reads the key and known_hosts files; relative paths are resolved against
// baseDir. It does not connect.
func NewSSHRunner(c SSHConfig, baseDir string) (*SSHRunner, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	var auth []ssh.AuthMethod
	if c.KeyFile != "" {
		signer, err := loadKey(resolve(baseDir, c.KeyFile), c.KeyPassphraseEnv)
		if err != nil {
			return nil, err
		}
		auth = append(auth, ssh.PublicKeys(signer))
	}
	if pw, err := password(c); err != nil {
		return nil, err
	} else if pw != "" {
		auth = append(auth, ssh.Password(pw), ssh.KeyboardInteractive(func(_, _ string, qs []string, _ []bool) ([]string, error) {
			answers := make([]string, len(qs))
			for i := range qs {
				answers[i] = pw
			}
			return answers, nil
		}))
	}
	r := &SSHRunner{port: c.Port, timeout: c.ConnectTimeout}
	if r.port == 0 {
		r.port = 22
	}
	if r.timeout == 0 {
		r.timeout = 15 * time.Second
	}
	r.cfg = &ssh.ClientConfig{User: c.User, Auth: auth, Timeout: r.timeout}
	if c.InsecureIgnoreHostKey {
		r.cfg.HostKeyCallback = ssh.InsecureIgnoreHostKey()
		return r, nil
	}
	file := c.KnownHosts
	if file == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return nil, drivers.Fieldf("known_hosts", "set known_hosts to a known_hosts file", "no home folder for the default ~/.ssh/known_hosts: %v", err)
		}
		file = filepath.Join(home, ".ssh", "known_hosts")
	}
	cb, err := knownhosts.New(resolve(baseDir, file))
	if err != nil {
		return nil, drivers.Fieldf("known_hosts", "create it with ssh-keyscan HOST >> FILE, or point known_hosts to it", "read known_hosts: %v", err)
	}
	r.hostKeys = cb
	return r, nil
}

func password(c SSHConfig) (string, error) {
	if c.PasswordEnv == "" {
		return c.Password, nil
	}
	pw, ok := os.LookupEnv(c.PasswordEnv)
	if !ok || pw == "" {
		return "", drivers.Fieldf("password_env", "export the variable before starting drover", "environment variable %s is empty or unset", c.PasswordEnv)
	}
	return pw, nil
}

func loadKey(path, passphraseEnv string) (ssh.Signer, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, drivers.Fieldf("key_file", "point key_file to a readable private key", "read key: %v", err)
	}
	if passphraseEnv != "" {
		pass := os.Getenv(passphraseEnv)
		if pass == "" {
			return nil, drivers.Fieldf("key_passphrase_env", "export the variable before starting drover", "environment variable %s is empty or unset", passphraseEnv)
		}
		s, err := ssh.ParsePrivateKeyWithPassphrase(pem, []byte(pass))
		if err != nil {
			// The parser's message never contains the passphrase.
			return nil, drivers.Fieldf("key_file", "check the key and its passphrase", "parse key %s: %v", path, err)
		}
		return s, nil
	}
	s, err := ssh.ParsePrivateKey(pem)
	if err != nil {
		var missing *ssh.PassphraseMissingError
		if errors.As(err, &missing) {
			return nil, drivers.Fieldf("key_passphrase_env", "name the environment variable holding the key's passphrase", "key %s is encrypted", path)
		}
		return nil, drivers.Fieldf("key_file", "use an OpenSSH, PEM or PKCS#8 private key", "parse key %s: %v", path, err)
	}
	return s, nil
}

func resolve(baseDir, p string) string {
	if p == "" || filepath.IsAbs(p) || baseDir == "" {
		return p
	}
	return filepath.Join(baseDir, p)
}

// addr puts the default port on target when it has none.
func (r *SSHRunner) addr(target string) string {
	if _, _, err := net.SplitHostPort(target); err == nil {
		return target
	}
	return net.JoinHostPort(target, strconv.Itoa(r.port))
}

// clientConfig returns the client config for addr. With host key checking on, the
// host key algorithms are the key types known_hosts has for addr: otherwise a server
// offering several types may present one we have no line for, and the handshake fails
// with "key mismatch" although the host is known.
func (r *SSHRunner) clientConfig(addr string) (*ssh.ClientConfig, error) {
	if r.hostKeys == nil {
		return r.cfg, nil
	}
	cfg := *r.cfg
	known, err := knownKeyTypes(r.hostKeys, addr)
	if err != nil {
		return nil, err
	}
	if len(known) == 0 {
		return nil, fmt.Errorf("ssh %s: host unknown: no known_hosts entry (add one with ssh-keyscan, or set insecure_ignore_host_key: true at your own risk)", addr)
	}
	cfg.HostKeyAlgorithms = known
	cfg.HostKeyCallback = r.hostKeys
	return &cfg, nil
}

// probeKey never matches a real host key; asking the known_hosts callback about it
// returns the keys it knows for the host.
var probeKey = func() ssh.PublicKey {
	k, err := ssh.NewPublicKey(ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)).Public())
	if err != nil {
		panic(err)
	}
	return k
}()

func knownKeyTypes(cb ssh.HostKeyCallback, addr string) ([]string, error) {
	remote, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		remote = &net.TCPAddr{}
	}
	err = cb(addr, remote, probeKey)
	var ke *knownhosts.KeyError
	if !errors.As(err, &ke) {
		// The probe key matched or the file is revoked-only: either way no usable list.
		if err != nil {
			return nil, fmt.Errorf("ssh %s: check known_hosts: %w", addr, err)
		}
		return nil, fmt.Errorf("ssh %s: known_hosts accepts a dummy key; fix the file", addr)
	}
	var algos []string
	seen := map[string]bool{}
	add := func(a string) {
		if !seen[a] {
			seen[a] = true
			algos = append(algos, a)
		}
	}
	for _, k := range ke.Want {
		switch t := k.Key.Type(); t {
		case ssh.KeyAlgoRSA:
			add(ssh.KeyAlgoRSASHA512)
			add(ssh.KeyAlgoRSASHA256)
			add(ssh.KeyAlgoRSA)
		default:
			add(t)
		}
	}
	return algos, nil
}

// Run runs argv on target (host or host:port) and waits for it, or for ctx.
func (r *SSHRunner) Run(ctx context.Context, target string, argv []string) (Output, error) {
	if len(argv) == 0 {
		return Output{}, errors.New("ssh: empty command")
	}
	addr := r.addr(target)
	cfg, err := r.clientConfig(addr)
	if err != nil {
		return Output{}, err
	}
	client, err := r.dial(ctx, addr, cfg)
	if err != nil {
		return Output{}, err
	}
	defer client.Close()
	sess, err := client.NewSession()
	if err != nil {
		return Output{}, fmt.Errorf("ssh %s: open session: %w", addr, err)
	}
	defer sess.Close()
	var stdout, stderr cappedBuffer
	sess.Stdout = &stdout
	sess.Stderr = &stderr
	done := make(chan error, 1)
	cmdline := ShellJoin(argv)
	go func() { done <- sess.Run(cmdline) }()
	select {
	case err = <-done:
	case <-ctx.Done():
		_ = sess.Signal(ssh.SIGKILL)
		client.Close()
		<-done
		return Output{Stdout: stdout.String(), Stderr: stderr.String()}, fmt.Errorf("ssh %s: run %s: %w", addr, argv[0], ctx.Err())
	}
	out := Output{Stdout: stdout.String(), Stderr: stderr.String()}
	if err == nil {
		return out, nil
	}
	var ee *ssh.ExitError
	var missing *ssh.ExitMissingError
	switch {
	case errors.As(err, &ee):
		return out, fmt.Errorf("ssh %s: run %s: %w", addr, argv[0], &ExitError{Code: ee.ExitStatus(), Stderr: out.Stderr})
	case errors.As(err, &missing), errors.Is(err, io.EOF):
		return out, fmt.Errorf("ssh %s: run %s: %w", addr, argv[0], ErrNoExitStatus)
	}
	return out, fmt.Errorf("ssh %s: run %s: %w", addr, argv[0], err)
}

func (r *SSHRunner) dial(ctx context.Context, addr string, cfg *ssh.ClientConfig) (*ssh.Client, error) {
	dctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(dctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("ssh %s: dial: %w", addr, err)
	}
	stop := context.AfterFunc(dctx, func() { conn.Close() })
	c, chans, reqs, err := ssh.NewClientConn(conn, addr, cfg)
	if !stop() {
		if err == nil {
			c.Close()
		}
		conn.Close()
		return nil, fmt.Errorf("ssh %s: handshake: %w", addr, context.Cause(dctx))
	}
	if err != nil {
		conn.Close()
		var ke *knownhosts.KeyError
		if errors.As(err, &ke) {
			return nil, fmt.Errorf("ssh %s: host key mismatch: the host presented a key that known_hosts does not have for it (possible man-in-the-middle, or the host was reinstalled: verify, then update known_hosts)", addr)
		}
		return nil, fmt.Errorf("ssh %s: handshake: %w", addr, err)
	}
	return ssh.NewClient(c, chans, reqs), nil
}
