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

// AptConfig configures the "apt" plug-in for Debian and Ubuntu nodes.
type AptConfig struct {
	// Sudo runs the apt commands through "sudo -n" (for a non-root SSH user).
	Sudo bool `mapstructure:"sudo"`
	// Refresh runs "apt-get update" before every scan (default true).
	Refresh bool `mapstructure:"refresh"`
	// Timeout bounds each command (default 1h: a dist-upgrade can be slow). An
	// upgrade that outlives it goes on on the node; the next Install joins it.
	Timeout time.Duration `mapstructure:"timeout"`
	// JobDir is the folder on the node where the detached upgrade keeps its exit
	// code and log, one subfolder per run (default /var/lib/drover/jobs).
	JobDir string `mapstructure:"job_dir"`
	Target `mapstructure:",squash"`
}

// NewAptConfig returns the defaults.
func NewAptConfig() *AptConfig {
	return &AptConfig{Refresh: true, Timeout: time.Hour, JobDir: DefaultJobDir}
}

// Validate checks the config; fields are relative to the plug-in's section.
func (c *AptConfig) Validate() error {
	var errs []error
	if c.SSH == nil {
		errs = append(errs, drivers.Fieldf("ssh", "add an ssh section (user, key_file or password_env, known_hosts)", "required: apt runs on the nodes over SSH"))
	}
	if c.Timeout <= 0 {
		errs = append(errs, drivers.Fieldf("timeout", "use a positive duration such as 1h", "must be positive"))
	}
	if !strings.HasPrefix(c.JobDir, "/") || strings.ContainsAny(c.JobDir, "\n\r") {
		errs = append(errs, drivers.Fieldf("job_dir", "use an absolute path on the node, e.g. "+DefaultJobDir, "not an absolute path: %q", c.JobDir))
	}
	errs = append(errs, c.validate())
	return errors.Join(errs...)
}

// Open builds the plug-in; it does not connect.
func (c *AptConfig) Open(_ context.Context, env drivers.Env) (drivers.Updater, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	r, err := c.runner(env)
	if err != nil {
		return nil, err
	}
	return NewAptUpdater(*c, r, logger(env)), nil
}

// AptUpdater is the "apt" plug-in.
type AptUpdater struct {
	cfg AptConfig
	run Runner
	log *slog.Logger
}

var _ drivers.Updater = (*AptUpdater)(nil)

// NewAptUpdater builds the plug-in on a runner of the caller's choice.
func NewAptUpdater(cfg AptConfig, run Runner, log *slog.Logger) *AptUpdater {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &AptUpdater{cfg: cfg, run: run, log: log}
}

// The commands, as argv lists run by the runner. LC_ALL=C keeps apt's output parseable.
var (
	aptRefresh   = []string{"env", "LC_ALL=C", "apt-get", "update", "-qq"}
	aptList      = []string{"env", "LC_ALL=C", "apt", "list", "--upgradable"}
	aptUpgrade   = []string{"env", "LC_ALL=C", "DEBIAN_FRONTEND=noninteractive", "apt-get", "-y", "-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold", "dist-upgrade"}
	aptRebootReq = []string{"test", "-f", "/var/run/reboot-required"}
	aptRepair    = []string{"env", "LC_ALL=C", "DEBIAN_FRONTEND=noninteractive", "dpkg", "--configure", "-a"}
)

// aptUpgradeScript runs the upgrade given as arguments inside the detached job. An
// earlier upgrade killed in the middle of dpkg (by a crash, or a Drover that still
// killed its sessions) leaves apt refusing with "dpkg was interrupted": the script
// then runs `dpkg --configure -a` (its $REPAIR) and the upgrade again.
var aptUpgradeScript = `out="$DROVER_JOB_DIR/upgrade.out"
"$@" >"$out" 2>&1
code=$?
cat "$out"
if [ "$code" -ne 0 ] && grep -q 'dpkg was interrupted' "$out"; then
	echo "drover: dpkg was interrupted: running ` + ShellJoin(aptRepair) + `, then the upgrade again"
	` + ShellJoin(aptRepair) + ` || exit $?
	"$@"
	code=$?
fi
rm -f "$out"
exit "$code"`

func (u *AptUpdater) cmd(ctx context.Context, node string, argv []string) (Output, error) {
	ctx, cancel := context.WithTimeout(ctx, u.cfg.Timeout)
	defer cancel()
	if u.cfg.Sudo {
		argv = append([]string{"sudo", "-n"}, argv...)
	}
	return u.run.Run(ctx, u.cfg.address(node), argv)
}

// Scan refreshes the package lists (if configured) and lists the upgradable packages.
func (u *AptUpdater) Scan(ctx context.Context, node string) ([]cluster.Update, error) {
	if u.cfg.Refresh {
		if _, err := u.cmd(ctx, node, aptRefresh); err != nil {
			return nil, fmt.Errorf("scan node %s: apt-get update: %w", node, err)
		}
	}
	out, err := u.cmd(ctx, node, aptList)
	if err != nil {
		return nil, fmt.Errorf("scan node %s: apt list: %w", node, err)
	}
	ups, err := ParseAptUpgradable(out.Stdout)
	if err != nil {
		return nil, fmt.Errorf("scan node %s: %w", node, err)
	}
	return ups, nil
}

// Install runs a non-interactive dist-upgrade that keeps changed config files, then
// scans again: what is still upgradable is reported as failed. The upgrade runs
// detached on the node (see jobScript): cancelling ctx stops the waiting, never
// apt-get, and a later Install of the same run joins the upgrade still running or
// reports the one that succeeded instead of starting another.
func (u *AptUpdater) Install(ctx context.Context, node string) (drivers.InstallResult, error) {
	j := newJob(ctx, u.cfg.JobDir, "apt", func(ctx context.Context, argv []string) (Output, error) { return u.cmd(ctx, node, argv) })
	st, err := j.status(ctx)
	if err != nil {
		return drivers.InstallResult{}, fmt.Errorf("install on node %s: read the state of the upgrade job: %w", node, err)
	}
	var before []cluster.Update
	joined := st.State == "running" || st.State == "done" && st.Code == 0
	if joined {
		if before, err = ParseUpdateLines(st.Rest); err != nil {
			return drivers.InstallResult{}, fmt.Errorf("install on node %s: the upgrade job's pending list: %w", node, err)
		}
		u.log.Info("joining the upgrade of this run", "node", node, "state", st.State, "updates", len(before))
	} else {
		if st.State == "lost" {
			u.log.Warn("the upgrade of this run died without an exit code; running it again", "node", node)
		}
		if before, err = u.Scan(ctx, node); err != nil {
			return drivers.InstallResult{}, fmt.Errorf("install on node %s: %w", node, err)
		}
	}
	var res drivers.InstallResult
	if len(before) > 0 {
		if !joined {
			argv := append([]string{"/bin/sh", "-c", aptUpgradeScript, "drover-apt-upgrade"}, aptUpgrade...)
			if _, err := j.start(ctx, formatUpdateLines(before), argv); err != nil {
				return res, fmt.Errorf("install on node %s: start apt-get dist-upgrade: %w", node, err)
			}
		}
		done, err := j.wait(ctx)
		res.Output = tail(strings.TrimSpace(done.Rest), 4096)
		if err != nil {
			return res, fmt.Errorf("install on node %s: apt-get dist-upgrade: %w", node, err)
		}
		if done.Code != 0 {
			return res, fmt.Errorf("install on node %s: apt-get dist-upgrade: %w", node, &ExitError{Code: done.Code, Stderr: done.Rest})
		}
		list, err := u.cmd(ctx, node, aptList)
		if err != nil {
			return res, fmt.Errorf("install on node %s: apt list: %w", node, err)
		}
		after, err := ParseAptUpgradable(list.Stdout)
		if err != nil {
			return res, fmt.Errorf("install on node %s: %w", node, err)
		}
		res.Installed, res.Failed = diffUpdates(before, after)
	}
	_, err = u.cmd(ctx, node, aptRebootReq)
	switch code, isExit := ExitCode(err); {
	case err == nil:
		res.RebootRequired = true
	case isExit && code == 1:
	default:
		return res, fmt.Errorf("install on node %s: check /var/run/reboot-required: %w", node, err)
	}
	u.log.Info("updates installed", "node", node, "updates", len(res.Installed), "failed", len(res.Failed), "reboot_required", res.RebootRequired)
	return res, nil
}

// formatUpdateLines writes updates the way ParseUpdateLines reads them.
func formatUpdateLines(ups []cluster.Update) string {
	var b strings.Builder
	for _, u := range ups {
		b.WriteString(strings.TrimSpace(u.Name + " " + u.Version))
		b.WriteByte('\n')
	}
	return b.String()
}

// diffUpdates splits before into what is gone from after (installed, at the version
// that was offered) and what is still pending (failed: held back or broken).
func diffUpdates(before, after []cluster.Update) (installed []cluster.Update, failed []drivers.UpdateFailure) {
	still := map[string]bool{}
	for _, a := range after {
		still[a.Name] = true
	}
	for _, b := range before {
		if still[b.Name] {
			failed = append(failed, drivers.UpdateFailure{Update: b, Error: "still upgradable after dist-upgrade (held back or failed)"})
			continue
		}
		installed = append(installed, b)
	}
	return installed, failed
}

// ParseAptUpgradable parses the output of "apt list --upgradable":
//
//	WARNING: apt does not have a stable CLI interface. Use with caution in scripts.
//
//	Listing... Done
//	libc6/stable-security 2.36-9+deb12u7 amd64 [upgradable from: 2.36-9+deb12u4]
//
// The warning, the "Listing..." line and apt's "N: ..." notes are skipped; any other
// line that is not a package entry is an error, so a changed format is noticed rather
// than read as "nothing to do".
func ParseAptUpgradable(out string) ([]cluster.Update, error) {
	var ups []cluster.Update
	for i, line := range strings.Split(out, "\n") {
		line = strings.TrimRight(line, "\r")
		trimmed := strings.TrimSpace(line)
		switch {
		case trimmed == "",
			strings.HasPrefix(trimmed, "WARNING:"),
			strings.HasPrefix(trimmed, "Listing..."),
			strings.HasPrefix(trimmed, "N: "):
			continue
		}
		u, err := parseAptLine(trimmed)
		if err != nil {
			return nil, fmt.Errorf("parse apt list line %d %q: %w", i+1, clip(trimmed), err)
		}
		ups = append(ups, u)
	}
	return ups, nil
}

// parseAptLine parses "name/suite[,suite] version arch [upgradable from: old]".
func parseAptLine(line string) (cluster.Update, error) {
	f := strings.Fields(line)
	if len(f) < 3 {
		return cluster.Update{}, errors.New("want \"name/suite version arch [upgradable from: version]\"")
	}
	name, suite, ok := strings.Cut(f[0], "/")
	if !ok || suite == "" {
		return cluster.Update{}, errors.New("package field has no /suite")
	}
	if !validPackageName(name) {
		return cluster.Update{}, fmt.Errorf("invalid package name %q", clip(name))
	}
	if !validVersion(f[1]) {
		return cluster.Update{}, fmt.Errorf("invalid version %q", clip(f[1]))
	}
	if rest := strings.Join(f[3:], " "); rest != "" && !(strings.HasPrefix(rest, "[upgradable from: ") && strings.HasSuffix(rest, "]")) {
		return cluster.Update{}, fmt.Errorf("unexpected trailer %q", clip(rest))
	}
	return cluster.Update{Name: name, Version: f[1]}, nil
}

// validPackageName follows Debian policy 5.6.1: lower case letters, digits, + - . ;
// at least two characters, starting with a letter or digit. (":arch" qualifiers are
// accepted too.)
func validPackageName(s string) bool {
	base, arch, hasArch := strings.Cut(s, ":")
	if hasArch && !isToken(arch, "-") {
		return false
	}
	if len(base) < 2 || !isAlnumLower(base[0]) {
		return false
	}
	return isToken(base, "+-.")
}

// validVersion follows Debian policy 5.6.12 loosely: [epoch:]upstream[-revision] over
// alphanumerics and . + ~ - :.
func validVersion(s string) bool {
	return s != "" && isAlnumLower(lower(s[0])) && isTokenAnyCase(s, ".+~-:")
}

func isAlnumLower(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func isToken(s, extra string) bool {
	for i := 0; i < len(s); i++ {
		if !isAlnumLower(s[i]) && !strings.ContainsRune(extra, rune(s[i])) {
			return false
		}
	}
	return s != ""
}

func isTokenAnyCase(s, extra string) bool {
	for i := 0; i < len(s); i++ {
		if !isAlnumLower(lower(s[i])) && !strings.ContainsRune(extra, rune(s[i])) {
			return false
		}
	}
	return true
}
