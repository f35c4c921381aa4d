package policies

import "fmt"

// FieldError is a bad option value: which field, what is wrong, how to fix it. Same
// shape as drivers.FieldError (policies cannot import drivers: drivers imports us), so
// the CLI can print both alike.
type FieldError struct {
	Field   string // dotted path relative to the option struct, e.g. "window.start"
	Problem string
	Fix     string
}

func (e *FieldError) Error() string {
	msg := e.Field + ": " + e.Problem
	if e.Fix != "" {
		msg += " (" + e.Fix + ")"
	}
	return msg
}

func fieldf(field, fix, problem string, args ...any) *FieldError {
	return &FieldError{Field: field, Problem: fmt.Sprintf(problem, args...), Fix: fix}
}
