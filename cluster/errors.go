package cluster

import "fmt"

// FieldError is a bad value: which field, what is wrong, how to fix it. Config,
// policies, drivers and the API all report bad input with it, so the CLI prints them
// alike and exits 2.
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

// Fieldf builds a FieldError with a formatted problem.
func Fieldf(field, fix, problem string, args ...any) *FieldError {
	return &FieldError{Field: field, Problem: fmt.Sprintf(problem, args...), Fix: fix}
}
