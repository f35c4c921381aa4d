package config

import (
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/droverhq/drover/cmd/drover/internal/limits"
	"github.com/droverhq/drover/drivers"
	"github.com/droverhq/drover/orchestrator"
	"github.com/droverhq/drover/orchestrator/schedule"
	"github.com/droverhq/drover/policies"
)

// DefaultListen is the daemon's default address: loopback only.
const DefaultListen = "127.0.0.1:8086"

// Server is the daemon's section (server:).
type Server struct {
	// Listen is host:port; a non-loopback host needs TLS and tokens.
	Listen string `mapstructure:"listen"`
	// Tokens are the API's bearer tokens, stored as SHA-256 digests.
	Tokens []Token `mapstructure:"tokens"`
	TLS    TLS     `mapstructure:"tls"`
	// ScanCache is how long a viewer's plan, preview or analyze answer is reused
	// before the cluster is scanned again (0 = the default; negative = never reuse).
	ScanCache time.Duration `mapstructure:"scan_cache"`
	// MaxEventClients caps the live event streams open at once.
	MaxEventClients int `mapstructure:"max_event_clients"`
}

// Defaults of the daemon's limits.
const (
	DefaultScanCache       = time.Minute
	DefaultMaxEventClients = 64
)

// Token is one API token: `sha256` is the hex SHA-256 digest of the secret token
// (printf %s "$TOKEN" | sha256sum), never the token itself.
type Token struct {
	Name   string `mapstructure:"name"`
	Role   string `mapstructure:"role"`
	SHA256 string `mapstructure:"sha256"`
}

// Token roles: a viewer reads, an operator also starts, stops, resumes and approves.
const (
	RoleViewer   = "viewer"
	RoleOperator = "operator"
)

// TLS holds the certificate and key files (PEM) the API serves HTTPS with.
type TLS struct {
	Cert string `mapstructure:"cert"`
	Key  string `mapstructure:"key"`
}

// Webhook is one notification target (webhooks:).
type Webhook struct {
	// URL receives a JSON POST per event. It may carry a secret (path or query):
	// Drover never logs or shows more than its scheme and host.
	URL string `mapstructure:"url"`
	// Events to send: run_started, run_resumed, run_finished, node_failed,
	// approval_needed, waiting. Empty = run_started, run_finished, node_failed,
	// approval_needed.
	Events []string `mapstructure:"events"`
	// Timeout of one attempt (default 10s); Retries after a failed attempt (default 4).
	Timeout time.Duration `mapstructure:"timeout"`
	Retries *int          `mapstructure:"retries"`
	// Format of the body: generic (default: Drover's JSON, with a text field),
	// slack or teams (what their incoming webhooks accept).
	Format string `mapstructure:"format"`
}

// WebhookEvents are the event names a webhook may subscribe to.
func WebhookEvents() []string {
	return []string{"run_started", "run_resumed", "run_finished", "node_failed", "approval_needed", "waiting"}
}

// DefaultWebhookEvents are sent when a webhook lists none.
func DefaultWebhookEvents() []string {
	return []string{"run_started", "run_finished", "node_failed", "approval_needed"}
}

// ClusterEntry is one cluster of the multi-cluster form (clusters:).
type ClusterEntry struct {
	Name    string         `mapstructure:"name"`
	Driver  string         `mapstructure:"driver"`
	Updater map[string]any `mapstructure:"updater"`
	// Policy overrides keys of the top-level policy for this cluster.
	Policy map[string]any `mapstructure:"policy"`
	// Schedule and Windows default to the top-level ones.
	Schedule *schedule.Spec        `mapstructure:"schedule"`
	Windows  []policies.WindowSpec `mapstructure:"windows"`
	// Sections holds the driver's section (sim, libvirt, ...).
	Sections map[string]any `mapstructure:",remain"`
}

// ServeCluster is one cluster as the daemon runs it, every section validated.
type ServeCluster struct {
	Name        string
	DriverName  string
	Driver      drivers.Config
	UpdaterKind string
	Updater     drivers.UpdaterConfig
	Policy      orchestrator.Policy
	Schedule    *schedule.Schedule
	// Paused is the schedule's initial pause switch.
	Paused  bool
	Windows schedule.Windows
	// WindowSpecs are the windows as configured, for the API.
	WindowSpecs []policies.WindowSpec
}

// Serve is the daemon's validated configuration.
type Serve struct {
	State    string
	Server   Server
	Clusters []ServeCluster
	Webhooks []Webhook
	// TLS is loaded when server.tls is set.
	TLS *tls.Certificate
}

// clusterPrefix is the config key of cluster i's section.
func (c *Config) clusterPrefix(i int) string {
	if len(c.Clusters) == 0 {
		return "cluster"
	}
	return fmt.Sprintf("clusters[%d]", i)
}

// Serve validates what the daemon needs: every cluster's driver, update plug-in,
// policy, schedule and windows, the server section and the webhooks. Errors are
// *drivers.FieldError values (joined) naming the key.
func (c *Config) Serve() (*Serve, error) {
	out := &Serve{State: c.State, Server: c.Server, Webhooks: c.Webhooks}
	var errs []error
	if len(c.Clusters) == 0 {
		sc, err := c.serveCluster(-1, c.Cluster, c.Policy, c.Schedule, c.Windows)
		if err != nil {
			errs = append(errs, err)
		} else {
			out.Clusters = append(out.Clusters, sc)
		}
	}
	seen := map[string]bool{}
	for i, e := range c.Clusters {
		prefix := c.clusterPrefix(i)
		if seen[e.Name] {
			errs = append(errs, drivers.Fieldf(prefix+".name", "give every cluster its own name", "cluster %q listed twice", e.Name))
		}
		seen[e.Name] = true
		pol, err := c.clusterPolicy(i)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		spec := c.Schedule
		if e.Schedule != nil {
			spec = *e.Schedule
		}
		windows := c.Windows
		if e.Windows != nil {
			windows = e.Windows
		}
		sc, err := c.serveCluster(i, e.cluster(), pol, spec, windows)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out.Clusters = append(out.Clusters, sc)
	}
	if err := c.validateServer(out); err != nil {
		errs = append(errs, err)
	}
	if err := validateWebhooks(c.Webhooks); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

func (e ClusterEntry) cluster() Cluster {
	return Cluster{Name: e.Name, Driver: e.Driver, Updater: e.Updater, Sections: e.Sections}
}

// serveCluster validates one cluster; i < 0 is the single-cluster form.
func (c *Config) serveCluster(i int, cl Cluster, pol orchestrator.Policy, spec schedule.Spec, windows []policies.WindowSpec) (ServeCluster, error) {
	prefix, schedKey, winKey := "cluster", "schedule", "windows"
	if i >= 0 {
		prefix = c.clusterPrefix(i)
		schedKey, winKey = prefix+".schedule", prefix+".windows"
	}
	one := *c
	one.Cluster = cl
	var errs []error
	sc := ServeCluster{Name: cl.Name, DriverName: cl.Driver, Policy: pol, Paused: spec.Paused, WindowSpecs: windows}
	dc, err := one.DriverConfig()
	if err != nil {
		errs = append(errs, renameFields(err, "cluster", prefix))
	}
	sc.Driver = dc
	if err == nil {
		kind, uc, err := one.UpdaterConfig()
		if err != nil {
			errs = append(errs, renameFields(err, "cluster", prefix))
		}
		sc.UpdaterKind, sc.Updater = kind, uc
	}
	if sc.Schedule, err = schedule.Parse(spec); err != nil {
		errs = append(errs, drivers.PrefixFields(schedKey, err))
	}
	if sc.Windows, err = schedule.ParseWindows(winKey, windows); err != nil {
		errs = append(errs, err)
	}
	return sc, errors.Join(errs...)
}

// clusterPolicy is the top-level policy with cluster i's overrides (and no other
// cluster's), validated.
func (c *Config) clusterPolicy(i int) (orchestrator.Policy, error) {
	over := c.Clusters[i].Policy
	p := clonePolicy(c.topPolicy)
	if len(over) > 0 {
		merged := mergeMaps(c.rawPolicy, over)
		p = orchestrator.DefaultPolicy()
		if err := drivers.Decode(merged, &p); err != nil {
			return p, drivers.PrefixFields(c.clusterPrefix(i)+".policy", err)
		}
		if err := errors.Join(p.Validate(), limits.Policy(p)); err != nil {
			return p, renameFields(err, "policy", c.clusterPrefix(i)+".policy")
		}
	}
	// Programs given by a relative path in the file live next to it, as for the
	// top-level policy (resolvePaths).
	for _, argv := range [][]string{p.PreHook.Command, p.PostHook.Command, p.HealthGate.Command} {
		if len(argv) > 0 && strings.Contains(argv[0], "/") && !filepath.IsAbs(argv[0]) {
			argv[0] = filepath.Join(c.BaseDir, argv[0])
		}
	}
	return p, nil
}

// clonePolicy copies p with its own lists, so that changing one cluster's policy
// (resolving a hook's path) never changes another's.
func clonePolicy(p orchestrator.Policy) orchestrator.Policy {
	p.Nodes = slices.Clone(p.Nodes)
	p.PreHook.Command = slices.Clone(p.PreHook.Command)
	p.PostHook.Command = slices.Clone(p.PostHook.Command)
	p.HealthGate.Command = slices.Clone(p.HealthGate.Command)
	return p
}

// mergeMaps returns base with over's keys on top; nested maps merge, other values
// (lists included) are replaced.
func mergeMaps(base, over map[string]any) map[string]any {
	out := maps.Clone(base)
	if out == nil {
		out = map[string]any{}
	}
	for k, v := range over {
		k = strings.ToLower(k)
		if bm, ok := out[k].(map[string]any); ok {
			if om, ok := v.(map[string]any); ok {
				out[k] = mergeMaps(bm, om)
				continue
			}
		}
		out[k] = v
	}
	return out
}

// renameFields moves FieldErrors under key from to key to ("cluster.sim.url" ->
// "clusters[1].sim.url").
func renameFields(err error, from, to string) error {
	if from == to || err == nil {
		return err
	}
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range joined.Unwrap() {
			out = append(out, renameFields(e, from, to))
		}
		return errors.Join(out...)
	}
	if fe, ok := errors.AsType[*drivers.FieldError](err); ok {
		field := fe.Field
		if field == from || strings.HasPrefix(field, from+".") {
			field = to + strings.TrimPrefix(field, from)
		}
		return &drivers.FieldError{Field: field, Problem: fe.Problem, Fix: fe.Fix}
	}
	return err
}

// IsLoopback reports whether a listen address binds to loopback only.
func IsLoopback(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (c *Config) validateServer(out *Serve) error {
	var errs []error
	bad := func(field, fix, problem string, args ...any) {
		errs = append(errs, drivers.Fieldf(field, fix, problem, args...))
	}
	s := &out.Server
	if s.Listen == "" {
		s.Listen = DefaultListen
	}
	if host, port, err := net.SplitHostPort(s.Listen); err != nil {
		bad("server.listen", "use host:port, e.g. "+DefaultListen, "%q is not host:port", s.Listen)
	} else if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		bad("server.listen", "use a port 0-65535 (0 picks a free one)", "bad port %q", port)
	} else if host == "" {
		bad("server.listen", "name the address to bind, e.g. 127.0.0.1:8086 or 0.0.0.0:8086 (with TLS and tokens)", "no host in %q", s.Listen)
	}
	names, digests := map[string]bool{}, map[string]bool{}
	for i, t := range s.Tokens {
		key := fmt.Sprintf("server.tokens[%d]", i)
		switch {
		case t.Name == "":
			bad(key+".name", "name the token (it shows in logs instead of the token)", "not set")
		case names[t.Name]:
			bad(key+".name", "give every token its own name", "name %q used twice", t.Name)
		}
		names[t.Name] = true
		if t.Role != RoleViewer && t.Role != RoleOperator {
			bad(key+".role", "use viewer (read only) or operator (also start, stop, resume, approve)", "unknown role %q", t.Role)
		}
		d := strings.ToLower(strings.TrimSpace(t.SHA256))
		if b, err := hex.DecodeString(d); err != nil || len(b) != 32 {
			// The value may be a token pasted by mistake: never echo it.
			bad(key+".sha256", `give the hex SHA-256 digest of the token: printf %s "$TOKEN" | sha256sum`, "not a 64-digit hex SHA-256 digest")
		} else if digests[d] {
			bad(key+".sha256", "give every token its own secret", "same digest as another token")
		}
		digests[d] = true
		s.Tokens[i].SHA256 = d
	}
	switch {
	case s.ScanCache == 0:
		s.ScanCache = DefaultScanCache
	case s.ScanCache > time.Hour:
		bad("server.scan_cache", "give a duration up to 1h, e.g. 60s, or -1s to scan on every request", "%s is longer than 1h: answers would describe a cluster long gone", s.ScanCache)
	}
	switch {
	case s.MaxEventClients == 0:
		s.MaxEventClients = DefaultMaxEventClients
	case s.MaxEventClients < 1 || s.MaxEventClients > 10000:
		bad("server.max_event_clients", "give 1 to 10000", "%d out of range", s.MaxEventClients)
	}
	if (s.TLS.Cert == "") != (s.TLS.Key == "") {
		bad("server.tls", "set both server.tls.cert and server.tls.key (PEM files), or neither", "only one of cert and key is set")
	} else if s.TLS.Cert != "" {
		cert, key := c.resolve(s.TLS.Cert), c.resolve(s.TLS.Key)
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			bad("server.tls.cert", "give readable PEM files of a certificate and its private key", "cannot load the key pair: %v", err)
		} else {
			out.TLS = &pair
			s.TLS.Cert, s.TLS.Key = cert, key
		}
	}
	if len(errs) == 0 && !IsLoopback(s.Listen) && (out.TLS == nil || len(s.Tokens) == 0) {
		bad("server.listen", "listen on 127.0.0.1 (the default), or set server.tls.cert, server.tls.key and server.tokens", "%s is not a loopback address: the API would be reachable from the network without TLS and tokens", s.Listen)
	}
	return errors.Join(errs...)
}

// resolve makes a relative path from the config file relative to its folder.
func (c *Config) resolve(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.BaseDir, p)
}

func validateWebhooks(hooks []Webhook) error {
	var errs []error
	bad := func(field, fix, problem string, args ...any) {
		errs = append(errs, drivers.Fieldf(field, fix, problem, args...))
	}
	known := WebhookEvents()
	for i := range hooks {
		h := &hooks[i]
		key := fmt.Sprintf("webhooks[%d]", i)
		// Errors never repeat the URL: it may carry a secret.
		if u, err := url.Parse(h.URL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			bad(key+".url", "give an http:// or https:// URL", "not a valid http(s) URL")
		}
		if len(h.Events) == 0 {
			h.Events = DefaultWebhookEvents()
		}
		for j, ev := range h.Events {
			if !slices.Contains(known, ev) {
				bad(fmt.Sprintf("%s.events[%d]", key, j), "use "+strings.Join(known, ", "), "unknown event %q", ev)
			}
		}
		switch h.Format {
		case "":
			h.Format = "generic"
		case "generic", "slack", "teams":
		default:
			bad(key+".format", "use generic, slack or teams", "unknown format %q", h.Format)
		}
		if h.Timeout == 0 {
			h.Timeout = 10 * time.Second
		} else if h.Timeout < 0 {
			bad(key+".timeout", "give a positive duration, e.g. 10s", "must be positive")
		}
		if h.Retries == nil {
			h.Retries = new(4)
		} else if *h.Retries < 0 || *h.Retries > 10 {
			bad(key+".retries", "give 0 to 10", "%d out of range", *h.Retries)
		}
	}
	return errors.Join(errs...)
}

// selectCluster makes the multi-cluster form usable by the CLI commands: the entry
// named by cluster.name (else the first) becomes Cluster, with its merged Policy,
// Schedule and Windows. hasCluster tells whether the file has a cluster section.
func (c *Config) selectCluster(hasCluster bool) error {
	if len(c.Clusters) == 0 {
		return nil
	}
	var errs []error
	var names []string
	for i, e := range c.Clusters {
		if e.Name == "" {
			errs = append(errs, drivers.Fieldf(c.clusterPrefix(i)+".name", "name every cluster (letters, digits, '-' and '_')", "not set"))
		} else if err := checkName(c.clusterPrefix(i)+".name", e.Name); err != nil {
			errs = append(errs, err)
		}
		names = append(names, e.Name)
	}
	if hasCluster {
		errs = append(errs, drivers.Fieldf("cluster", "use either cluster (one cluster) or clusters (several), not both", "set together with clusters"))
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	c.topPolicy = clonePolicy(c.Policy)
	i := 0
	if want := c.Cluster.Name; want != "" {
		i = slices.Index(names, want)
		if i < 0 {
			return drivers.Fieldf("cluster.name", "use one of the clusters of the config: "+strings.Join(names, ", "), "no cluster %q", want)
		}
	}
	pol, err := c.clusterPolicy(i)
	if err != nil {
		return err
	}
	// Schedule and Windows stay the top-level ones: Serve reads each cluster's.
	c.Cluster, c.Policy = c.Clusters[i].cluster(), pol
	return nil
}
