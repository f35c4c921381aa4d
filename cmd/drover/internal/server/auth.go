package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
)

// Role is what a token may do. An operator may do what a viewer may.
type Role int

const (
	// RoleNone: no token or an unknown one.
	RoleNone Role = iota
	// RoleViewer reads: clusters, runs, reports, events, metrics, preview.
	RoleViewer
	// RoleOperator also starts, stops, resumes and approves runs and switches the
	// schedule's pause.
	RoleOperator
)

func (r Role) String() string {
	switch r {
	case RoleViewer:
		return "viewer"
	case RoleOperator:
		return "operator"
	}
	return "none"
}

// ParseRole reads "viewer" or "operator".
func ParseRole(s string) (Role, error) {
	switch s {
	case "viewer":
		return RoleViewer, nil
	case "operator":
		return RoleOperator, nil
	}
	return RoleNone, fmt.Errorf("unknown role %q: use viewer or operator", s)
}

// Token is an API token as the daemon keeps it: a name for logs, a role, and the
// SHA-256 digest of the secret (never the secret).
type Token struct {
	Name   string
	Role   Role
	Digest [sha256.Size]byte
}

// NewToken makes a Token from a hex SHA-256 digest.
func NewToken(name, role, hexDigest string) (Token, error) {
	r, err := ParseRole(role)
	if err != nil {
		return Token{}, err
	}
	b, err := hex.DecodeString(strings.TrimSpace(hexDigest))
	if err != nil || len(b) != sha256.Size {
		return Token{}, fmt.Errorf("token %s: sha256 is not a 64-digit hex digest", name)
	}
	t := Token{Name: name, Role: r}
	copy(t.Digest[:], b)
	return t, nil
}

// authenticator finds the token of a request.
type authenticator struct {
	tokens []Token
}

// identify returns the token presented in the Authorization header, if it is one
// of ours. Every configured digest is compared, in constant time, whatever matches:
// the time taken says nothing about which token (or how much of one) is right.
func (a *authenticator) identify(r *http.Request) (Token, bool) {
	h := r.Header.Get("Authorization")
	scheme, secret, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return Token{}, false
	}
	secret = strings.TrimSpace(secret)
	if secret == "" {
		return Token{}, false
	}
	sum := sha256.Sum256([]byte(secret))
	var found Token
	match := 0
	for _, t := range a.tokens {
		eq := subtle.ConstantTimeCompare(sum[:], t.Digest[:])
		if eq == 1 {
			found = t
		}
		match |= eq
	}
	return found, match == 1
}

type tokenKey struct{}

// contextWithToken gives the request a slot the auth check fills with its token.
func contextWithToken(r *http.Request, slot *Token) context.Context {
	return context.WithValue(r.Context(), tokenKey{}, slot)
}

// tokenName is the name of the request's token, for logs ("" before auth).
func tokenName(ctx context.Context) string {
	if t, ok := ctx.Value(tokenKey{}).(*Token); ok {
		return t.Name
	}
	return ""
}

// require wraps h: no or an unknown token is 401, a token without the role 403.
func (s *Server) require(role Role, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		t, ok := s.auth.identify(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="drover"`)
			writeError(w, http.StatusUnauthorized, ErrorBody{Error: "missing or unknown bearer token: send Authorization: Bearer TOKEN"})
			return
		}
		if slot, ok := r.Context().Value(tokenKey{}).(*Token); ok {
			*slot = t // for the access log
		}
		if t.Role < role {
			writeError(w, http.StatusForbidden, ErrorBody{Error: fmt.Sprintf("token %s has role %s; this needs %s", t.Name, t.Role, role)})
			return
		}
		h(w, r)
	}
}
