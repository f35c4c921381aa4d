package sim

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/droverhq/drover/drivers"
)

func init() {
	drivers.Register(drivers.Info{Name: "sim", NewConfig: func() drivers.Config { return NewConfig() }})
	drivers.RegisterUpdater(drivers.UpdaterInfo{Name: "sim", NewConfig: func() drivers.UpdaterConfig { return &UpdaterConfig{} }})
}

// Config is the "sim" driver's config section.
type Config struct {
	// URL of a running sim server; empty runs the simulator in-process.
	URL string `mapstructure:"url"`
	// ClusterFile is the cluster to simulate in-process (required without url);
	// a relative path resolves against the config file's folder. With url it is
	// ignored: the server simulates its own cluster (so DROVER_CLUSTER_SIM_URL
	// turns any in-process config into a client of a running server).
	ClusterFile string `mapstructure:"cluster_file"`
	// TimeScale is model seconds per wall second of the in-process simulator
	// (a remote server has its own).
	TimeScale float64 `mapstructure:"time_scale"`
	// Timeout bounds one request attempt.
	Timeout time.Duration `mapstructure:"timeout"`
	// Retries after 5xx answers and transport errors (0 = none).
	Retries int `mapstructure:"retries"`
}

// NewConfig returns a config with its defaults.
func NewConfig() *Config {
	return &Config{TimeScale: 1, Timeout: 10 * time.Second, Retries: 4}
}

var _ drivers.Config = (*Config)(nil)

// Validate checks the section; field names are relative to it.
func (c *Config) Validate() error {
	if c.URL != "" {
		const fix = "give http://HOST:PORT of `drover sim serve`, or leave it empty to simulate in-process"
		u, err := drivers.ParseURL(c.URL)
		switch {
		case err != nil:
			return drivers.Fieldf("url", fix, "not a URL: %v", err)
		case u.Scheme != "http" && u.Scheme != "https":
			return drivers.Fieldf("url", fix, "not an http or https URL")
		case u.Host == "":
			return drivers.Fieldf("url", fix, "no host")
		}
	} else if c.ClusterFile == "" {
		return drivers.Fieldf("cluster_file", "give a cluster file, e.g. testdata/clusters/demo.yaml, or a url", "is required when url is empty")
	}
	if !finite(c.TimeScale) || c.TimeScale <= 0 || c.TimeScale > 1e6 {
		return drivers.Fieldf("time_scale", "give model seconds per wall second, e.g. 1 or 60", "must be > 0 and <= 1e6, got %v", c.TimeScale)
	}
	if c.Timeout <= 0 {
		return drivers.Fieldf("timeout", "give a duration such as 10s", "must be > 0, got %s", c.Timeout)
	}
	if c.Retries < 0 || c.Retries > 20 {
		return drivers.Fieldf("retries", "give 0..20", "out of range: %d", c.Retries)
	}
	return nil
}

// Open starts the in-process simulator or connects to the server at URL.
func (c *Config) Open(ctx context.Context, env drivers.Env) (drivers.Driver, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	retries := c.Retries
	if retries == 0 {
		retries = -1 // ClientOptions: 0 means default, negative means none
	}
	opts := ClientOptions{Timeout: c.Timeout, Retries: retries, Logger: env.Logger}
	if c.URL != "" {
		d, err := Dial(ctx, c.URL, opts)
		if err != nil {
			return nil, fmt.Errorf("open sim driver: %w", err)
		}
		return d, nil
	}
	path := c.ClusterFile
	if !filepath.IsAbs(path) && env.BaseDir != "" {
		path = filepath.Join(env.BaseDir, path)
	}
	d, err := NewEmbedded(ctx, EmbeddedOptions{ClusterFile: path, TimeScale: c.TimeScale, ClientOptions: opts})
	if err != nil {
		return nil, fmt.Errorf("open sim driver: %w", err)
	}
	return d, nil
}

// UpdaterConfig is the "sim" update plug-in's (empty) config section: it installs
// the simulated updates through the cluster's sim driver.
type UpdaterConfig struct{}

var _ drivers.UpdaterConfig = (*UpdaterConfig)(nil)

// Validate accepts the empty section.
func (*UpdaterConfig) Validate() error { return nil }

// Open returns the cluster's sim driver, which is also the updater.
func (*UpdaterConfig) Open(_ context.Context, env drivers.Env) (drivers.Updater, error) {
	d, ok := env.Driver.(*Driver)
	if !ok {
		return nil, fmt.Errorf("open sim updater: the cluster driver is %T; the sim updater works only with the sim driver", env.Driver)
	}
	return d, nil
}
