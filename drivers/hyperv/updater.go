package hyperv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/drivers"
	"github.com/droverhq/drover/drivers/hyperv/scripts"
)

func init() {
	drivers.RegisterUpdater(drivers.UpdaterInfo{Name: "windows_update", NewConfig: func() drivers.UpdaterConfig { return NewUpdaterConfig() }})
}

// DefaultCriteria is Cluster-Aware Updating's default Windows Update query.
const DefaultCriteria = "IsInstalled=0 and Type='Software' and IsHidden=0 and IsAssigned=1"

// UpdaterConfig is the windows_update plug-in's section (cluster.updater.windows_update).
type UpdaterConfig struct {
	// Criteria is the Windows Update search query (default CAU's).
	Criteria string `mapstructure:"criteria"`
	// Fallback is when the install runs in a scheduled task as SYSTEM: auto (when the
	// network logon is refused, default), always, never.
	Fallback string `mapstructure:"fallback"`
	// Timeout bounds one install (default 2h).
	Timeout time.Duration `mapstructure:"timeout"`
	// PollInterval is how often the SYSTEM task's result is looked for (default 10s).
	PollInterval time.Duration `mapstructure:"poll_interval"`
}

// NewUpdaterConfig returns the defaults.
func NewUpdaterConfig() *UpdaterConfig {
	return &UpdaterConfig{Criteria: DefaultCriteria, Fallback: "auto", Timeout: 2 * time.Hour, PollInterval: 10 * time.Second}
}

// Validate checks the section; a criteria so long that a script would exceed the
// Windows command-line limit is refused here, before any node is touched.
func (c *UpdaterConfig) Validate() error {
	var errs []error
	if strings.TrimSpace(c.Criteria) == "" {
		errs = append(errs, drivers.Fieldf("criteria", "leave it out for CAU's default: "+DefaultCriteria, "empty"))
	} else if err := checkCriteria(c.Criteria); err != nil {
		errs = append(errs, drivers.Fieldf("criteria", "shorten the query; scripts travel on one Windows command line of at most 8191 characters", "%v", err))
	}
	switch c.Fallback {
	case "auto", "always", "never":
	default:
		errs = append(errs, drivers.Fieldf("fallback", "use auto, always or never", "unknown fallback %q", c.Fallback))
	}
	if c.Timeout <= 0 {
		errs = append(errs, drivers.Fieldf("timeout", "use a positive duration such as 2h", "must be positive"))
	}
	if c.PollInterval <= 0 {
		errs = append(errs, drivers.Fieldf("poll_interval", "use a positive duration such as 10s", "must be positive"))
	}
	return errors.Join(errs...)
}

func checkCriteria(criteria string) error {
	p := map[string]string{"criteria": criteria}
	for _, op := range []string{scripts.WUScan, scripts.WUInstall} {
		if _, err := scripts.Command(op, p); err != nil {
			return err
		}
	}
	inner, err := scripts.Bind(scripts.WUInstall, p)
	if err != nil {
		return err
	}
	_, err = scripts.Command(scripts.WUTask, taskParams{ID: strings.Repeat("0", 16), Script: inner})
	return err
}

type taskParams struct {
	ID     string `json:"id"`
	Script string `json:"script"`
}

// Open reuses the hyperv driver's connections: the plug-in needs cluster.driver hyperv.
func (c *UpdaterConfig) Open(_ context.Context, env drivers.Env) (drivers.Updater, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	d, ok := env.Driver.(*Driver)
	if !ok {
		return nil, drivers.Fieldf("kind", "use updater kind windows_update with cluster.driver: hyperv", "windows_update runs through the hyperv driver's connections")
	}
	return &WindowsUpdate{cfg: *c, d: d}, nil
}

// WindowsUpdate installs Windows updates through MSFT_WUOperations.
type WindowsUpdate struct {
	cfg UpdaterConfig
	d   *Driver
}

var _ drivers.Updater = (*WindowsUpdate)(nil)

type wuUpdate struct {
	Title string `json:"title"`
	KB    string `json:"kb"`
	ID    string `json:"id"`
}

func toUpdates(in []wuUpdate) []cluster.Update {
	out := make([]cluster.Update, 0, len(in))
	for _, u := range in {
		v := u.KB
		if v != "" && !strings.HasPrefix(v, "KB") {
			v = "KB" + v
		}
		out = append(out, cluster.Update{Name: u.Title, Version: v})
	}
	return out
}

// Scan lists the updates the criteria find on node.
func (w *WindowsUpdate) Scan(ctx context.Context, node string) ([]cluster.Update, error) {
	addr, err := w.d.addrOf(ctx, node)
	if err != nil {
		return nil, fmt.Errorf("windows update scan: %w", err)
	}
	var r struct {
		Updates []wuUpdate `json:"updates"`
	}
	if err := w.d.call(ctx, addr, scripts.WUScan, map[string]string{"criteria": w.cfg.Criteria}, &r); err != nil {
		return nil, fmt.Errorf("windows update scan on %s: %w", node, err)
	}
	return toUpdates(r.Updates), nil
}

type installData struct {
	Installed []wuUpdate `json:"installed"`
	Reboot    bool       `json:"reboot"`
}

// Install scans and installs on node; where the network logon may not install
// (E_ACCESSDENIED), it runs the same script as SYSTEM in a scheduled task.
func (w *WindowsUpdate) Install(ctx context.Context, node string) (drivers.InstallResult, error) {
	addr, err := w.d.addrOf(ctx, node)
	if err != nil {
		return drivers.InstallResult{}, fmt.Errorf("windows update install: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
	defer cancel()
	p := map[string]string{"criteria": w.cfg.Criteria}
	var r installData
	if w.cfg.Fallback != "always" {
		line, err := scripts.Command(scripts.WUInstall, p)
		if err != nil {
			return drivers.InstallResult{}, err
		}
		// The install may take long: no per-command timeout beyond the updater's.
		out, err := w.d.run.Run(ctx, addr, line)
		if err != nil {
			return drivers.InstallResult{}, fmt.Errorf("windows update install on %s: %w", node, err)
		}
		data, err := parseEnvelope(scripts.WUInstall, addr, out)
		denied := err != nil && strings.Contains(err.Error(), "drover:wu_denied")
		switch {
		case err == nil:
			if err := json.Unmarshal(data, &r); err != nil {
				return drivers.InstallResult{}, fmt.Errorf("windows update install on %s: unexpected answer: %w", node, err)
			}
			return result(r), nil
		case !denied || w.cfg.Fallback == "never":
			return drivers.InstallResult{}, fmt.Errorf("windows update install on %s: %w", node, err)
		}
		w.d.log.Info("windows update refused to the network logon; installing through a SYSTEM task", "node", node)
	}
	if err := w.viaTask(ctx, addr, p, &r); err != nil {
		return drivers.InstallResult{}, fmt.Errorf("windows update install (SYSTEM task) on %s: %w", node, err)
	}
	return result(r), nil
}

func result(r installData) drivers.InstallResult {
	return drivers.InstallResult{Installed: toUpdates(r.Installed), RebootRequired: r.Reboot}
}

func (w *WindowsUpdate) viaTask(ctx context.Context, addr string, p map[string]string, r *installData) error {
	inner, err := scripts.Bind(scripts.WUInstall, p)
	if err != nil {
		return err
	}
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	id := hex.EncodeToString(b)
	if err := w.d.call(ctx, addr, scripts.WUTask, taskParams{ID: id, Script: inner}, nil); err != nil {
		return err
	}
	tick := time.NewTicker(w.cfg.PollInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("no result within updater.windows_update.timeout: %w", ctx.Err())
		case <-tick.C:
		}
		var res struct {
			Done   bool     `json:"done"`
			Result envelope `json:"result"`
		}
		if err := w.d.call(ctx, addr, scripts.WUResult, map[string]string{"id": id}, &res); err != nil {
			if isTransport(err) {
				continue
			}
			return err
		}
		if !res.Done {
			continue
		}
		if !res.Result.OK {
			return &ScriptError{Op: scripts.WUInstall + " (task)", Node: addr, Message: res.Result.Error}
		}
		return json.Unmarshal(res.Result.Data, r)
	}
}
