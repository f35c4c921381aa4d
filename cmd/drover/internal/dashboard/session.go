package dashboard

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// cookieName is the session cookie. The __Host- prefix (under TLS) would bind it to
// the host, but browsers refuse it without Secure, so plain HTTP uses the bare name.
const cookieName = "drover_session"

// sessionTTL is how long a sign-in lasts.
const sessionTTL = 12 * time.Hour

// session is what the sealed cookie holds. The token is needed in clear to call the
// API on the user's behalf; the cookie is HttpOnly and sealed, and the token is
// checked again on every request, so a token removed from the config ends its
// sessions at once.
type session struct {
	Token   string `json:"t"`
	Expires int64  `json:"e"`
	CSRF    string `json:"c"`
}

// user is a signed-in session, checked against the daemon's tokens.
type user struct {
	session
	Name     string
	Operator bool
}

// sealer seals sessions into cookie values and opens them.
type sealer struct {
	aead cipher.AEAD
}

func newSealer(key []byte) (*sealer, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("dashboard: session key must be 32 bytes, got %d", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("dashboard: session key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("dashboard: session key: %w", err)
	}
	return &sealer{aead: aead}, nil
}

func (s *sealer) seal(sess session) (string, error) {
	b, err := json.Marshal(sess)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	out := s.aead.Seal(nonce, nonce, b, []byte(cookieName))
	return base64.RawURLEncoding.EncodeToString(out), nil
}

var errNoSession = errors.New("no valid session")

func (s *sealer) open(v string, now time.Time) (session, error) {
	b, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil || len(b) < s.aead.NonceSize() {
		return session{}, errNoSession
	}
	plain, err := s.aead.Open(nil, b[:s.aead.NonceSize()], b[s.aead.NonceSize():], []byte(cookieName))
	if err != nil {
		return session{}, errNoSession
	}
	var sess session
	if err := json.Unmarshal(plain, &sess); err != nil || sess.Token == "" || sess.CSRF == "" {
		return session{}, errNoSession
	}
	if now.Unix() >= sess.Expires {
		return session{}, errNoSession
	}
	return sess, nil
}

func newCSRF() string {
	return rand.Text()
}

// sessionCookie is the cookie that carries value; Secure when the request came over
// TLS. An empty value with maxAge -1 deletes it.
func sessionCookie(r *http.Request, value string, maxAge int) *http.Cookie {
	return &http.Cookie{
		Name: cookieName, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	}
}

// user returns the request's signed-in user, if its cookie is valid and its token
// still known to the daemon.
func (d *Dashboard) user(r *http.Request) (user, bool) {
	c, err := r.Cookie(cookieName)
	if err != nil {
		return user{}, false
	}
	sess, err := d.sealer.open(c.Value, time.Now())
	if err != nil {
		return user{}, false
	}
	name, role, ok := d.cfg.Identify(sess.Token)
	if !ok {
		return user{}, false
	}
	return user{session: sess, Name: name, Operator: role == "operator"}, true
}

// checkCSRF refuses a state-changing request that comes from another origin or
// does not carry the session's CSRF token (form field "csrf" or header
// X-CSRF-Token).
func (d *Dashboard) checkCSRF(r *http.Request, u user) error {
	if err := d.origin.Check(r); err != nil {
		return err
	}
	got := r.Header.Get("X-CSRF-Token")
	if got == "" {
		got = r.PostFormValue("csrf")
	}
	if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(u.CSRF)) != 1 {
		return errors.New("missing or wrong CSRF token: reload the page and try again")
	}
	return nil
}
