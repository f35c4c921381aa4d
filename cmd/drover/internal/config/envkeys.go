package config

import (
	"reflect"
	"strings"

	"github.com/spf13/viper"

	"github.com/droverhq/drover/drivers"
)

// bindDriverEnv makes the keys of every driver's and update plug-in's section
// readable from the environment, like the keys of defaults(): viper reads an
// environment variable only for a key it knows, and a section's keys are known only
// when the file has them, so DROVER_CLUSTER_SIM_TIMEOUT was silently ignored. Bound
// keys without a variable stay absent: no section appears that the user did not set.
func bindDriverEnv(v *viper.Viper) {
	for _, name := range drivers.Names() {
		info, _ := drivers.Lookup(name)
		for _, k := range structKeys(reflect.TypeOf(info.NewConfig())) {
			_ = v.BindEnv("cluster." + name + "." + k)
		}
	}
	_ = v.BindEnv("cluster.updater.kind")
	for _, name := range drivers.UpdaterNames() {
		info, _ := drivers.LookupUpdater(name)
		for _, k := range structKeys(reflect.TypeOf(info.NewConfig())) {
			_ = v.BindEnv("cluster.updater." + name + "." + k)
		}
	}
}

// structKeys lists the dotted mapstructure keys of a config struct's leaves
// (nested structs are walked; maps and lists of structs cannot come from one
// variable and are left out).
func structKeys(t reflect.Type) []string {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Kind() != reflect.Struct {
		return nil
	}
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag, opts, _ := strings.Cut(f.Tag.Get("mapstructure"), ",")
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		switch {
		case opts == "squash":
			out = append(out, structKeys(ft)...)
			continue
		case tag == "-" || tag == "":
			continue
		}
		switch {
		case ft.Kind() == reflect.Struct && ft.PkgPath() != "time":
			for _, k := range structKeys(ft) {
				out = append(out, tag+"."+k)
			}
		case ft.Kind() == reflect.Map, ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
		default:
			out = append(out, tag)
		}
	}
	return out
}
