package config

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/droverhq/drover/drivers"
)

// HA is the section that makes `drover serve` highly available (ha:): the run
// store lives in etcd, and the replicas elect one leader that runs the clusters.
type HA struct {
	Etcd HAEtcd `mapstructure:"etcd"`
	// LeaseTTL is the leader's lease: a leader that dies is replaced after about
	// this long (at most 2 x lease_ttl).
	LeaseTTL time.Duration `mapstructure:"lease_ttl"`
	// Replica is this replica's name (default: the host name).
	Replica string `mapstructure:"replica"`
}

// HAEtcd is how to reach etcd (ha.etcd).
type HAEtcd struct {
	Endpoints []string `mapstructure:"endpoints"`
	Prefix    string   `mapstructure:"prefix"`
	TLS       HATLS    `mapstructure:"tls"`
	Username  string   `mapstructure:"username"`
	// PasswordEnv names the environment variable that holds the password: the
	// password itself never appears in the config.
	PasswordEnv string `mapstructure:"password_env"`
	// Password is read from PasswordEnv by Validate; never printed.
	Password string `mapstructure:"-"`
}

// HATLS are the PEM files of the client's TLS to etcd (ha.etcd.tls).
type HATLS struct {
	CAFile   string `mapstructure:"ca_file"`
	CertFile string `mapstructure:"cert_file"`
	KeyFile  string `mapstructure:"key_file"`
}

// HA defaults and bounds.
const (
	DefaultLeaseTTL = 10 * time.Second
	DefaultHAPrefix = "/drover"
	// MinLeaseTTL: shorter, a GC pause or a busy host deposes a healthy leader, and
	// etcd's own leader election (1 s by default) no longer fits inside it.
	MinLeaseTTL = 3 * time.Second
	// MaxLeaseTTL: longer, a dead leader leaves its cluster's run stalled for minutes.
	MaxLeaseTTL = 5 * time.Minute
)

// unset: no key of the section is set (the defaults are all empty).
func (h HA) unset() bool {
	return len(h.Etcd.Endpoints) == 0 && h.Etcd.Prefix == "" && h.Etcd.TLS == (HATLS{}) && h.Etcd.Username == "" &&
		h.Etcd.PasswordEnv == "" && h.LeaseTTL == 0 && h.Replica == ""
}

var replicaName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// HAConfig validates the ha section (nil when there is none) and fills its
// defaults; getenv reads the password (os.Getenv when nil). Paths resolve against
// the config's folder.
func (c *Config) HAConfig(getenv func(string) string) (*HA, error) {
	if c.HA.unset() {
		return nil, nil
	}
	if getenv == nil {
		getenv = os.Getenv
	}
	h := c.HA
	h.Etcd.Endpoints = append([]string(nil), h.Etcd.Endpoints...)
	var errs []error
	if len(h.Etcd.Endpoints) == 0 {
		errs = append(errs, drivers.Fieldf("ha.etcd.endpoints", "list the client URLs of your etcd members, e.g. [https://10.0.0.1:2379, https://10.0.0.2:2379, https://10.0.0.3:2379]", "not set"))
	}
	tlsSet := h.Etcd.TLS != (HATLS{})
	for i, ep := range h.Etcd.Endpoints {
		key := fmt.Sprintf("ha.etcd.endpoints[%d]", i)
		u, err := url.Parse(ep)
		switch {
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Port() == "":
			errs = append(errs, drivers.Fieldf(key, "write a client URL such as https://10.0.0.1:2379", "not an http(s)://HOST:PORT URL"))
		case u.User != nil:
			errs = append(errs, drivers.Fieldf(key, "remove the user from the URL; set ha.etcd.username and ha.etcd.password_env", "carries user information"))
		case u.Path != "" && u.Path != "/":
			errs = append(errs, drivers.Fieldf(key, "write only scheme, host and port; keys go under ha.etcd.prefix", "has a path"))
		case tlsSet && u.Scheme != "https":
			errs = append(errs, drivers.Fieldf(key, "use https:// with ha.etcd.tls, or remove ha.etcd.tls", "is http while ha.etcd.tls is set"))
		}
	}
	if h.Etcd.Prefix == "" {
		h.Etcd.Prefix = DefaultHAPrefix
	}
	if !strings.HasPrefix(h.Etcd.Prefix, "/") || strings.TrimRight(h.Etcd.Prefix, "/") == "" || strings.Contains(h.Etcd.Prefix, "//") {
		errs = append(errs, drivers.Fieldf("ha.etcd.prefix", "use an absolute key prefix of its own such as /drover/prod", "%q is not a usable prefix", h.Etcd.Prefix))
	}
	for _, f := range []struct{ key, path string }{{"ha.etcd.tls.ca_file", h.Etcd.TLS.CAFile}, {"ha.etcd.tls.cert_file", h.Etcd.TLS.CertFile}, {"ha.etcd.tls.key_file", h.Etcd.TLS.KeyFile}} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(c.resolve(f.path)); err != nil {
			errs = append(errs, drivers.Fieldf(f.key, "give the path of a readable PEM file", "cannot read %s", f.path))
		}
	}
	if (h.Etcd.TLS.CertFile == "") != (h.Etcd.TLS.KeyFile == "") {
		errs = append(errs, drivers.Fieldf("ha.etcd.tls", "set both cert_file and key_file (client certificate), or neither", "only one of cert_file and key_file is set"))
	}
	switch {
	case h.Etcd.PasswordEnv != "" && h.Etcd.Username == "":
		errs = append(errs, drivers.Fieldf("ha.etcd.username", "set the etcd user the password belongs to", "not set, while ha.etcd.password_env is"))
	case h.Etcd.Username != "" && h.Etcd.PasswordEnv == "":
		errs = append(errs, drivers.Fieldf("ha.etcd.password_env", "name the environment variable that holds the etcd password, e.g. DROVER_ETCD_PASSWORD", "not set, while ha.etcd.username is"))
	case h.Etcd.PasswordEnv != "":
		if h.Etcd.Password = getenv(h.Etcd.PasswordEnv); h.Etcd.Password == "" {
			errs = append(errs, drivers.Fieldf("ha.etcd.password_env", "export the password in that variable before starting drover", "environment variable %s is not set or empty", h.Etcd.PasswordEnv))
		}
	}
	switch {
	case h.LeaseTTL == 0:
		h.LeaseTTL = DefaultLeaseTTL
	case h.LeaseTTL < MinLeaseTTL:
		errs = append(errs, drivers.Fieldf("ha.lease_ttl", fmt.Sprintf("use at least %s (default %s)", MinLeaseTTL, DefaultLeaseTTL), "%s is too short to be safe: a pause of the leader's process or host would depose it for nothing", h.LeaseTTL))
	case h.LeaseTTL > MaxLeaseTTL:
		errs = append(errs, drivers.Fieldf("ha.lease_ttl", fmt.Sprintf("use at most %s (default %s)", MaxLeaseTTL, DefaultLeaseTTL), "%s would leave a dead leader's run stalled that long", h.LeaseTTL))
	case h.LeaseTTL%time.Second != 0:
		errs = append(errs, drivers.Fieldf("ha.lease_ttl", "use whole seconds, e.g. 10s", "%s: etcd leases count whole seconds", h.LeaseTTL))
	}
	if h.Replica == "" {
		host, err := os.Hostname()
		if err != nil {
			errs = append(errs, drivers.Fieldf("ha.replica", "name this replica, e.g. drover-a", "not set, and the host name cannot be read: %v", err))
		}
		h.Replica = host
	}
	if h.Replica != "" && !replicaName.MatchString(h.Replica) {
		errs = append(errs, drivers.Fieldf("ha.replica", "use letters, digits, '.', '_' and '-' (at most 63), e.g. drover-a", "%q is not a usable replica name", h.Replica))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	for _, p := range []*string{&h.Etcd.TLS.CAFile, &h.Etcd.TLS.CertFile, &h.Etcd.TLS.KeyFile} {
		if *p != "" {
			*p = c.resolve(*p)
		}
	}
	return &h, nil
}
