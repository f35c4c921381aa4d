package vsphere

import (
	"context"
	"errors"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/droverhq/drover/drivers"
)

func init() {
	drivers.Register(drivers.Info{Name: "vsphere", NewConfig: func() drivers.Config { return NewConfig() }})
	drivers.RegisterUpdater(drivers.UpdaterInfo{Name: "esxcli", NewConfig: func() drivers.UpdaterConfig { return NewEsxcliConfig() }})
}

// Config is the driver's config section (cluster.vsphere).
type Config struct {
	// URL is vCenter's SDK endpoint, https://vcenter.example.com/sdk (http:// only for
	// simulators, with a warning).
	URL string `mapstructure:"url"`
	// Username logs in, e.g. drover@vsphere.local.
	Username string `mapstructure:"username"`
	// PasswordEnv names the environment variable holding the password. The password
	// itself is never read from the file.
	PasswordEnv string `mapstructure:"password_env"`
	// Insecure skips TLS verification (labs only); CAFile trusts a CA bundle (PEM);
	// Thumbprint pins vCenter's certificate by its SHA-1 or SHA-256 thumbprint.
	Insecure   bool   `mapstructure:"insecure"`
	CAFile     string `mapstructure:"ca_file"`
	Thumbprint string `mapstructure:"thumbprint"`
	// Datacenter and Cluster name the cluster Drover works on.
	Datacenter string `mapstructure:"datacenter"`
	Cluster    string `mapstructure:"cluster"`
	// MaintenanceTimeout bounds the wait for a host to reach maintenance mode before
	// its reboot (default 30m).
	MaintenanceTimeout time.Duration `mapstructure:"maintenance_timeout"`
	// MigrationTimeout cancels a vMotion that has not finished (default 1h).
	MigrationTimeout time.Duration `mapstructure:"migration_timeout"`
	// PollInterval is how often a task's progress is read (default 500ms).
	PollInterval time.Duration `mapstructure:"poll_interval"`
	// CallTimeout bounds one API call or one inventory read (default 1m).
	CallTimeout time.Duration `mapstructure:"call_timeout"`
	// HoldDRS sets the cluster's DRS automation to manual while Drover has hosts
	// paused, and restores it afterwards (default true).
	HoldDRS bool `mapstructure:"hold_drs"`
}

// NewConfig returns the defaults.
func NewConfig() *Config {
	return &Config{
		MaintenanceTimeout: 30 * time.Minute,
		MigrationTimeout:   time.Hour,
		PollInterval:       500 * time.Millisecond,
		CallTimeout:        time.Minute,
		HoldDRS:            true,
	}
}

var (
	envNameRE    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	thumbprintRE = regexp.MustCompile(`^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){19}$|^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){31}$`)
)

// Validate checks the config without I/O; fields are relative to the section.
func (c *Config) Validate() error {
	var errs []error
	if _, err := c.parseURL(); err != nil {
		errs = append(errs, err)
	}
	if strings.TrimSpace(c.Username) == "" {
		errs = append(errs, drivers.Fieldf("username", "set the vCenter login, e.g. drover@vsphere.local", "required"))
	}
	switch {
	case c.PasswordEnv == "":
		errs = append(errs, drivers.Fieldf("password_env", "name the environment variable that holds the password, e.g. DROVER_VSPHERE_PASSWORD", "required"))
	case !envNameRE.MatchString(c.PasswordEnv):
		errs = append(errs, drivers.Fieldf("password_env", "give the variable's name (letters, digits, _), not the password", "not an environment variable name"))
	}
	n := 0
	for _, set := range []bool{c.Insecure, c.CAFile != "", c.Thumbprint != ""} {
		if set {
			n++
		}
	}
	if n > 1 {
		errs = append(errs, drivers.Fieldf("insecure", "set only one of insecure, ca_file, thumbprint", "conflicting TLS settings"))
	}
	if c.Thumbprint != "" && !thumbprintRE.MatchString(c.Thumbprint) {
		errs = append(errs, drivers.Fieldf("thumbprint", "give the certificate's SHA-1 or SHA-256 thumbprint as hex pairs separated by colons (AB:CD:...)", "not a thumbprint"))
	}
	if strings.TrimSpace(c.Datacenter) == "" {
		errs = append(errs, drivers.Fieldf("datacenter", "name the datacenter that holds the cluster, e.g. DC0", "required"))
	}
	if strings.TrimSpace(c.Cluster) == "" {
		errs = append(errs, drivers.Fieldf("cluster", "name the vSphere cluster to patch, e.g. DC0_C0", "required"))
	}
	for _, d := range []struct {
		field string
		v     time.Duration
	}{
		{"maintenance_timeout", c.MaintenanceTimeout}, {"migration_timeout", c.MigrationTimeout},
		{"poll_interval", c.PollInterval}, {"call_timeout", c.CallTimeout},
	} {
		if d.v <= 0 {
			errs = append(errs, drivers.Fieldf(d.field, "use a positive duration such as 30s", "must be positive, got %s", d.v))
		}
	}
	return errors.Join(errs...)
}

// parseURL checks url. Errors never repeat the URL: a mistyped one may carry a password.
func (c *Config) parseURL() (*url.URL, error) {
	const fix = "use vCenter's SDK URL, e.g. https://vcenter.example.com/sdk"
	if strings.TrimSpace(c.URL) == "" {
		return nil, drivers.Fieldf("url", fix, "required")
	}
	u, err := drivers.ParseURL(c.URL)
	if err != nil {
		return nil, drivers.Fieldf("url", fix, "not a URL: %v", err)
	}
	switch {
	case u.Scheme != "https" && u.Scheme != "http":
		return nil, drivers.Fieldf("url", fix, "scheme %q: use https (http only for simulators)", u.Scheme)
	case u.Hostname() == "":
		return nil, drivers.Fieldf("url", fix, "no host")
	case u.User != nil:
		return nil, drivers.Fieldf("url", "remove the user info; use username and password_env", "user info in the URL")
	case u.RawQuery != "" || u.Fragment != "":
		return nil, drivers.Fieldf("url", fix, "no query or fragment allowed")
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/sdk"
	}
	return u, nil
}

// Open logs in to vCenter and finds the cluster.
func (c *Config) Open(ctx context.Context, env drivers.Env) (drivers.Driver, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	cfg := *c
	if cfg.CAFile != "" && !filepath.IsAbs(cfg.CAFile) && env.BaseDir != "" {
		cfg.CAFile = filepath.Join(env.BaseDir, cfg.CAFile)
	}
	return open(ctx, cfg, env)
}
