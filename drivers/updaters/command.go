package updaters

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/drivers"
)

func init() {
	drivers.RegisterUpdater(drivers.UpdaterInfo{Name: "command", NewConfig: func() drivers.UpdaterConfig { return NewCommandConfig() }})
	drivers.RegisterUpdater(drivers.UpdaterInfo{Name: "apt", NewConfig: func() drivers.UpdaterConfig { return NewAptConfig() }})
}

// Target says where a plug-in's commands run: locally when SSH is nil, else over SSH on
// the node's address (Hosts maps node names to addresses; default: the node name).
type Target struct {
	SSH   *SSHConfig        `mapstructure:"ssh"`
	Hosts map[string]string `mapstructure:"hosts"`
}

func (t Target) validate() error {
	var errs []error
	if t.SSH != nil {
		errs = append(errs, drivers.PrefixFields("ssh", t.SSH.Validate()))
	} else if len(t.Hosts) > 0 {
		errs = append(errs, drivers.Fieldf("hosts", "add an ssh section, or remove hosts", "hosts are SSH addresses but no ssh section is set"))
	}
	for node, addr := range t.Hosts {
		if strings.TrimSpace(addr) == "" {
			errs = append(errs, drivers.Fieldf("hosts."+node, "give the node's SSH address, host or host:port", "empty address"))
		}
	}
	return errors.Join(errs...)
}

func (t Target) runner(env drivers.Env) (Runner, error) {
	if t.SSH == nil {
		return LocalRunner{}, nil
	}
	r, err := NewSSHRunner(*t.SSH, env.BaseDir)
	if err != nil {
		return nil, drivers.PrefixFields("ssh", err)
	}
	return r, nil
}

func (t Target) address(node string) string {
	if a, ok := t.Hosts[node]; ok {
		return a
	}
	return node
}

// CommandConfig configures the "command" plug-in: shell commands run by /bin/sh -c with
// DROVER_NODE set to the node's name, locally or over SSH.
type CommandConfig struct {
	// Scan prints the pending updates, one per line: "name" or "name version".
	// Empty: the node has nothing to scan and Install reports what it printed only.
	Scan string `mapstructure:"scan"`
	// Install installs the updates (required). Exit 0 is success.
	Install string `mapstructure:"install"`
	// RebootRequired exits 0 when the node needs a reboot, 1 when it does not.
	// Empty: a reboot is required after every install.
	RebootRequired string `mapstructure:"reboot_required"`
	// Timeout bounds each command (default 30m).
	Timeout time.Duration `mapstructure:"timeout"`
	Target  `mapstructure:",squash"`
}

// NewCommandConfig returns the defaults.
func NewCommandConfig() *CommandConfig { return &CommandConfig{Timeout: 30 * time.Minute} }

// Validate checks the config; fields are relative to the plug-in's section.
func (c *CommandConfig) Validate() error {
	var errs []error
	if strings.TrimSpace(c.Install) == "" {
		errs = append(errs, drivers.Fieldf("install", "give the shell command that installs updates, e.g. install: apt-get -y dist-upgrade", "required"))
	}
	if c.Timeout <= 0 {
		errs = append(errs, drivers.Fieldf("timeout", "use a positive duration such as 30m", "must be positive"))
	}
	errs = append(errs, c.validate())
	return errors.Join(errs...)
}

// Open builds the plug-in; it does not connect.
func (c *CommandConfig) Open(_ context.Context, env drivers.Env) (drivers.Updater, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	r, err := c.runner(env)
	if err != nil {
		return nil, err
	}
	return &CommandUpdater{cfg: *c, run: r, log: logger(env)}, nil
}

// CommandUpdater is the "command" plug-in.
type CommandUpdater struct {
	cfg CommandConfig
	run Runner
	log *slog.Logger
}

var _ drivers.Updater = (*CommandUpdater)(nil)

// NewCommandUpdater builds the plug-in on a runner of the caller's choice.
func NewCommandUpdater(cfg CommandConfig, run Runner, log *slog.Logger) *CommandUpdater {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &CommandUpdater{cfg: cfg, run: run, log: log}
}

func (u *CommandUpdater) shell(ctx context.Context, node, script string) (Output, error) {
	ctx, cancel := context.WithTimeout(ctx, u.cfg.Timeout)
	defer cancel()
	return u.run.Run(ctx, u.cfg.address(node), nodeScript(node, script))
}

// nodeScript wraps script so it runs with DROVER_NODE set, the same way locally and over
// SSH (SSH servers refuse most environment variables).
func nodeScript(node, script string) []string {
	return []string{"/bin/sh", "-c", "DROVER_NODE=" + ShellQuote(node) + "; export DROVER_NODE\n" + script}
}

// Scan runs the scan command and parses its lines.
func (u *CommandUpdater) Scan(ctx context.Context, node string) ([]cluster.Update, error) {
	if u.cfg.Scan == "" {
		return nil, nil
	}
	out, err := u.shell(ctx, node, u.cfg.Scan)
	if err != nil {
		return nil, fmt.Errorf("scan node %s: %w", node, err)
	}
	return ParseUpdateLines(out.Stdout)
}

// Install scans, runs the install command, then asks whether a reboot is required. The
// updates scanned before a successful install are reported as installed.
func (u *CommandUpdater) Install(ctx context.Context, node string) (drivers.InstallResult, error) {
	pending, err := u.Scan(ctx, node)
	if err != nil {
		return drivers.InstallResult{}, fmt.Errorf("install on node %s: %w", node, err)
	}
	out, err := u.shell(ctx, node, u.cfg.Install)
	res := drivers.InstallResult{Output: trimOutput(out)}
	if err != nil {
		return res, fmt.Errorf("install on node %s: %w", node, err)
	}
	res.Installed = pending
	if u.cfg.RebootRequired == "" {
		res.RebootRequired = true
		return res, nil
	}
	res.RebootRequired, err = u.rebootRequired(ctx, node)
	if err != nil {
		return res, fmt.Errorf("install on node %s: %w", node, err)
	}
	u.log.Info("updates installed", "node", node, "updates", len(res.Installed), "reboot_required", res.RebootRequired)
	return res, nil
}

func (u *CommandUpdater) rebootRequired(ctx context.Context, node string) (bool, error) {
	_, err := u.shell(ctx, node, u.cfg.RebootRequired)
	if err == nil {
		return true, nil
	}
	if code, ok := ExitCode(err); ok && code == 1 {
		return false, nil
	}
	return false, fmt.Errorf("reboot_required command (exit 0 = yes, 1 = no): %w", err)
}

// ParseUpdateLines parses "name [version]" lines; blank lines and lines starting with #
// are skipped.
func ParseUpdateLines(s string) ([]cluster.Update, error) {
	var out []cluster.Update
	for i, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) > 2 {
			return nil, fmt.Errorf("parse scan output line %d %q: want \"name\" or \"name version\"", i+1, clip(line))
		}
		u := cluster.Update{Name: f[0]}
		if len(f) == 2 {
			u.Version = f[1]
		}
		out = append(out, u)
	}
	return out, nil
}

func trimOutput(o Output) string {
	return tail(strings.TrimSpace(o.Stdout+"\n"+o.Stderr), 4096)
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

func logger(env drivers.Env) *slog.Logger {
	if env.Logger != nil {
		return env.Logger
	}
	return slog.New(slog.DiscardHandler)
}
