package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/droverhq/drover/cmd/drover/internal/config"
	"github.com/droverhq/drover/cmd/drover/internal/limits"
	"github.com/droverhq/drover/drivers"
	"github.com/droverhq/drover/orchestrator"
	"github.com/droverhq/drover/runs"
)

// storeMode says how a command uses the state file.
type storeMode int

const (
	noStore storeMode = iota
	readStore
	writeStore
)

type sessionOptions struct {
	store  storeMode
	driver bool
	// quiet lowers the default log level (live displays show progress themselves).
	quiet   bool
	command string
}

// session is what a command works with: config, logger, and the store and driver it
// asked for. Close releases all of them.
type session struct {
	cfg       *config.Config
	log       *slog.Logger
	logTo     *logSink // where log lines go: a live display takes them over
	store     *runs.Store
	driver    drivers.Driver
	updater   drivers.Updater
	observers *orchestrator.Observers
	owner     runs.Owner
	io        IOStreams
	// A session that may write opens the state file read-only at first (store is
	// nil when the file does not exist yet): writable reopens it for writing once
	// the command has checked all its input, so that bad input writes nothing,
	// not even a new empty state file.
	statePath string
	canWrite  bool
	writing   bool
	// acceptStored: --accept-stored-policy.
	acceptStored bool
}

// openSession validates everything a command needs before it touches anything, so
// that bad input writes nothing; then it opens the store and the driver.
func (f *Factory) openSession(ctx context.Context, opts sessionOptions) (*session, error) {
	cfg, err := f.Config()
	if err != nil {
		return nil, err
	}
	sink := &logSink{w: f.IO.ErrOut}
	s := &session{cfg: cfg, log: f.logger(cfg, opts.quiet, sink), logTo: sink, observers: &orchestrator.Observers{}, io: f.IO, acceptStored: f.AcceptStoredPolicy}
	var (
		dc    drivers.Config
		uc    drivers.UpdaterConfig
		ukind string
		dcErr error
	)
	if opts.driver {
		dc, dcErr = cfg.DriverConfig()
		if dcErr == nil {
			ukind, uc, dcErr = cfg.UpdaterConfig()
		}
		if dcErr != nil {
			return nil, usageErr(dcErr)
		}
	}
	if opts.store != noStore {
		path, err := statePath(cfg, false)
		if err != nil {
			return nil, usageErr(err)
		}
		s.owner = runs.Self(opts.command, time.Now())
		s.statePath, s.canWrite = path, opts.store == writeStore
		st, err := runs.Open(path, runs.Options{ReadOnly: true, Owner: s.owner})
		if err != nil {
			if errors.Is(err, runs.ErrNoState) {
				// Nothing has run yet: read commands show an empty history.
				st = nil
			} else if runs.IsDamaged(err) {
				return nil, failedErr(err)
			} else {
				return nil, usageErr(fmt.Errorf("%w (config key state)", err))
			}
		}
		s.store = st
	}
	if opts.driver {
		env := drivers.Env{Logger: s.log.With("driver", cfg.Cluster.Driver), BaseDir: cfg.BaseDir}
		d, err := dc.Open(ctx, env)
		if err != nil {
			s.Close()
			if errors.Is(err, fs.ErrNotExist) {
				// A file the section names is missing: a config error, not a
				// platform that failed to answer.
				return nil, usageErr(fmt.Errorf("cluster.%s: %w (fix the path in the cluster.%[1]s section; relative paths resolve against the config file's folder)", cfg.Cluster.Driver, err))
			}
			return nil, failedErr(fmt.Errorf("open driver %s: %w", cfg.Cluster.Driver, err))
		}
		s.driver = d
		env.Driver = d
		env.Logger = s.log.With("updater", ukind)
		u, err := uc.Open(ctx, env)
		if err != nil {
			s.Close()
			return nil, failedErr(fmt.Errorf("open update plug-in %s: %w", ukind, err))
		}
		s.updater = u
	}
	return s, nil
}

// statePath returns the state file's path. The default location's folder is
// created; a configured path's folder must exist.
func statePath(cfg *config.Config, create bool) (string, error) {
	if cfg.State != "" {
		return cfg.State, nil
	}
	path, err := config.DefaultStatePath()
	if err != nil {
		return "", err
	}
	if create {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return "", fmt.Errorf("create the default state folder: %w; set `state`", err)
		}
	}
	return path, nil
}

// engine builds the run engine; forceRecovery takes over run locks whose owner
// runs on another host (its liveness cannot be checked from here).
// writable reopens the state file for writing, creating it (and the default state
// folder) when needed. Commands call it, through engine, once their input is checked.
func (s *session) writable() error {
	if s.writing {
		return nil
	}
	if !s.canWrite {
		return errors.New("this command opened the state file read-only")
	}
	if s.store != nil {
		if err := s.store.Close(); err != nil {
			return failedErr(fmt.Errorf("close state file: %w", err))
		}
		s.store = nil
	}
	if _, err := statePath(s.cfg, true); err != nil {
		return usageErr(err)
	}
	st, err := runs.Open(s.statePath, runs.Options{Owner: s.owner})
	if err != nil {
		if runs.IsDamaged(err) {
			return failedErr(err)
		}
		return usageErr(fmt.Errorf("%w (config key state)", err))
	}
	s.store, s.writing = st, true
	return nil
}

// engine opens the state file for writing and returns the run engine.
func (s *session) engine(forceRecovery bool) (*orchestrator.Engine, error) {
	if err := s.writable(); err != nil {
		return nil, err
	}
	return orchestrator.New(orchestrator.Config{
		Cluster:       s.cfg.Cluster.Name,
		Driver:        s.driver,
		Updater:       s.updater,
		Store:         s.store,
		Logger:        s.log,
		Observer:      s.observers,
		Owner:         s.owner,
		ForceRecovery: forceRecovery,
		HealthGateURL: s.cfg.Policy.HealthGate.URL,
	})
}

// Close releases the driver and the store.
func (s *session) Close() {
	if s.driver != nil {
		if err := s.driver.Close(); err != nil {
			s.log.Warn("close driver", "error", err)
		}
	}
	if s.store != nil {
		if err := s.store.Close(); err != nil {
			s.log.Warn("close state file", "error", err)
		}
	}
}

// checkStoredPolicy refuses to execute a run whose stored hook or health-gate
// commands are not the config's, unless --accept-stored-policy: the run executes
// what the state file says.
func (s *session) checkStoredPolicy(runID string) error {
	if s.acceptStored {
		return nil
	}
	r, err := s.store.Run(runID)
	if err != nil {
		return failedErr(err)
	}
	if r.State.Terminal() {
		return nil
	}
	if err := limits.CheckStoredPolicy(r, s.cfg.Policy); err != nil {
		return failedErr(err)
	}
	return nil
}

// stateFolderExists: a state file in a folder that does not exist is a config error
// whose fix is one command, given in full (the folder is not created on a guess: a
// typo in `state` would scatter folders).
func stateFolderExists(path string) error {
	dir := filepath.Dir(path)
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("state file %s: folder %s does not exist: create it with `mkdir -m 700 -p %s`, or set `state` (--state) to a path in an existing folder", path, dir, dir)
	}
	return nil
}
