// Package config loads Drover's configuration: a YAML file, DROVER_* environment
// variables and command-line flags, in that order of increasing precedence, on top of
// defaults. It validates everything once and names the offending key in every error.
package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"

	"github.com/droverhq/drover/cmd/drover/internal/limits"
	"github.com/droverhq/drover/drivers"
	"github.com/droverhq/drover/orchestrator"
	"github.com/droverhq/drover/orchestrator/schedule"
	"github.com/droverhq/drover/policies"
)

// EnvPrefix prefixes every environment variable: policy.max_parallel_migrations is
// DROVER_POLICY_MAX_PARALLEL_MIGRATIONS.
const EnvPrefix = "DROVER"

// Config is the whole configuration.
type Config struct {
	// State is the bbolt state file.
	State   string              `mapstructure:"state"`
	Cluster Cluster             `mapstructure:"cluster"`
	Policy  orchestrator.Policy `mapstructure:"policy"`
	Log     Log                 `mapstructure:"log"`
	// Clusters is the multi-cluster form (drover serve); CLI commands work on the
	// one named by cluster.name, else the first. See serve.go.
	Clusters []ClusterEntry `mapstructure:"clusters"`
	// Schedule and Windows of the single-cluster form, and the defaults of clusters.
	Schedule schedule.Spec         `mapstructure:"schedule"`
	Windows  []policies.WindowSpec `mapstructure:"windows"`
	// Server is the daemon's HTTP API; Webhooks its notifications.
	Server   Server    `mapstructure:"server"`
	Webhooks []Webhook `mapstructure:"webhooks"`
	// HA keeps the run store in etcd and elects one leader among the replicas of
	// `drover serve` (ha.go); all empty: the bbolt state file.
	HA HA `mapstructure:"ha"`
	// Extra holds top-level sections other commands own (server, schedule, ...),
	// validated by them.
	Extra map[string]any `mapstructure:",remain"`

	// BaseDir is the folder of the config file: relative paths in the file resolve
	// against it.
	BaseDir string `mapstructure:"-"`
	// File is the config file read, "" when none.
	File string `mapstructure:"-"`
	// rawPolicy is the policy section as read, the base of clusters' overrides;
	// topPolicy the top-level policy decoded, which a cluster without overrides
	// runs with (Policy becomes the selected cluster's).
	rawPolicy map[string]any
	topPolicy orchestrator.Policy
	// flagKeys are the keys set by flags or --set, which beat the environment.
	flagKeys map[string]bool
}

// Cluster selects the driver and the update plug-in.
type Cluster struct {
	Name   string `mapstructure:"name"`
	Driver string `mapstructure:"driver"`
	// Updater is the update plug-in: {kind: NAME, NAME: {...}}; kind defaults to the
	// driver's own plug-in when the driver has one (sim).
	Updater map[string]any `mapstructure:"updater"`
	// Sections holds one raw section per driver (sim, libvirt, ...).
	Sections map[string]any `mapstructure:",remain"`
}

// Log configures logging. An empty level means info, or warn for commands that show
// live progress themselves.
type Log struct {
	Level  string `mapstructure:"level"`
	Format string `mapstructure:"format"`
}

// Binding ties a command-line flag to a config key.
type Binding struct {
	Key  string
	Flag *pflag.Flag
}

// defaults are the keys every config has; setting them makes viper read their
// environment variables even when the file does not mention them.
func defaults() map[string]any {
	p := orchestrator.DefaultPolicy()
	return map[string]any{
		"state": "",
		// ha: all empty means no HA; defaults exist so that DROVER_HA_... is read.
		"ha.etcd.endpoints":              []string{},
		"ha.etcd.prefix":                 "",
		"ha.etcd.tls.ca_file":            "",
		"ha.etcd.tls.cert_file":          "",
		"ha.etcd.tls.key_file":           "",
		"ha.etcd.username":               "",
		"ha.etcd.password_env":           "",
		"ha.lease_ttl":                   "0s",
		"ha.replica":                     "",
		"cluster.name":                   "",
		"cluster.driver":                 "sim",
		"cluster.sim.url":                "",
		"cluster.sim.cluster_file":       "",
		"cluster.sim.time_scale":         1.0,
		"policy.max_parallel_migrations": p.MaxParallelMigrations,
		"policy.max_migrations_per_node": p.MaxMigrationsPerNode,
		"policy.drain_scheduler":         p.DrainScheduler,
		"policy.max_parallel_nodes":      p.MaxParallelNodes,
		"policy.retries_per_node":        p.RetriesPerNode,
		"policy.reboot_timeout":          p.RebootTimeout.D().String(),
		"policy.drain_timeout":           p.DrainTimeout.D().String(),
		"policy.migration_timeout":       p.MigrationTimeout.D().String(),
		"policy.reboot_evidence":         p.RebootEvidence,
		"policy.failback":                p.Failback,
		"policy.node_order":              p.NodeOrder,
		"policy.nodes":                   []string{},
		"policy.order_label":             "",
		"policy.max_failed_nodes":        p.MaxFailedNodes,
		"policy.non_migratable":          p.NonMigratable,
		"policy.local_storage":           p.LocalStorage,
		"policy.reserve_nodes":           p.ReserveNodes,
		"policy.override_reserve":        false,
		"policy.cpu_overcommit":          p.CPUOvercommit,
		"policy.memory_headroom_mib":     p.MemoryHeadroomMiB,
		"policy.force":                   false,
		"policy.poll_interval":           p.PollInterval.D().String(),
		"log.level":                      "",
		"log.format":                     "text",
		"server.listen":                  DefaultListen,
		"server.tls.cert":                "",
		"server.tls.key":                 "",
		"server.scan_cache":              DefaultScanCache.String(),
		"server.max_event_clients":       DefaultMaxEventClients,
		"schedule.cron":                  "",
		"schedule.days":                  []string{},
		"schedule.weeks":                 []int{},
		"schedule.at":                    "",
		"schedule.tz":                    "",
		"schedule.start_date":            "",
		"schedule.interval_weeks":        0,
		"schedule.blackout":              []string{},
		"schedule.paused":                false,

		// Run policies of issue 3: hooks, health gate, deadlines, canary, failback hours.
		"policy.require_all_nodes_online":  false,
		"policy.failback_hours":            "",
		"policy.failback_tz":               "",
		"policy.pre_hook.command":          []string{},
		"policy.pre_hook.timeout":          p.PreHook.Timeout.D().String(),
		"policy.post_hook.command":         []string{},
		"policy.post_hook.timeout":         p.PostHook.Timeout.D().String(),
		"policy.warn_after":                p.WarnAfter.D().String(),
		"policy.stop_after":                p.StopAfter.D().String(),
		"policy.health_gate.command":       []string{},
		"policy.health_gate.url":           "",
		"policy.health_gate.timeout":       p.HealthGate.Timeout.D().String(),
		"policy.health_gate.retries":       p.HealthGate.Retries,
		"policy.health_gate.interval":      p.HealthGate.Interval.D().String(),
		"policy.health_gate.ready_timeout": p.HealthGate.ReadyTimeout.D().String(),
		"policy.canary":                    false,
	}
}

// ExtraDefaults lets other parts of the program (the daemon) declare keys of their
// own, so their environment variables are read too.
type ExtraDefaults map[string]any

// LoadOptions for Load.
type LoadOptions struct {
	// File is the config file ("" = none).
	File string
	// FileSource names where File came from in errors ("--config" when empty,
	// "DROVER_CONFIG" when the environment gave it).
	FileSource string
	// Flags bind command-line flags to keys; a flag set on the command line wins.
	Flags []Binding
	// Sets are "key=value" overrides from --set, applied like flags.
	Sets []string
	// Extra adds defaults of other components.
	Extra ExtraDefaults
}

// Load reads the configuration. Errors are *drivers.FieldError (joined) where a key
// is at fault.
func Load(opts LoadOptions) (*Config, error) {
	v := viper.New()
	v.SetEnvPrefix(EnvPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	for k, val := range defaults() {
		v.SetDefault(k, val)
	}
	for k, val := range opts.Extra {
		v.SetDefault(k, val)
	}
	bindDriverEnv(v)
	// Policy keys missing from defaults() keep the engine's default, not Go's zero value.
	cfg := &Config{Policy: orchestrator.DefaultPolicy()}
	if opts.File != "" {
		src := opts.FileSource
		if src == "" {
			src = "--config"
		}
		abs, err := filepath.Abs(opts.File)
		if err != nil {
			return nil, fmt.Errorf("config file %s: %w", opts.File, err)
		}
		st, err := os.Stat(abs)
		switch {
		case errors.Is(err, os.ErrNotExist):
			return nil, &drivers.FieldError{Field: src, Problem: fmt.Sprintf("file %s does not exist", opts.File), Fix: "give the path of a YAML config file, e.g. testdata/demo.yaml"}
		case err != nil:
			return nil, &drivers.FieldError{Field: src, Problem: err.Error(), Fix: "make the file readable"}
		case st.IsDir():
			return nil, &drivers.FieldError{Field: src, Problem: opts.File + " is a folder", Fix: "give the path of a YAML file"}
		}
		raw, err := readYAML(abs)
		if err != nil {
			return nil, &drivers.FieldError{Field: src, Problem: fmt.Sprintf("cannot parse %s: %v", opts.File, err), Fix: "fix the YAML syntax"}
		}
		v.SetConfigType("yaml")
		if err := v.MergeConfigMap(raw); err != nil {
			return nil, &drivers.FieldError{Field: src, Problem: fmt.Sprintf("cannot read %s: %v", opts.File, err), Fix: "fix the YAML syntax"}
		}
		cfg.File, cfg.BaseDir = abs, filepath.Dir(abs)
	} else {
		wd, err := os.Getwd()
		if err != nil {
			return nil, err
		}
		cfg.BaseDir = wd
	}
	for _, b := range opts.Flags {
		// Only flags given on the command line are bound: several commands define
		// the same flag for the same key, and viper keeps one flag per key.
		if b.Flag == nil || !b.Flag.Changed {
			continue
		}
		if err := v.BindPFlag(b.Key, b.Flag); err != nil {
			return nil, fmt.Errorf("bind flag --%s: %w", b.Flag.Name, err)
		}
	}
	for _, s := range opts.Sets {
		key, val, ok := strings.Cut(s, "=")
		if !ok || key == "" {
			return nil, &drivers.FieldError{Field: "--set", Problem: fmt.Sprintf("%q is not key=value", s), Fix: "write e.g. --set policy.failback=immediate"}
		}
		if slices.Contains(strings.Split(key, "."), "") {
			return nil, &drivers.FieldError{Field: "--set", Problem: fmt.Sprintf("%q is not a config key (a dotted path such as policy.failback)", key), Fix: "write e.g. --set policy.failback=immediate"}
		}
		v.Set(key, val)
	}
	cfg.flagKeys = map[string]bool{}
	for _, b := range opts.Flags {
		if b.Flag != nil && b.Flag.Changed {
			cfg.flagKeys[b.Key] = true
		}
	}
	for _, s := range opts.Sets {
		key, _, _ := strings.Cut(s, "=")
		cfg.flagKeys[key] = true
	}
	all := v.AllSettings()
	if err := drivers.Decode(all, cfg); err != nil {
		return nil, explain(sectionKeys(err, cfg), cfg.fromFlag)
	}
	cfg.rawPolicy, _ = all["policy"].(map[string]any)
	if err := cfg.selectCluster(v.InConfig("cluster")); err != nil {
		return nil, err
	}
	if err := checkSections(cfg.Extra, opts.Extra); err != nil {
		return nil, err
	}
	cfg.resolvePaths(v, opts)
	if err := cfg.Validate(); err != nil {
		return nil, explain(err, cfg.fromFlag)
	}
	return cfg, nil
}

// fromFlag tells whether key was set by a flag or --set (which beat the environment).
func (c *Config) fromFlag(key string) bool { return c.flagKeys[key] }

// readYAML reads a config file and drops null values: an empty section ("policy:"
// with nothing under it) would otherwise hide the environment variables and flags of
// every key inside it from viper.
func readYAML(path string) (map[string]any, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	dropNulls(m)
	if m == nil {
		m = map[string]any{}
	}
	plainDates(m)
	return m, nil
}

// plainDates turns the timestamps YAML reads from unquoted dates (start_date:
// 2026-01-04) back into the text written: every date key is a string, and the
// decoder cannot convert a time.Time to one. A date alone becomes "2006-01-02"; a
// timestamp with a time keeps it (RFC 3339), so errors quote what the user wrote.
func plainDates(v any) any {
	switch x := v.(type) {
	case time.Time:
		if x.Location() == time.UTC && x.Equal(x.Truncate(24*time.Hour)) {
			return x.Format(time.DateOnly)
		}
		return x.Format(time.RFC3339Nano)
	case map[string]any:
		for k, e := range x {
			x[k] = plainDates(e)
		}
	case []any:
		for i, e := range x {
			x[i] = plainDates(e)
		}
	}
	return v
}

func dropNulls(m map[string]any) {
	for k, v := range m {
		switch x := v.(type) {
		case nil:
			delete(m, k)
		case map[string]any:
			dropNulls(x)
		}
	}
}

// checkSections refuses top-level keys no component declared: only sections with
// keys in defaults() or in a command's ExtraDefaults exist.
func checkSections(extra map[string]any, declared ExtraDefaults) error {
	known := map[string]bool{}
	for k := range declared {
		top, _, _ := strings.Cut(k, ".")
		known[top] = true
	}
	var errs []error
	var names []string
	for k := range extra {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if !known[k] {
			errs = append(errs, drivers.Fieldf(sectionName(k, extra[k]), "remove it or check its spelling; top-level keys are state, cluster, policy, log"+extraNames(known), "unknown key"))
		}
	}
	return errors.Join(errs...)
}

// sectionName names a top-level key as the file wrote it: keys are split at dots, so a
// key that starts with one (".olicy") arrives as an empty name holding the rest.
func sectionName(k string, v any) string {
	if k != "" {
		return k
	}
	if m, ok := v.(map[string]any); ok {
		subs := make([]string, 0, len(m))
		for sub := range m {
			subs = append(subs, sub)
		}
		sort.Strings(subs)
		if len(subs) > 0 && subs[0] != "" {
			return "." + subs[0]
		}
	}
	return `""`
}

func extraNames(known map[string]bool) string {
	var out []string
	for k := range known {
		out = append(out, k)
	}
	sort.Strings(out)
	if len(out) == 0 {
		return ""
	}
	return ", " + strings.Join(out, ", ")
}

// resolvePaths makes relative paths that come from the config file relative to the
// file's folder; paths given by flags or the environment stay relative to the
// working directory, as a user typing them expects.
func (c *Config) resolvePaths(v *viper.Viper, opts LoadOptions) {
	fromFile := func(key string) bool {
		if !v.InConfig(key) {
			return false
		}
		for _, b := range opts.Flags {
			if b.Key == key && b.Flag.Changed {
				return false
			}
		}
		for _, s := range opts.Sets {
			if strings.HasPrefix(s, key+"=") {
				return false
			}
		}
		_, inEnv := os.LookupEnv(EnvPrefix + "_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_")))
		return !inEnv
	}
	if c.State != "" && !filepath.IsAbs(c.State) && fromFile("state") {
		c.State = filepath.Join(c.BaseDir, c.State)
	}
	// Driver sections resolve their own paths against Env.BaseDir; paths there that
	// came from flags or the environment are made absolute here first.
	// (In the multi-cluster form the section comes from clusters[i] in the file.)
	if sim, ok := c.Cluster.Sections["sim"].(map[string]any); ok && len(c.Clusters) == 0 {
		if f, ok := sim["cluster_file"].(string); ok && f != "" && !filepath.IsAbs(f) && !fromFile("cluster.sim.cluster_file") {
			if abs, err := filepath.Abs(f); err == nil {
				sim["cluster_file"] = abs
			}
		}
	}
	// The API's certificate and key: Serve resolves relative paths against the file's
	// folder, so those from flags or the environment are made absolute here.
	for key, p := range map[string]*string{"server.tls.cert": &c.Server.TLS.Cert, "server.tls.key": &c.Server.TLS.Key} {
		if *p != "" && !filepath.IsAbs(*p) && !fromFile(key) {
			if abs, err := filepath.Abs(*p); err == nil {
				*p = abs
			}
		}
	}
	// Hook and health check programs given by a relative path in the file live next
	// to it (a bare name is looked up in PATH).
	for key, argv := range map[string][]string{"policy.pre_hook.command": c.Policy.PreHook.Command,
		"policy.post_hook.command": c.Policy.PostHook.Command, "policy.health_gate.command": c.Policy.HealthGate.Command} {
		if len(argv) > 0 && strings.Contains(argv[0], "/") && !filepath.IsAbs(argv[0]) && fromFile(key) {
			argv[0] = filepath.Join(c.BaseDir, argv[0])
		}
	}
}

// DefaultStatePath is where the state lives when `state` is not set:
// $XDG_STATE_HOME/drover/drover.db, or ~/.local/state/drover/drover.db.
func DefaultStatePath() (string, error) {
	dir := os.Getenv("XDG_STATE_HOME")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("find the home folder for the default state file: %w; set `state`", err)
		}
		dir = filepath.Join(home, ".local", "state")
	}
	return filepath.Join(dir, "drover", "drover.db"), nil
}

// Validate checks the config that does not need a driver.
func (c *Config) Validate() error {
	var errs []error
	if c.Cluster.Name == "" {
		c.Cluster.Name = "default"
	}
	if err := checkName("cluster.name", c.Cluster.Name); err != nil {
		errs = append(errs, err)
	}
	if c.Cluster.Driver == "" {
		errs = append(errs, drivers.Fieldf("cluster.driver", "set one of: "+strings.Join(drivers.Names(), ", "), "not set"))
	} else if _, ok := drivers.Lookup(c.Cluster.Driver); !ok {
		errs = append(errs, drivers.Fieldf("cluster.driver", "use one of: "+strings.Join(drivers.Names(), ", "), "unknown driver %q", c.Cluster.Driver))
	}
	for name := range c.Cluster.Sections {
		if _, ok := drivers.Lookup(name); !ok {
			errs = append(errs, drivers.Fieldf("cluster."+name, "remove it; driver sections are: "+strings.Join(drivers.Names(), ", "), "unknown key"))
		}
	}
	switch c.Log.Level {
	case "", "debug", "info", "warn", "error":
	default:
		errs = append(errs, drivers.Fieldf("log.level", "use debug, info, warn or error (empty: info, warn under a live display)", "unknown level %q", c.Log.Level))
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		errs = append(errs, drivers.Fieldf("log.format", "use text or json", "unknown format %q", c.Log.Format))
	}
	if err := c.Policy.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := limits.Policy(c.Policy); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// DriverConfig decodes and validates the selected driver's section.
func (c *Config) DriverConfig() (drivers.Config, error) {
	info, ok := drivers.Lookup(c.Cluster.Driver)
	if !ok {
		return nil, drivers.Fieldf("cluster.driver", "use one of: "+strings.Join(drivers.Names(), ", "), "unknown driver %q", c.Cluster.Driver)
	}
	dc := info.NewConfig()
	raw, _ := c.Cluster.Sections[c.Cluster.Driver].(map[string]any)
	if err := drivers.Decode(raw, dc); err != nil {
		return nil, explain(drivers.PrefixFields("cluster."+c.Cluster.Driver, err), c.fromFlag)
	}
	if err := dc.Validate(); err != nil {
		return nil, explain(drivers.PrefixFields("cluster."+c.Cluster.Driver, err), c.fromFlag)
	}
	return dc, nil
}

// UpdaterConfig decodes and validates the update plug-in's section.
func (c *Config) UpdaterConfig() (string, drivers.UpdaterConfig, error) {
	kind, _ := c.Cluster.Updater["kind"].(string)
	if kind == "" {
		if _, ok := drivers.LookupUpdater(c.Cluster.Driver); !ok {
			return "", nil, drivers.Fieldf("cluster.updater.kind", "use one of: "+strings.Join(drivers.UpdaterNames(), ", "), "not set, and driver %s has no update plug-in of its own", c.Cluster.Driver)
		}
		kind = c.Cluster.Driver
	}
	info, ok := drivers.LookupUpdater(kind)
	if !ok {
		return "", nil, drivers.Fieldf("cluster.updater.kind", "use one of: "+strings.Join(drivers.UpdaterNames(), ", "), "unknown update plug-in %q", kind)
	}
	for k := range c.Cluster.Updater {
		if k != "kind" && k != kind {
			return "", nil, drivers.Fieldf("cluster.updater."+k, "remove it; this plug-in reads cluster.updater."+kind, "unknown key")
		}
	}
	uc := info.NewConfig()
	raw, _ := c.Cluster.Updater[kind].(map[string]any)
	if err := drivers.Decode(raw, uc); err != nil {
		return "", nil, explain(drivers.PrefixFields("cluster.updater."+kind, err), c.fromFlag)
	}
	if err := uc.Validate(); err != nil {
		return "", nil, explain(drivers.PrefixFields("cluster.updater."+kind, err), c.fromFlag)
	}
	// A plug-in that can borrow the driver's SSH needs its own when the driver lends none.
	if nu, ok := uc.(drivers.NodeShellUser); ok {
		if d, _ := drivers.Lookup(c.Cluster.Driver); !d.NodeShell {
			if err := nu.WithoutNodeShell(); err != nil {
				return "", nil, explain(drivers.PrefixFields("cluster.updater."+kind, err), c.fromFlag)
			}
		}
	}
	return kind, uc, nil
}
