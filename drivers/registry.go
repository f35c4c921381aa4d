package drivers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/droverhq/drover/cluster"
	"github.com/go-viper/mapstructure/v2"
)

// Env is what a driver or update plug-in gets from the process that opens it.
type Env struct {
	Logger *slog.Logger
	// BaseDir resolves relative paths in the config (the config file's folder).
	BaseDir string
	// Driver is the cluster's opened driver; set only when opening update plug-ins,
	// so that a plug-in can reuse the platform's connection (the sim updater does).
	Driver Driver
}

// Config is one driver's decoded config section. Validate runs before any I/O and
// reports bad fields as *FieldError; Open connects.
type Config interface {
	Validate() error
	Open(ctx context.Context, env Env) (Driver, error)
}

// UpdaterConfig is one update plug-in's decoded config section.
type UpdaterConfig interface {
	Validate() error
	Open(ctx context.Context, env Env) (Updater, error)
}

// Info registers a driver. NewConfig returns a pointer to a zero config with its
// defaults set; it must have no side effects.
type Info struct {
	Name      string
	NewConfig func() Config
	// NodeShell says the driver reaches its nodes over SSH itself and lends that
	// connection to update plug-ins without one of their own (updaters.NodeShell),
	// so that config validation can tell whether such a plug-in can run at all.
	NodeShell bool
}

// NodeShellUser is an update plug-in config that runs over the driver's SSH when it
// has no connection section of its own.
type NodeShellUser interface {
	// WithoutNodeShell validates the config for a driver that lends no SSH: a
	// *FieldError, relative to the plug-in's section, names what is then missing.
	WithoutNodeShell() error
}

// UpdaterInfo registers an update plug-in.
type UpdaterInfo struct {
	Name      string
	NewConfig func() UpdaterConfig
}

type registry struct {
	mu       sync.RWMutex
	drivers  map[string]Info
	updaters map[string]UpdaterInfo
}

// The registry is the one piece of package state: drivers register themselves from
// init, as database/sql drivers do, and it is read-only afterwards.
var reg = registry{drivers: map[string]Info{}, updaters: map[string]UpdaterInfo{}}

// Register makes a driver available by name. It panics on an empty name, a nil
// constructor or a duplicate: those are programming errors.
func Register(info Info) {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	if info.Name == "" || info.NewConfig == nil {
		panic("drivers: Register needs a name and NewConfig")
	}
	if _, dup := reg.drivers[info.Name]; dup {
		panic("drivers: driver registered twice: " + info.Name)
	}
	reg.drivers[info.Name] = info
}

// RegisterUpdater makes an update plug-in available by name.
func RegisterUpdater(info UpdaterInfo) {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	if info.Name == "" || info.NewConfig == nil {
		panic("drivers: RegisterUpdater needs a name and NewConfig")
	}
	if _, dup := reg.updaters[info.Name]; dup {
		panic("drivers: updater registered twice: " + info.Name)
	}
	reg.updaters[info.Name] = info
}

// Lookup returns the registered driver called name.
func Lookup(name string) (Info, bool) {
	reg.mu.RLock()
	defer reg.mu.RUnlock()
	info, ok := reg.drivers[name]
	return info, ok
}

// LookupUpdater returns the registered update plug-in called name.
func LookupUpdater(name string) (UpdaterInfo, bool) {
	reg.mu.RLock()
	defer reg.mu.RUnlock()
	info, ok := reg.updaters[name]
	return info, ok
}

// Names lists the registered drivers, sorted.
func Names() []string {
	reg.mu.RLock()
	defer reg.mu.RUnlock()
	return sortedKeys(reg.drivers)
}

// UpdaterNames lists the registered update plug-ins, sorted.
func UpdaterNames() []string {
	reg.mu.RLock()
	defer reg.mu.RUnlock()
	return sortedKeys(reg.updaters)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// FieldError is a bad config value: which field, what is wrong, how to fix it. It is
// the policies package's type (drivers import policies, not the reverse), so that one
// errors.As finds both.
type FieldError = cluster.FieldError

// Fieldf builds a *FieldError.
func Fieldf(field, fix, problem string, args ...any) *FieldError {
	return &FieldError{Field: field, Problem: fmt.Sprintf(problem, args...), Fix: fix}
}

// PrefixFields puts prefix (e.g. "cluster.sim") in front of the field of every
// *FieldError inside err, so a driver can name its fields relative to its section.
func PrefixFields(prefix string, err error) error {
	if err == nil {
		return nil
	}
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range joined.Unwrap() {
			out = append(out, PrefixFields(prefix, e))
		}
		return errors.Join(out...)
	}
	var fe *FieldError
	if errors.As(err, &fe) {
		return &FieldError{Field: prefix + "." + fe.Field, Problem: fe.Problem, Fix: fe.Fix}
	}
	return err
}

// Decode fills the struct pointed to by out from a raw config section (as read from
// YAML or the environment). Field names come from `mapstructure` tags; unknown keys are
// errors naming the key; strings convert to numbers, booleans and durations
// ("15m"), because environment variables are strings.
func Decode(raw map[string]any, out any) error {
	var md mapstructure.Metadata
	dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		Result:           out,
		Metadata:         &md,
		WeaklyTypedInput: true,
		DecodeHook: mapstructure.ComposeDecodeHookFunc(
			refuseBareDurations,
			mapstructure.StringToTimeDurationHookFunc(),
			mapstructure.TextUnmarshallerHookFunc(),
			mapstructure.StringToSliceHookFunc(","),
		),
	})
	if err != nil {
		return fmt.Errorf("build config decoder: %w", err)
	}
	if err := dec.Decode(raw); err != nil {
		return decodeError(err)
	}
	if len(md.Unused) > 0 {
		sort.Strings(md.Unused)
		var errs []error
		for _, k := range md.Unused {
			errs = append(errs, Fieldf(k, "remove it or check its spelling; known keys: "+strings.Join(knownKeys(out), ", "), "unknown key"))
		}
		return errors.Join(errs...)
	}
	return nil
}

var durationType = reflect.TypeOf(time.Duration(0))

// refuseBareDurations rejects numbers for durations: "reboot_timeout: 900" would
// otherwise mean 900 nanoseconds.
func refuseBareDurations(from, to reflect.Type, data any) (any, error) {
	if to != durationType && !(to.Kind() == reflect.Int64 && to.ConvertibleTo(durationType) && reflect.PointerTo(to).Implements(textUnmarshaler)) {
		return data, nil
	}
	switch from.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return nil, fmt.Errorf("%v is a number without a unit: write a duration such as 90s, 15m or 1h", data)
	}
	return data, nil
}

var textUnmarshaler = reflect.TypeOf((*interface{ UnmarshalText([]byte) error })(nil)).Elem()

// decodeError turns mapstructure's errors into field errors ("'time_scale' cannot
// parse value as 'float64'" -> time_scale: cannot parse value as 'float64').
func decodeError(err error) error {
	var fields []error
	collectDecodeErrors(err, &fields)
	if len(fields) == 0 {
		return err
	}
	return errors.Join(fields...)
}

func collectDecodeErrors(err error, out *[]error) {
	var de *mapstructure.DecodeError
	switch {
	case errors.As(err, &de) && err == error(de):
		problem := "invalid value"
		if inner := de.Unwrap(); inner != nil {
			problem = inner.Error()
		}
		*out = append(*out, &FieldError{Field: de.Name(), Problem: problem, Fix: "give a value of the right type"})
	default:
		switch u := err.(type) {
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				collectDecodeErrors(e, out)
			}
		case interface{ Unwrap() error }:
			collectDecodeErrors(u.Unwrap(), out)
		}
	}
}

// knownKeys lists the mapstructure keys of the struct pointed to by out.
func knownKeys(out any) []string {
	t := reflect.TypeOf(out)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	var keys []string
	for i := range t.NumField() {
		tag := t.Field(i).Tag.Get("mapstructure")
		name, _, _ := strings.Cut(tag, ",")
		if name != "" && name != "-" {
			keys = append(keys, name)
		}
	}
	sort.Strings(keys)
	return keys
}
