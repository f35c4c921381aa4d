package hyperv

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/masterzen/winrm"

	"github.com/droverhq/drover/drivers"
	"github.com/droverhq/drover/drivers/hyperv/scripts"
	"github.com/droverhq/drover/drivers/updaters"
)

// Runner runs one PowerShell command line (scripts.Command) on one node's endpoint and
// returns what it printed. The two implementations are WinRM and SSH.
type Runner interface {
	Run(ctx context.Context, addr, cmdline string) (Output, error)
}

// Output is a finished command.
type Output struct {
	Stdout, Stderr string
	ExitCode       int
}

// winrmRunner keeps one client per address (the client holds no connection state
// beyond its HTTP transport's idle connections).
type winrmRunner struct {
	cfg      WinRMConfig
	password string
	ca       []byte
	cert     []byte
	key      []byte

	mu      sync.Mutex
	clients map[string]*winrm.Client
}

func newWinRMRunner(c WinRMConfig, baseDir string) (*winrmRunner, error) {
	r := &winrmRunner{cfg: c, clients: map[string]*winrm.Client{}}
	pw, err := passwordFrom(c.PasswordEnv, "winrm.password_env")
	if err != nil {
		return nil, err
	}
	r.password = pw
	read := func(field, p string) ([]byte, error) {
		if p == "" {
			return nil, nil
		}
		if !filepath.IsAbs(p) && baseDir != "" {
			p = filepath.Join(baseDir, p)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, drivers.Fieldf(field, "point it to a readable PEM file", "%v", err)
		}
		return b, nil
	}
	if r.ca, err = read("winrm.ca_file", c.CAFile); err != nil {
		return nil, err
	}
	if r.ca != nil && !x509.NewCertPool().AppendCertsFromPEM(r.ca) {
		return nil, drivers.Fieldf("winrm.ca_file", "give the PEM certificate of the CA that signed the nodes' WinRM certificates", "no PEM certificate in %s", c.CAFile)
	}
	if r.cert, err = read("winrm.cert_file", c.CertFile); err != nil {
		return nil, err
	}
	if r.key, err = read("winrm.key_file", c.KeyFile); err != nil {
		return nil, err
	}
	if r.cert != nil {
		if _, err := tls.X509KeyPair(r.cert, r.key); err != nil {
			return nil, drivers.Fieldf("winrm.cert_file", "give a PEM certificate and its PEM private key in key_file", "%v", err)
		}
	}
	return r, nil
}

func (r *winrmRunner) client(addr string) (*winrm.Client, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.clients[addr]; ok {
		return c, nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	p, _ := strconv.Atoi(port)
	ep := &winrm.Endpoint{
		Host: host, Port: p, HTTPS: r.cfg.HTTPS, TLSServerName: r.cfg.TLSServerName,
		CACert: r.ca, Cert: r.cert, Key: r.key,
		// The HTTP response may take the whole long poll, and a bit more.
		Timeout: r.cfg.OperationTimeout + 30*time.Second,
	}
	params := *winrm.DefaultParameters
	params.Timeout = "PT" + strconv.Itoa(int(r.cfg.OperationTimeout/time.Second)) + "S"
	dial := (&net.Dialer{Timeout: r.cfg.ConnectTimeout, KeepAlive: 30 * time.Second}).Dial
	params.Dial = dial
	switch r.cfg.Auth {
	case "ntlm":
		if r.cfg.HTTPS {
			params.TransportDecorator = func() winrm.Transporter { return winrm.NewClientNTLMWithDial(dial) }
		} else {
			enc, err := winrm.NewEncryption("ntlm")
			if err != nil {
				return nil, err
			}
			params.TransportDecorator = func() winrm.Transporter { return enc }
		}
	case "kerberos":
		params.TransportDecorator = func() winrm.Transporter {
			return winrm.NewClientKerberos(&winrm.Settings{
				WinRMUsername: r.cfg.Username, WinRMPassword: r.password, WinRMHost: host, WinRMPort: p,
				WinRMProto: "https", KrbRealm: r.cfg.Realm, KrbConfig: r.cfg.KrbConfig, KrbSpn: r.cfg.SPN, KrbCCache: r.cfg.KrbCCache,
			})
		}
	case "certificate":
		params.TransportDecorator = func() winrm.Transporter { return winrm.NewClientAuthRequestWithDial(dial) }
	}
	c, err := winrm.NewClientWithParameters(ep, r.cfg.Username, r.password, &params)
	if err != nil {
		return nil, drivers.Fieldf("winrm", "check ca_file, cert_file and key_file", "%v", err)
	}
	r.clients[addr] = c
	return c, nil
}

// Run runs cmdline in a new remote shell. Errors name the config key that fixes them.
func (r *winrmRunner) Run(ctx context.Context, addr, cmdline string) (Output, error) {
	c, err := r.client(addr)
	if err != nil {
		return Output{}, err
	}
	var stdout, stderr bytes.Buffer
	code, err := c.RunWithContextWithInput(ctx, cmdline, &stdout, &stderr, nil)
	// NTLM authenticates a connection, not a request: when Go's HTTP transport sends
	// the AUTHENTICATE message on another connection than the NEGOTIATE (the first
	// one was not back in its idle pool yet), the listener answers 401 although the
	// password is right. Try again before calling the credentials wrong.
	for try := 0; try < 2 && err != nil && r.cfg.Auth == "ntlm" && is401(err) && ctx.Err() == nil; try++ {
		stdout.Reset()
		stderr.Reset()
		code, err = c.RunWithContextWithInput(ctx, cmdline, &stdout, &stderr, nil)
	}
	out := Output{Stdout: stdout.String(), Stderr: stderr.String(), ExitCode: code}
	if err != nil {
		if ctx.Err() != nil {
			return out, fmt.Errorf("winrm %s: %w", addr, ctx.Err())
		}
		return out, r.explain(addr, err)
	}
	return out, nil
}

// explain turns a transport error into one that names the key to fix. It never
// includes the password.
func (r *winrmRunner) explain(addr string, err error) error {
	msg := err.Error()
	if r.password != "" {
		msg = strings.ReplaceAll(msg, r.password, "****")
	}
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	switch {
	case is401(err):
		return fmt.Errorf("winrm %s: %w", addr, drivers.Fieldf("cluster.hyperv.winrm.username", "check username and the password in $"+r.cfg.PasswordEnv+" (and auth: "+r.cfg.Auth+")", "the node refused the credentials (HTTP 401)"))
	case errors.As(err, &ua), strings.Contains(msg, "certificate signed by unknown authority"):
		return fmt.Errorf("winrm %s: %w", addr, drivers.Fieldf("cluster.hyperv.winrm.ca_file", "set ca_file to the PEM of the CA that signed the node's WinRM certificate", "TLS: the node's certificate is not trusted"))
	case errors.As(err, &hn), strings.Contains(msg, "certificate is valid for"):
		return fmt.Errorf("winrm %s: %w", addr, drivers.Fieldf("cluster.hyperv.winrm.tls_server_name", "list the node by the name in its certificate, or set tls_server_name", "TLS: %s", msg))
	case strings.Contains(msg, "tls:") || strings.Contains(msg, "x509:"):
		return fmt.Errorf("winrm %s: %w", addr, drivers.Fieldf("cluster.hyperv.winrm.https", "check https, port and ca_file against the node's listener", "TLS: %s", msg))
	case strings.Contains(msg, "connection refused") || strings.Contains(msg, "no route to host") || strings.Contains(msg, "i/o timeout") || strings.Contains(msg, "no such host"):
		return fmt.Errorf("winrm %s: %w (check cluster.hyperv.nodes and winrm.port: is WinRM listening? winrm quickconfig -transport:https): %s", addr, drivers.ErrUnavailable, msg)
	}
	return fmt.Errorf("winrm %s: %w: %s", addr, drivers.ErrUnavailable, msg)
}

func is401(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "http error 401") || strings.Contains(msg, "401 - ")
}

// sshRunner runs commands through Windows OpenSSH; the argv has no character a shell
// (cmd.exe or PowerShell as the default shell) would interpret.
type sshRunner struct{ r *updaters.SSHRunner }

func newSSHRunner(c SSHConfig, baseDir string) (*sshRunner, error) {
	r, err := updaters.NewSSHRunner(updaters.SSHConfig{
		User: c.User, Port: c.Port, PasswordEnv: c.PasswordEnv, KeyFile: c.KeyFile,
		KeyPassphraseEnv: c.KeyPassphraseEnv, KnownHosts: c.KnownHosts, ConnectTimeout: c.ConnectTimeout,
	}, baseDir)
	if err != nil {
		return nil, drivers.PrefixFields("ssh", err)
	}
	return &sshRunner{r: r}, nil
}

func (s *sshRunner) Run(ctx context.Context, addr, cmdline string) (Output, error) {
	out, err := s.r.Run(ctx, addr, strings.Fields(cmdline))
	o := Output{Stdout: out.Stdout, Stderr: out.Stderr}
	if code, ok := updaters.ExitCode(err); ok {
		o.ExitCode = code
		return o, nil // the envelope on stdout tells what failed
	}
	if err != nil {
		return o, fmt.Errorf("%w: %w", drivers.ErrUnavailable, err)
	}
	return o, nil
}

// envelope is every script's one line of output.
type envelope struct {
	OK    bool            `json:"ok"`
	Data  json.RawMessage `json:"data"`
	Error string          `json:"error"`
}

// ScriptError is a script that ran and reported a failure.
type ScriptError struct {
	Op, Node, Message string
}

func (e *ScriptError) Error() string {
	return fmt.Sprintf("%s on %s: %s", e.Op, e.Node, e.Message)
}

// parseEnvelope reads the script's JSON envelope from stdout: the last line that is a
// JSON object (a profile or a module may print before it).
func parseEnvelope(op, node string, out Output) (json.RawMessage, error) {
	lines := strings.Split(strings.TrimSpace(out.Stdout), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if !strings.HasPrefix(l, "{") {
			continue
		}
		var env envelope
		if err := json.Unmarshal([]byte(l), &env); err != nil {
			continue
		}
		if !env.OK {
			return nil, &ScriptError{Op: op, Node: node, Message: env.Error}
		}
		return env.Data, nil
	}
	msg := filterCLIXML(out.Stderr)
	if msg == "" {
		msg = fmt.Sprintf("no JSON envelope on stdout (exit %d): %.200q", out.ExitCode, out.Stdout)
	}
	return nil, &ScriptError{Op: op, Node: node, Message: msg}
}

var (
	clixmlString = regexp.MustCompile(`<S S="Error">([^<]*)</S>`)
	clixmlEscape = regexp.MustCompile(`_x([0-9A-Fa-f]{4})_`)
)

// filterCLIXML drops PowerShell's serialised progress records from stderr and keeps
// the error text: "#< CLIXML" followed by <Objs>, error lines as <S S="Error">.
func filterCLIXML(stderr string) string {
	if !strings.Contains(stderr, "#< CLIXML") {
		return strings.TrimSpace(stderr)
	}
	var b strings.Builder
	for _, m := range clixmlString.FindAllStringSubmatch(stderr, -1) {
		b.WriteString(clixmlEscape.ReplaceAllStringFunc(m[1], func(s string) string {
			n, err := strconv.ParseUint(s[2:6], 16, 16)
			if err != nil {
				return s
			}
			return string(rune(n))
		}))
	}
	s := strings.NewReplacer("&lt;", "<", "&gt;", ">", "&quot;", `"`, "&apos;", "'", "&amp;", "&").Replace(b.String())
	return strings.TrimSpace(s)
}

// ensure the scripts package is the one source of command lines.
var _ = scripts.Command
