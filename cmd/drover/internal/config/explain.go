package config

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"

	"github.com/droverhq/drover/drivers"
)

// genericFix is what the decoder says for every type error; explain replaces it
// with what to write for the key's type.
const genericFix = "give a value of the right type"

var typeFixes = []struct {
	hint, fix string
}{
	{"duration", "write a duration with its unit, such as 90s, 15m or 1h"},
	{"'bool'", "write true or false"},
	{"ParseBool", "write true or false"},
	{"'int", "write a whole number, e.g. 4"},
	{"'uint", "write a whole number, e.g. 4"},
	{"ParseInt", "write a whole number, e.g. 4"},
	{"ParseUint", "write a whole number, e.g. 4"},
	{"'float", "write a number, e.g. 1.5"},
	{"ParseFloat", "write a number, e.g. 1.5"},
}

// index strips list indexes from a field name: policy.nodes[2] -> policy.nodes.
var index = regexp.MustCompile(`\[\d+\]`)

// EnvName is the environment variable of a config key:
// policy.max_parallel_migrations -> DROVER_POLICY_MAX_PARALLEL_MIGRATIONS.
func EnvName(key string) string {
	key = index.ReplaceAllString(key, "")
	return EnvPrefix + "_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// explain makes field errors say what to write for the key's type instead of the
// decoder's "give a value of the right type", and names the environment variable a
// wrong value came from (an env-only key is otherwise hard to find: it is in no
// file). fromFlag tells keys set on the command line, which beat the environment.
// Values are never repeated: the key may hold a secret.
func explain(err error, fromFlag func(key string) bool) error {
	if err == nil {
		return nil
	}
	var out []error
	for _, e := range flatten(err) {
		var fe *drivers.FieldError
		if !errors.As(e, &fe) {
			out = append(out, e)
			continue
		}
		c := *fe
		if c.Fix == genericFix {
			for _, tf := range typeFixes {
				if strings.Contains(c.Problem, tf.hint) {
					c.Fix = tf.fix
					break
				}
			}
		}
		if env := EnvName(c.Field); !strings.HasPrefix(c.Field, "-") && !fromFlag(c.Field) && os.Getenv(env) != "" {
			c.Problem = fmt.Sprintf("%s (set by environment variable %s)", c.Problem, env)
		}
		out = append(out, &c)
	}
	return errors.Join(out...)
}

// flatten lists the errors of an errors.Join tree.
func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}
