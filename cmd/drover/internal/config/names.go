package config

import (
	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/drivers"
)

// checkName refuses a cluster name with characters that split paths or fields, or
// that a terminal would obey (control and bidi characters).
func checkName(field, name string) error {
	if err := cluster.CheckName(field, name); err != nil {
		return err
	}
	for _, r := range name {
		switch r {
		case ' ', '/':
			return drivers.Fieldf(field, "use letters, digits, '-' and '_'", "invalid name %q", name)
		}
	}
	return nil
}
