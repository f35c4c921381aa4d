package policies

import "github.com/droverhq/drover/cluster"

// fieldf names a bad option value the way every layer of Drover does.
func fieldf(field, fix, problem string, args ...any) *cluster.FieldError {
	return cluster.Fieldf(field, fix, problem, args...)
}
