package server

import (
	"crypto/sha256"
	"net/http"

	"github.com/droverhq/drover/cmd/drover/internal/dashboard"
	"github.com/droverhq/drover/drivers"
)

// mountDashboard serves the web dashboard at / on the API's mux: it calls the API
// in-process with the signed-in user's token, so it has exactly that token's rights.
func (s *Server) mountDashboard(mux *http.ServeMux) error {
	d, err := dashboard.New(dashboard.Config{
		API: mux, Store: s.cfg.Store, Identify: s.identifyToken, SessionKey: s.sessionKey(),
		Clock: func(name string) drivers.Clock {
			if c, ok := s.clusters[name]; ok {
				return c.eng.Clock()
			}
			return nil
		},
		Logger: s.cfg.Logger, Version: s.cfg.Version,
	})
	if err != nil {
		return err
	}
	mux.Handle("/", d)
	return nil
}

// identifyToken checks a token as the API would (constant time over every digest).
func (s *Server) identifyToken(secret string) (name, role string, ok bool) {
	t, ok := s.auth.identify(&http.Request{Header: http.Header{"Authorization": {"Bearer " + secret}}})
	return t.Name, t.Role.String(), ok
}

// sessionKey seals the dashboard's session cookies. It is derived from the token
// digests, so sessions survive a restart and end when the tokens change.
func (s *Server) sessionKey() []byte {
	h := sha256.New()
	h.Write([]byte("drover dashboard session key v1\x00"))
	for _, t := range s.cfg.Tokens {
		h.Write([]byte(t.Name + "\x00" + t.Role.String() + "\x00"))
		h.Write(t.Digest[:])
	}
	return h.Sum(nil)
}
