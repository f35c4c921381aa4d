package vsphere

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	esxcli "github.com/vmware/govmomi/cli/esx"
	"github.com/vmware/govmomi/object"

	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/drivers"
)

// EsxcliConfig is the esxcli update plug-in's section (cluster.updater.esxcli): an
// image profile from a depot, applied with `esxcli software profile update`.
type EsxcliConfig struct {
	// Depot is the depot's index.xml URL or an offline bundle path the host can read.
	Depot string `mapstructure:"depot"`
	// Profile is the image profile's name, e.g. ESXi-8.0U3c-24280767-standard.
	Profile string `mapstructure:"profile"`
	// Timeout bounds one esxcli call (default 30m: an install downloads the depot).
	Timeout time.Duration `mapstructure:"timeout"`
}

// NewEsxcliConfig returns the defaults.
func NewEsxcliConfig() *EsxcliConfig { return &EsxcliConfig{Timeout: 30 * time.Minute} }

// Validate checks the section without I/O.
func (c *EsxcliConfig) Validate() error {
	var errs []error
	for _, f := range []struct{ field, v, fix string }{
		{"depot", c.Depot, "give the depot's index.xml URL, e.g. https://depot.example.com/esxi8/index.xml, or an offline bundle path on the host"},
		{"profile", c.Profile, "give the image profile's name, e.g. ESXi-8.0U3c-24280767-standard (esxcli software sources profile list -d DEPOT)"},
	} {
		switch {
		case strings.TrimSpace(f.v) == "":
			errs = append(errs, drivers.Fieldf(f.field, f.fix, "required"))
		case strings.ContainsAny(f.v, "<>&\"' \t\n") || strings.HasPrefix(f.v, "-"):
			errs = append(errs, drivers.Fieldf(f.field, f.fix, "contains characters esxcli arguments cannot carry"))
		}
	}
	if c.Timeout <= 0 {
		errs = append(errs, drivers.Fieldf("timeout", "use a positive duration such as 30m", "must be positive, got %s", c.Timeout))
	}
	return errors.Join(errs...)
}

// Open reuses the vsphere driver's connection.
func (c *EsxcliConfig) Open(_ context.Context, env drivers.Env) (drivers.Updater, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	d, ok := env.Driver.(*Driver)
	if !ok {
		return nil, drivers.Fieldf("cluster.updater.kind", "use esxcli with cluster.driver: vsphere, or the command updater over SSH", "the esxcli plug-in needs the vsphere driver")
	}
	log := env.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Esxcli{cfg: *c, d: d, log: log}, nil
}

// Esxcli is the "esxcli" update plug-in.
type Esxcli struct {
	cfg EsxcliConfig
	d   *Driver
	log *slog.Logger
}

var _ drivers.Updater = (*Esxcli)(nil)

func (u *Esxcli) run(ctx context.Context, node string, dryRun bool) (esxcli.Values, error) {
	h, err := u.d.host(ctx, node)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, u.cfg.Timeout)
	defer cancel()
	x, err := esxcli.NewExecutor(ctx, u.d.c, object.NewHostSystem(u.d.c, h.Self))
	if err != nil {
		return nil, unavailable("esxcli on "+node, err)
	}
	args := []string{"software", "profile", "update", "-d", u.cfg.Depot, "-p", u.cfg.Profile}
	if dryRun {
		args = append(args, "--dry-run=true")
	}
	res, err := x.Run(ctx, args)
	if err != nil {
		var f *esxcli.Fault
		if errors.As(err, &f) {
			return nil, fmt.Errorf("esxcli %s on %s: %s", strings.Join(args[:3], " "), node, f.MessageDetail())
		}
		return nil, unavailable("esxcli on "+node, err)
	}
	if len(res.Values) == 0 {
		return esxcli.Values{}, nil
	}
	return res.Values[0], nil
}

// Scan lists what `software profile update --dry-run` would install.
func (u *Esxcli) Scan(ctx context.Context, node string) ([]cluster.Update, error) {
	v, err := u.run(ctx, node, true)
	if err != nil {
		return nil, err
	}
	return vibUpdates(v["VIBsInstalled"]), nil
}

// Install applies the profile; the host must be in maintenance mode.
func (u *Esxcli) Install(ctx context.Context, node string) (drivers.InstallResult, error) {
	h, err := u.d.host(ctx, node)
	if err != nil {
		return drivers.InstallResult{}, err
	}
	if rt := runtimeOf(h); !rt.InMaintenanceMode {
		return drivers.InstallResult{}, fmt.Errorf("install on %s: the host is not in maintenance mode: %w", node, drivers.ErrRejected)
	}
	v, err := u.run(ctx, node, false)
	if err != nil {
		return drivers.InstallResult{}, err
	}
	res := drivers.InstallResult{
		Installed:      vibUpdates(v["VIBsInstalled"]),
		RebootRequired: strings.EqualFold(v.Value("RebootRequired"), "true"),
		Output:         v.Value("Message"),
	}
	u.log.Info("esxcli profile applied", "node", node, "vibs", len(res.Installed), "reboot_required", res.RebootRequired)
	return res, nil
}

// vibUpdates turns VIB IDs (Vendor_type_name_version) into updates.
func vibUpdates(ids []string) []cluster.Update {
	var out []cluster.Update
	for _, id := range ids {
		if u, ok := ParseVIBID(id); ok {
			out = append(out, u)
		}
	}
	return out
}

// ParseVIBID splits a VIB ID such as VMware_bootbank_esx-base_8.0.3-0.55.24280767
// into the VIB's name and version; false for anything else.
func ParseVIBID(id string) (cluster.Update, bool) {
	id = strings.TrimSpace(id)
	parts := strings.Split(id, "_")
	if len(parts) < 4 {
		return cluster.Update{}, false
	}
	name := strings.Join(parts[2:len(parts)-1], "_")
	version := parts[len(parts)-1]
	if name == "" || version == "" || parts[0] == "" || parts[1] == "" {
		return cluster.Update{}, false
	}
	return cluster.Update{Name: name, Version: version}, true
}
