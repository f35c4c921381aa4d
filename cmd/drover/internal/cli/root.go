// Package cli holds Drover's commands. Each command has an options struct, a
// NewCmdX constructor that only parses flags into it, and an xRun function that does
// the work; the Factory supplies configuration, streams and connections lazily.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/droverhq/drover/cmd/drover/internal/config"
	"github.com/droverhq/drover/drivers"
)

// Exit codes, as documented in every command's help.
const (
	ExitOK     = 0
	ExitFailed = 1 // a run or a check failed
	ExitUsage  = 2 // bad command line or config
)

// ExitError carries the exit code of a failure.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

func usageErr(err error) error { return &ExitError{Code: ExitUsage, Err: err} }

// failedErr marks a runtime failure; an error that already carries its exit code
// keeps it.
func failedErr(err error) error {
	if ee, ok := err.(*ExitError); ok {
		return ee
	}
	return &ExitError{Code: ExitFailed, Err: err}
}

// ExitCode maps an error returned by Execute to the process exit code.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	var fe *drivers.FieldError
	if errors.As(err, &fe) {
		return ExitUsage
	}
	// Cobra's own parse errors are plain errors.
	if msg := err.Error(); strings.HasPrefix(msg, "unknown command") || strings.HasPrefix(msg, "unknown flag") ||
		strings.HasPrefix(msg, "required flag") || strings.Contains(msg, "accepts ") && strings.Contains(msg, " arg(s)") {
		return ExitUsage
	}
	return ExitFailed
}

// noArgs refuses positional arguments as a usage error.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageErr(fmt.Errorf("%s takes no arguments, got %q; see '%s --help'", cmd.CommandPath(), args, cmd.CommandPath()))
	}
	return nil
}

// IOStreams are the command's standard streams.
type IOStreams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer
	// IsTerminal reports whether Out is an interactive terminal.
	IsTerminal bool
	// TermWidth is the terminal's width, 0 when unknown.
	TermWidth int
}

// Factory supplies what commands need, lazily: a command that does not read the
// config never fails on a bad one.
type Factory struct {
	IO      IOStreams
	Version string
	// ConfigFile, Sets and flag bindings are filled by the root command's flags.
	ConfigFile string
	// configFlag tells whether --config or the environment gave ConfigFile.
	configFlag *pflag.Flag
	Sets       []string
	Bindings   []config.Binding
	// Extra config defaults declared by commands (the daemon's keys).
	Extra config.ExtraDefaults
	// Server and Token (--server, --token or DROVER_TOKEN) make the commands that
	// support it work through a `drover serve` daemon's API; see remote.go.
	Server string
	Token  string
	// InsecureHTTP allows sending the token over plain http to a daemon that is not
	// on loopback (--insecure-http).
	InsecureHTTP bool
	// AcceptStoredPolicy resumes a run whose stored hooks or health gate differ from
	// the config's (--accept-stored-policy).
	AcceptStoredPolicy bool
}

// Config loads and validates the configuration.
func (f *Factory) Config() (*config.Config, error) {
	var source string // "" is --config
	if f.configFlag != nil && !f.configFlag.Changed {
		source = "DROVER_CONFIG"
	}
	cfg, err := config.Load(config.LoadOptions{File: f.ConfigFile, FileSource: source, Flags: f.Bindings, Sets: f.Sets, Extra: f.Extra})
	if err != nil {
		return nil, usageErr(err)
	}
	for _, w := range config.UnknownPolicyEnv(os.Environ()) {
		fmt.Fprintf(f.IO.ErrOut, "drover: warning: %s\n", w)
	}
	return cfg, nil
}

// Logger builds the logger of a command: text or JSON on stderr at the configured
// level; quiet is the level used when log.level is left unset (live displays print
// what the info logs would).
func (f *Factory) Logger(cfg *config.Config, quiet bool) *slog.Logger {
	return f.logger(cfg, quiet, f.IO.ErrOut)
}

func (f *Factory) logger(cfg *config.Config, quiet bool, w io.Writer) *slog.Logger {
	level := slog.LevelInfo
	switch cfg.Log.Level {
	case "debug":
		level = slog.LevelDebug
	case "warn":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	case "":
		if quiet {
			level = slog.LevelWarn
		}
	}
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// NewCmdRoot builds the drover command tree.
func NewCmdRoot(f *Factory) *cobra.Command {
	root := &cobra.Command{
		Use:   "drover",
		Short: "Cluster-aware rolling maintenance for virtualization clusters",
		Long: `Drover patches and reboots the nodes of a virtualization cluster one at a time
while the VMs keep running: it pauses a node, drains it with bounded concurrent live
migrations, installs the updates, reboots it, waits until it is back, resumes it and
optionally fails the VMs back. Every step is journaled; a killed Drover resumes exactly
where it stopped.

Configuration: a YAML file (--config), DROVER_* environment variables (a key's dots
become underscores: DROVER_POLICY_MAX_PARALLEL_MIGRATIONS) and flags; a flag beats the
environment, which beats the file, which beats the defaults.

Exit status: 0 success, 1 a run or check failed, 2 a usage or config error.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       f.Version,
	}
	root.SetOut(f.IO.Out)
	root.SetErr(f.IO.ErrOut)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageErr(fmt.Errorf("%w; see '%s --help'", err, c.CommandPath()))
	})
	pf := root.PersistentFlags()
	pf.StringVarP(&f.ConfigFile, "config", "c", os.Getenv("DROVER_CONFIG"), "YAML config file (env DROVER_CONFIG)")
	f.configFlag = pf.Lookup("config")
	pf.StringArrayVar(&f.Sets, "set", nil, "set any config key, e.g. --set policy.failback=immediate (repeatable)")
	bind := func(fs *pflag.FlagSet, name, key string) {
		f.Bindings = append(f.Bindings, config.Binding{Key: key, Flag: fs.Lookup(name)})
	}
	pf.String("state", "", "state file (config key state)")
	bind(pf, "state", "state")
	pf.String("cluster-name", "", "cluster name (config key cluster.name)")
	bind(pf, "cluster-name", "cluster.name")
	pf.String("driver", "", "driver (config key cluster.driver)")
	bind(pf, "driver", "cluster.driver")
	pf.String("sim-url", "", "URL of a simulator started with 'drover sim serve'; empty runs the simulator in-process (cluster.sim.url)")
	bind(pf, "sim-url", "cluster.sim.url")
	pf.String("cluster-file", "", "simulated cluster file (cluster.sim.cluster_file)")
	bind(pf, "cluster-file", "cluster.sim.cluster_file")
	pf.Float64("time-scale", 0, "simulated seconds per wall second (cluster.sim.time_scale)")
	bind(pf, "time-scale", "cluster.sim.time_scale")
	pf.String("log-level", "", "debug, info, warn or error (log.level)")
	bind(pf, "log-level", "log.level")
	pf.StringVar(&f.Server, "server", "", "URL of a daemon started with 'drover serve': apply, analyze, plan and runs work through its API")
	pf.StringVar(&f.Token, "token", "", "API token for --server (prefer env DROVER_TOKEN: flags show in ps)")
	pf.BoolVar(&f.AcceptStoredPolicy, "accept-stored-policy", false, "resume (or stop, approve) a run although its stored hook or health-gate commands differ from the config's")
	pf.BoolVar(&f.InsecureHTTP, "insecure-http", false, "allow --server http:// to a daemon that is not on loopback (the token crosses the network in clear)")

	root.AddCommand(
		NewCmdAnalyze(f, nil),
		NewCmdPlan(f, nil),
		NewCmdApply(f, nil),
		NewCmdEvacuate(f, nil),
		NewCmdBench(f, nil),
		NewCmdInventory(f, nil),
		NewCmdDriver(f),
		NewCmdPreview(f, nil),
		NewCmdRuns(f),
		NewCmdServe(f, nil),
		NewCmdSim(f),
		NewCmdState(f),
		NewCmdVersion(f),
	)
	for _, c := range root.Commands() {
		switch c.Name() {
		case "apply", "analyze", "plan", "runs":
			markRemote(c)
		}
	}
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		if f.remote() && !remoteCapable(cmd) {
			return usageErr(fmt.Errorf("%s does not work through a daemon: --server is for apply, analyze, plan and runs; drop --server to run it locally (with --config)", cmd.CommandPath()))
		}
		return nil
	}
	return root
}

// remoteAnnotation marks the commands that work through a daemon's API (--server).
const remoteAnnotation = "drover/remote"

func markRemote(c *cobra.Command) {
	if c.Annotations == nil {
		c.Annotations = map[string]string{}
	}
	c.Annotations[remoteAnnotation] = "yes"
	for _, sub := range c.Commands() {
		markRemote(sub)
	}
}

// remoteCapable tells whether cmd takes --server: a command marked remote, or one
// that reads neither the config nor the cluster (help, version, completion).
func remoteCapable(cmd *cobra.Command) bool {
	for c := cmd; c != nil; c = c.Parent() {
		if c.Annotations[remoteAnnotation] != "" {
			return true
		}
		switch c.Name() {
		case "help", "version", "completion", cobra.ShellCompRequestCmd, cobra.ShellCompNoDescRequestCmd:
			return true
		}
	}
	return false
}

// bindPolicyFlags adds the flags that override policy keys for one run.
func bindPolicyFlags(f *Factory, fs *pflag.FlagSet) {
	type pflagDef struct {
		name, key, usage string
		kind             string
	}
	defs := []pflagDef{
		{"max-parallel-migrations", "policy.max_parallel_migrations", "live migrations in flight in the whole run", "int"},
		{"max-migrations-per-node", "policy.max_migrations_per_node", "live migrations in flight into or out of one node", "int"},
		{"drain-scheduler", "policy.drain_scheduler", "adaptive (concurrency from bandwidth and dirty rates, within the caps) or fixed (always the caps)", "string"},
		{"max-parallel-nodes", "policy.max_parallel_nodes", "nodes in maintenance at once, when the reserve allows it", "int"},
		{"retries-per-node", "policy.retries_per_node", "retries of a failed migration or install", "int"},
		{"reboot-timeout", "policy.reboot_timeout", "how long a node may take to come back, e.g. 15m", "string"},
		{"failback", "policy.failback", "none, immediate or policy", "string"},
		{"node-order", "policy.node_order", "node order policy, e.g. fewest-vms or explicit", "string"},
		{"nodes", "policy.nodes", "only these nodes (comma-separated); with --node-order explicit, in this order", "strings"},
		{"max-failed-nodes", "policy.max_failed_nodes", "stop the run when more nodes fail (-1 = a third)", "int"},
		{"non-migratable", "policy.non_migratable", "fail, shutdown or skip", "string"},
		{"reserve-nodes", "policy.reserve_nodes", "N-k cluster reserve k", "int"},
		{"override-reserve", "policy.override_reserve", "pause nodes even when the reserve would break", "bool"},
		{"force", "policy.force", "patch and reboot nodes that report no pending update", "bool"},
	}
	for _, d := range defs {
		switch d.kind {
		case "int":
			fs.Int(d.name, 0, d.usage+" ("+d.key+")")
		case "bool":
			fs.Bool(d.name, false, d.usage+" ("+d.key+")")
		case "strings":
			fs.StringSlice(d.name, nil, d.usage+" ("+d.key+")")
		default:
			fs.String(d.name, "", d.usage+" ("+d.key+")")
		}
		f.Bindings = append(f.Bindings, config.Binding{Key: d.key, Flag: fs.Lookup(d.name)})
	}
}

// commandContext returns the command's context, never nil.
func commandContext(cmd *cobra.Command) context.Context {
	if ctx := cmd.Context(); ctx != nil {
		return ctx
	}
	return context.Background()
}
