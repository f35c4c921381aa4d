package hyperv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/droverhq/drover/drivers"
)

func init() {
	drivers.Register(drivers.Info{Name: "hyperv", NewConfig: func() drivers.Config { return NewConfig() }})
}

// Config is the driver's config section (cluster.hyperv).
type Config struct {
	// Cluster is the failover cluster's name; inventory checks the nodes belong to it.
	Cluster string `mapstructure:"cluster"`
	// Nodes are the nodes' management addresses (host or host:port).
	Nodes []string `mapstructure:"nodes"`
	// Transport is winrm (default) or ssh.
	Transport string      `mapstructure:"transport"`
	WinRM     WinRMConfig `mapstructure:"winrm"`
	SSH       SSHConfig   `mapstructure:"ssh"`
	// Drain is drover (Drover's own bounded moves, default) or cluster
	// (Suspend-ClusterNode -Drain, DrainStatus polled).
	Drain string `mapstructure:"drain"`
	// Failback is what Resume-ClusterNode does with the roles that left the node:
	// NoFailback (default: Drover's failback policy decides) or Immediate or Policy.
	Failback string `mapstructure:"failback"`
	// CommandTimeout bounds one script run (default 2m).
	CommandTimeout time.Duration `mapstructure:"command_timeout"`
	// MigrationTimeout cancels a live migration that has not finished (default 15m).
	MigrationTimeout time.Duration `mapstructure:"migration_timeout"`
	// PollInterval is how often a migration or drain is polled (default 2s).
	PollInterval time.Duration `mapstructure:"poll_interval"`
	// RebootDelay is the delay shutdown.exe /r /t waits, so the command returns before
	// the host goes down (default 5s).
	RebootDelay time.Duration `mapstructure:"reboot_delay"`
}

// WinRMConfig is how Drover reaches the nodes' WinRM listeners.
type WinRMConfig struct {
	Port  int  `mapstructure:"port"`
	HTTPS bool `mapstructure:"https"`
	// Auth is ntlm (default), basic (local accounts, HTTPS only), kerberos or certificate.
	Auth     string `mapstructure:"auth"`
	Username string `mapstructure:"username"`
	// PasswordEnv names the environment variable holding the password; a password is
	// never written in the config.
	PasswordEnv string `mapstructure:"password_env"`
	// CAFile verifies the listeners' certificates (default: the system's roots).
	CAFile string `mapstructure:"ca_file"`
	// TLSServerName overrides the name checked in the certificate.
	TLSServerName string `mapstructure:"tls_server_name"`
	// CertFile and KeyFile are a client certificate (auth: certificate).
	CertFile string `mapstructure:"cert_file"`
	KeyFile  string `mapstructure:"key_file"`
	// Kerberos (auth: kerberos): realm, krb5.conf and an optional credential cache.
	Realm     string `mapstructure:"realm"`
	KrbConfig string `mapstructure:"krb5_conf"`
	KrbCCache string `mapstructure:"krb5_ccache"`
	SPN       string `mapstructure:"spn"`
	// OperationTimeout is the WS-Man OperationTimeout of a Receive long poll (default 60s).
	OperationTimeout time.Duration `mapstructure:"operation_timeout"`
	// ConnectTimeout bounds a TCP connect (default 10s): a rebooting host does not
	// answer at all, and readiness is polled.
	ConnectTimeout time.Duration `mapstructure:"connect_timeout"`
}

// SSHConfig is how Drover reaches the nodes' Windows OpenSSH servers. Host keys are
// always checked against known_hosts.
type SSHConfig struct {
	User             string        `mapstructure:"user"`
	Port             int           `mapstructure:"port"`
	KeyFile          string        `mapstructure:"key_file"`
	KeyPassphraseEnv string        `mapstructure:"key_passphrase_env"`
	PasswordEnv      string        `mapstructure:"password_env"`
	KnownHosts       string        `mapstructure:"known_hosts"`
	ConnectTimeout   time.Duration `mapstructure:"connect_timeout"`
}

// NewConfig returns the defaults.
func NewConfig() *Config {
	return &Config{
		Transport:        "winrm",
		WinRM:            WinRMConfig{Port: 5986, HTTPS: true, Auth: "ntlm", OperationTimeout: 60 * time.Second, ConnectTimeout: 10 * time.Second},
		SSH:              SSHConfig{Port: 22, ConnectTimeout: 15 * time.Second},
		Drain:            "drover",
		Failback:         "NoFailback",
		CommandTimeout:   2 * time.Minute,
		MigrationTimeout: 15 * time.Minute,
		PollInterval:     2 * time.Second,
		RebootDelay:      5 * time.Second,
	}
}

// Validate checks the config without I/O; fields are relative to the driver's section.
func (c *Config) Validate() error {
	var errs []error
	add := func(field, fix, problem string, args ...any) {
		errs = append(errs, drivers.Fieldf(field, fix, problem, args...))
	}
	if len(c.Nodes) == 0 {
		add("nodes", "list the nodes' management addresses: nodes: [hv1.corp.example, hv2.corp.example]", "no nodes configured")
	}
	seen := map[string]bool{}
	for i, n := range c.Nodes {
		f := fmt.Sprintf("nodes[%d]", i)
		if _, err := splitAddr(n, 1); err != nil {
			add(f, "give a host name or address, optionally with :port", "%v", err)
		}
		if seen[strings.ToLower(n)] {
			add(f, "list every node once", "duplicate node %q", n)
		}
		seen[strings.ToLower(n)] = true
	}
	switch c.Drain {
	case "drover", "cluster":
	default:
		add("drain", "use drover (Drover's own bounded live migrations) or cluster (Suspend-ClusterNode -Drain)", "unknown drain %q", c.Drain)
	}
	switch c.Failback {
	case "NoFailback", "Immediate", "Policy":
	default:
		add("failback", "use NoFailback, Immediate or Policy (Resume-ClusterNode -Failback)", "unknown failback %q", c.Failback)
	}
	switch c.Transport {
	case "winrm":
		errs = append(errs, drivers.PrefixFields("winrm", c.WinRM.validate()))
	case "ssh":
		errs = append(errs, drivers.PrefixFields("ssh", c.SSH.validate()))
	default:
		add("transport", "use winrm or ssh", "unknown transport %q", c.Transport)
	}
	for _, d := range []struct {
		field string
		v     time.Duration
	}{{"command_timeout", c.CommandTimeout}, {"migration_timeout", c.MigrationTimeout}, {"poll_interval", c.PollInterval}} {
		if d.v <= 0 {
			add(d.field, "use a positive duration such as 30s", "must be positive, got %s", d.v)
		}
	}
	if c.RebootDelay < time.Second || c.RebootDelay > 10*time.Minute {
		add("reboot_delay", "use a duration between 1s and 10m, e.g. 5s", "out of range: %s", c.RebootDelay)
	}
	return errors.Join(errs...)
}

func (w WinRMConfig) validate() error {
	var errs []error
	add := func(field, fix, problem string, args ...any) {
		errs = append(errs, drivers.Fieldf(field, fix, problem, args...))
	}
	if w.Port < 1 || w.Port > 65535 {
		add("port", "use 5986 (HTTPS) or 5985 (HTTP)", "out of range: %d", w.Port)
	}
	switch w.Auth {
	case "ntlm", "kerberos":
		if w.Username == "" {
			add("username", `set the account, e.g. username: 'CORP\drover'`, "required with auth %s", w.Auth)
		}
		if w.Auth == "ntlm" && w.PasswordEnv == "" {
			add("password_env", "name the environment variable that holds the password, e.g. password_env: DROVER_HYPERV_PASSWORD", "required with auth ntlm")
		}
		if w.Auth == "kerberos" && w.Realm == "" {
			add("realm", "set the Kerberos realm, e.g. realm: CORP.EXAMPLE", "required with auth kerberos")
		}
		if w.Auth == "kerberos" && !w.HTTPS {
			add("https", "set https: true: Kerberos over HTTP needs message encryption masterzen/winrm does not do", "kerberos needs HTTPS")
		}
	case "basic":
		if !w.HTTPS {
			add("https", "set https: true: Basic over HTTP sends the password in clear text", "basic auth needs HTTPS")
		}
		if w.Username == "" {
			add("username", "set a local account, e.g. username: drover", "required with auth basic")
		}
		if w.PasswordEnv == "" {
			add("password_env", "name the environment variable that holds the password", "required with auth basic")
		}
	case "certificate":
		if !w.HTTPS {
			add("https", "set https: true: client certificates need TLS", "certificate auth needs HTTPS")
		}
		if w.CertFile == "" || w.KeyFile == "" {
			add("cert_file", "set cert_file and key_file to the client certificate and its key (PEM)", "required with auth certificate")
		}
	default:
		add("auth", "use ntlm, basic, kerberos or certificate", "unknown auth %q", w.Auth)
	}
	if w.CAFile != "" && !w.HTTPS {
		add("ca_file", "remove ca_file or set https: true", "ca_file without https")
	}
	if w.ConnectTimeout <= 0 {
		add("connect_timeout", "use a positive duration such as 10s", "must be positive, got %s", w.ConnectTimeout)
	}
	if w.OperationTimeout < time.Second {
		add("operation_timeout", "use a duration such as 60s", "must be at least 1s, got %s", w.OperationTimeout)
	}
	return errors.Join(errs...)
}

func (s SSHConfig) validate() error {
	var errs []error
	add := func(field, fix, problem string, args ...any) {
		errs = append(errs, drivers.Fieldf(field, fix, problem, args...))
	}
	if s.User == "" {
		add("user", `set the account, e.g. user: 'CORP\drover'`, "required")
	}
	if s.Port < 1 || s.Port > 65535 {
		add("port", "use 22 or the port of the nodes' OpenSSH server", "out of range: %d", s.Port)
	}
	if s.KeyFile == "" && s.PasswordEnv == "" {
		add("key_file", "set key_file (preferred) or password_env", "no authentication method configured")
	}
	if s.KnownHosts == "" {
		add("known_hosts", "point known_hosts to a file with the nodes' host keys (ssh-keyscan NODE >> FILE); host keys are always checked", "required")
	}
	if s.ConnectTimeout <= 0 {
		add("connect_timeout", "use a positive duration such as 15s", "must be positive")
	}
	return errors.Join(errs...)
}

// password reads the password from the environment variable named at field.
func passwordFrom(env, field string) (string, error) {
	if env == "" {
		return "", nil
	}
	pw, ok := os.LookupEnv(env)
	if !ok || pw == "" {
		return "", drivers.Fieldf(field, "export "+env+" with the account's password before starting drover", "environment variable %s is not set", env)
	}
	return pw, nil
}

// splitAddr returns host:port, with defPort when addr has no port.
func splitAddr(addr string, defPort int) (string, error) {
	addr = strings.TrimSpace(addr)
	if addr == "" {
		return "", errors.New("empty address")
	}
	if strings.ContainsAny(addr, "/ \\@") {
		return "", fmt.Errorf("%q is not a host name or address", addr)
	}
	if h, p, err := net.SplitHostPort(addr); err == nil {
		n, perr := strconv.Atoi(p)
		if h == "" || perr != nil || n < 1 || n > 65535 {
			return "", fmt.Errorf("bad host:port %q", addr)
		}
		return addr, nil
	}
	return net.JoinHostPort(addr, strconv.Itoa(defPort)), nil
}

// Open validates and builds the driver; it connects to nothing yet, so one node being
// down does not stop Drover from starting.
func (c *Config) Open(ctx context.Context, env drivers.Env) (drivers.Driver, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return newDriver(ctx, *c, env, nil)
}
