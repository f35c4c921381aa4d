package drivers

import (
	"errors"
	"net/url"
	"strings"
)

// ParseURL parses s as url.Parse does, but its error never repeats s or any part of
// it: url.Parse quotes the whole URL, a bad port or a bad escape, and a URL mistyped
// around its user info ("https://admin:secret/sdk" reads "secret" as the port)
// carries a password. The error names only the cause; callers say what the string
// was meant to be ("not a URL: %v").
func ParseURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err == nil {
		return u, nil
	}
	return nil, urlProblem(err)
}

// urlProblem names the cause of a url.Parse error in words of its own.
func urlProblem(err error) error {
	var esc url.EscapeError
	var host url.InvalidHostError
	var ue *url.Error
	cause := ""
	if errors.As(err, &ue) {
		cause = ue.Err.Error()
	}
	switch {
	case errors.As(err, &esc):
		return errors.New("a % not followed by two hex digits (write a literal % as %25)")
	case errors.As(err, &host):
		return errors.New("a character not allowed in a host name")
	case strings.Contains(cause, "invalid port"):
		return errors.New("what follows the host's colon is not a port number (user info does not belong in the URL)")
	case strings.Contains(cause, "control character"):
		return errors.New("it holds a control character (a stray newline or tab?)")
	case strings.Contains(cause, "missing protocol scheme"), strings.Contains(cause, "cannot contain colon"):
		return errors.New("no scheme (begin with https://)")
	default:
		return errors.New("not in URL syntax")
	}
}
