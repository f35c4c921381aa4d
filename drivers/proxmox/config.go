package proxmox

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/droverhq/drover/drivers"
	"github.com/droverhq/drover/drivers/updaters"
)

func init() {
	drivers.Register(drivers.Info{Name: "proxmox", NewConfig: func() drivers.Config { return NewConfig() }, NodeShell: true})
}

// Config is the driver's section, cluster.proxmox.
type Config struct {
	// Endpoints are API base URLs (https://HOST:8006), tried in order.
	Endpoints []string `mapstructure:"endpoints"`
	// TokenID is the API token, USER@REALM!TOKENID.
	TokenID string `mapstructure:"token_id"`
	// TokenSecretEnv names the environment variable holding the token's secret; the
	// secret is never read from the config file.
	TokenSecretEnv string `mapstructure:"token_secret_env"`
	// CAFile, Fingerprint (SHA-256 of the node certificate, hex with colons) or
	// Insecure: how the API's TLS certificate is checked. Default: the system's CAs.
	CAFile      string `mapstructure:"ca_file"`
	Fingerprint string `mapstructure:"fingerprint"`
	Insecure    bool   `mapstructure:"insecure"`
	// SSH logs in to the nodes for HA maintenance, apt and Ceph noout.
	SSH *updaters.SSHConfig `mapstructure:"ssh"`
	// Nodes maps every PVE node name to its SSH address (host or host:port).
	Nodes map[string]string `mapstructure:"nodes"`
	// CephNoout: auto (set noout around a reboot when the cluster runs Ceph), always,
	// never.
	CephNoout string `mapstructure:"ceph_noout"`
	// PollInterval is how often tasks, HA state and readiness are read (default 2s).
	PollInterval time.Duration `mapstructure:"poll_interval"`
	// MaintenanceTimeout bounds the wait for HA to confirm maintenance and move its
	// guests off a node (default 30m).
	MaintenanceTimeout time.Duration `mapstructure:"maintenance_timeout"`
	// RequestTimeout bounds one API request (default 30s).
	RequestTimeout time.Duration `mapstructure:"request_timeout"`
}

// NewConfig returns the defaults.
func NewConfig() *Config {
	return &Config{CephNoout: "auto", PollInterval: 2 * time.Second, MaintenanceTimeout: 30 * time.Minute, RequestTimeout: 30 * time.Second}
}

// String keeps the secret's variable out of nothing and the secret out of everything:
// the config holds no secret, only the variable's name.
func (c Config) String() string {
	return fmt.Sprintf("proxmox{endpoints=%v token_id=%s nodes=%d}", c.Endpoints, c.TokenID, len(c.Nodes))
}

var (
	tokenIDRe  = regexp.MustCompile(`^[^\s:/@!]+@[A-Za-z][A-Za-z0-9.\-_]+![A-Za-z][A-Za-z0-9.\-_]+$`)
	nodeNameRe = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?$`)
	fpRe       = regexp.MustCompile(`^([0-9A-Fa-f]{2}:){31}[0-9A-Fa-f]{2}$`)
	envNameRe  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// Validate checks the section without network I/O; fields are relative to it.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Endpoints) == 0 {
		errs = append(errs, drivers.Fieldf("endpoints", "list the API URLs of two or more nodes, e.g. [https://pve1.example:8006, https://pve2.example:8006]", "no endpoints configured"))
	}
	for i, e := range c.Endpoints {
		if problem := endpointProblem(e); problem != "" {
			errs = append(errs, drivers.Fieldf(fmt.Sprintf("endpoints[%d]", i), "use https://HOST:8006 (the API path /api2/json is added by Drover)", "%s", problem))
		}
	}
	if !tokenIDRe.MatchString(c.TokenID) {
		errs = append(errs, drivers.Fieldf("token_id", "use USER@REALM!TOKENID, e.g. drover@pve!rolling (pveum user token add drover@pve rolling)", "invalid API token id %q", c.TokenID))
	}
	switch {
	case c.TokenSecretEnv == "":
		errs = append(errs, drivers.Fieldf("token_secret_env", "name the environment variable holding the token's secret, e.g. token_secret_env: DROVER_PVE_TOKEN", "required"))
	case !envNameRe.MatchString(c.TokenSecretEnv):
		errs = append(errs, drivers.Fieldf("token_secret_env", "give the variable's name, not its value", "not an environment variable name"))
	case os.Getenv(c.TokenSecretEnv) == "":
		errs = append(errs, drivers.Fieldf("token_secret_env", "export "+c.TokenSecretEnv+" with the token's secret before starting drover", "environment variable %s is empty or unset", c.TokenSecretEnv))
	}
	tlsModes := 0
	for _, set := range []bool{c.CAFile != "", c.Fingerprint != "", c.Insecure} {
		if set {
			tlsModes++
		}
	}
	if tlsModes > 1 {
		errs = append(errs, drivers.Fieldf("ca_file", "set one of ca_file, fingerprint or insecure", "several TLS checks configured"))
	}
	if c.Fingerprint != "" && !fpRe.MatchString(c.Fingerprint) {
		errs = append(errs, drivers.Fieldf("fingerprint", "give the SHA-256 fingerprint as 32 hex pairs separated by colons (pvenode cert info)", "invalid fingerprint"))
	}
	if c.SSH == nil {
		errs = append(errs, drivers.Fieldf("ssh", "add ssh: {user: root, key_file: ..., known_hosts: ...}: HA maintenance has no API and runs over SSH", "required"))
	} else {
		errs = append(errs, drivers.PrefixFields("ssh", c.SSH.Validate()))
	}
	if len(c.Nodes) == 0 {
		errs = append(errs, drivers.Fieldf("nodes", "map every node to its SSH address, e.g. nodes: {pve1: 10.0.0.11}", "no nodes configured"))
	}
	for name, addr := range c.Nodes {
		f := "nodes." + name
		if !nodeNameRe.MatchString(name) {
			errs = append(errs, drivers.Fieldf(f, "use the node's name as PVE shows it (pvecm nodes)", "invalid node name"))
		}
		if strings.TrimSpace(addr) == "" {
			errs = append(errs, drivers.Fieldf(f, "give the node's SSH address, host or host:port", "empty address"))
		} else if _, _, err := net.SplitHostPort(addr); err != nil && strings.Contains(addr, ":") && net.ParseIP(addr) == nil {
			errs = append(errs, drivers.Fieldf(f, "give host or host:port", "invalid address %q", addr))
		}
	}
	switch c.CephNoout {
	case "auto", "always", "never":
	default:
		errs = append(errs, drivers.Fieldf("ceph_noout", "use auto, always or never", "invalid value %q", c.CephNoout))
	}
	for _, d := range []struct {
		field string
		v     time.Duration
	}{{"poll_interval", c.PollInterval}, {"maintenance_timeout", c.MaintenanceTimeout}, {"request_timeout", c.RequestTimeout}} {
		if d.v <= 0 {
			errs = append(errs, drivers.Fieldf(d.field, "use a positive duration such as 30s", "must be positive, got %s", d.v))
		}
	}
	return errors.Join(errs...)
}

// Open builds the client and checks the token, TLS and node names against the
// cluster: a bad token or certificate fails here, naming the key to fix.
func (c *Config) Open(ctx context.Context, env drivers.Env) (drivers.Driver, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	d, err := open(ctx, *c, env)
	if err != nil {
		// The caller prefixes Validate's fields, not Open's: name the whole key.
		return nil, drivers.PrefixFields("cluster.proxmox", err)
	}
	return d, nil
}

// endpointProblem says what is wrong with an endpoint, or "". It never repeats the
// endpoint: one mistyped around its user info may carry a password.
func endpointProblem(e string) string {
	u, err := drivers.ParseURL(e)
	switch {
	case err != nil:
		return "not a URL: " + err.Error()
	case u.Scheme != "https":
		return "not an https URL"
	case u.User != nil:
		return "user info in the URL (the API token authenticates; remove it)"
	case u.Host == "":
		return "no host"
	case u.Path != "" && u.Path != "/":
		return "a path after the host (give the base URL only)"
	case u.RawQuery != "" || u.Fragment != "":
		return "a query or fragment after the host (give the base URL only)"
	}
	return ""
}
