package config

import (
	"errors"
	"reflect"
	"sort"
	"strings"

	"github.com/droverhq/drover/cluster"
)

// sectionKeys rewrites the fix of an unknown key under a section (policy.failbak):
// the decoder lists the top-level keys, which do not help; this lists the keys of
// the section the typo is in and names the closest one.
func sectionKeys(err error, root any) error {
	for _, e := range flatten(err) {
		var fe *cluster.FieldError
		if !errors.As(e, &fe) || fe.Problem != "unknown key" {
			continue
		}
		parent, leaf := "", fe.Field
		if i := strings.LastIndex(fe.Field, "."); i >= 0 {
			parent, leaf = fe.Field[:i], fe.Field[i+1:]
		}
		keys := keysAt(reflect.TypeOf(root), parent)
		if len(keys) == 0 {
			continue
		}
		fix := "remove it or check its spelling"
		if near := closest(leaf, keys); near != "" {
			fix = "did you mean " + joinKey(parent, near) + "? " + fix
		}
		where := "known keys"
		if parent != "" {
			where = "keys of " + parent
		}
		fe.Fix = fix + "; " + where + ": " + strings.Join(keys, ", ")
	}
	return err
}

func joinKey(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// keysAt lists the mapstructure keys of the struct at a dotted path of t (nil when
// the path is no struct, e.g. a driver's section, which its driver checks).
func keysAt(t reflect.Type, path string) []string {
	for _, part := range strings.Split(path, ".") {
		for t != nil && t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t == nil || t.Kind() != reflect.Struct {
			return nil
		}
		if part == "" {
			break
		}
		var next reflect.Type
		for i := range t.NumField() {
			name, _, _ := strings.Cut(t.Field(i).Tag.Get("mapstructure"), ",")
			if name == part {
				next = t.Field(i).Type
			}
		}
		t = next
	}
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Kind() != reflect.Struct {
		return nil
	}
	var keys []string
	for i := range t.NumField() {
		name, opts, _ := strings.Cut(t.Field(i).Tag.Get("mapstructure"), ",")
		if opts == "squash" {
			keys = append(keys, keysAt(t.Field(i).Type, "")...)
			continue
		}
		if name != "" && name != "-" {
			keys = append(keys, name)
		}
	}
	sort.Strings(keys)
	return keys
}

// closest is the key within edit distance of a third of word's length (at least 1),
// "" when none is that close.
func closest(word string, keys []string) string {
	best, bestD := "", max(1, len(word)/3)+1
	for _, k := range keys {
		if d := editDistance(word, k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// UnknownPolicyEnv lists the DROVER_POLICY_* variables of environ that name no
// policy key, each with the closest variable that does: viper reads a variable only
// for a key it knows, so a misspelled one would be silently ignored.
func UnknownPolicyEnv(environ []string) []string {
	var known []string
	for _, k := range policyLeaves() {
		known = append(known, EnvName("policy."+k))
	}
	isKnown := map[string]bool{}
	for _, k := range known {
		isKnown[k] = true
	}
	var out []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, EnvPrefix+"_POLICY_") || isKnown[name] {
			continue
		}
		msg := name + " names no policy key and is ignored"
		if near := closest(name, known); near != "" {
			msg += "; did you mean " + near + "?"
		}
		out = append(out, msg)
	}
	sort.Strings(out)
	return out
}

func policyLeaves() []string {
	t := reflect.TypeOf(Config{})
	f, _ := t.FieldByName("Policy")
	return structKeys(f.Type)
}
