package dashboard

import (
	"bytes"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func testSealer(t *testing.T, key byte) *sealer {
	t.Helper()
	s, err := newSealer(bytes.Repeat([]byte{key}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSealer_OpensOnlyItsOwnFreshCookies(t *testing.T) {
	s := testSealer(t, 1)
	now := time.Now()
	v, err := s.seal(session{Token: "secret-token", Expires: now.Add(time.Hour).Unix(), CSRF: "c1"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(v, "secret-token") {
		t.Fatal("the cookie holds the token in clear")
	}
	got, err := s.open(v, now)
	if err != nil || got.Token != "secret-token" || got.CSRF != "c1" {
		t.Fatalf("open = %+v, %v", got, err)
	}
	flip := []byte(v)
	flip[len(flip)/2] ^= 1
	tests := []struct {
		name  string
		s     *sealer
		value string
		at    time.Time
	}{
		{"expired", s, v, now.Add(2 * time.Hour)},
		{"tampered", s, string(flip), now},
		{"other-key", testSealer(t, 2), v, now},
		{"garbage", s, "not base64 !", now},
		{"empty", s, "", now},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.s.open(tt.value, tt.at); err == nil {
				t.Error("opened")
			}
		})
	}
	if _, err := newSealer([]byte("short")); err == nil {
		t.Error("a 5-byte key was accepted")
	}
}

func TestSessionCookie_Flags(t *testing.T) {
	r := httptest.NewRequest("POST", "/signin", nil)
	c := sessionCookie(r, "v", 3600)
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Secure || c.MaxAge != 3600 || c.Path != "/" {
		t.Errorf("cookie over HTTP = %+v", c)
	}
	r.TLS = &tls.ConnectionState{}
	if c := sessionCookie(r, "v", 3600); !c.Secure {
		t.Error("cookie over TLS is not Secure")
	}
}

func TestLocalPath(t *testing.T) {
	for in, want := range map[string]string{
		"/runs/x":              "/runs/x",
		"/runs?cluster=a":      "/runs?cluster=a",
		"//evil.example/":      "/",
		"https://evil.example": "/",
		"/\\evil.example":      "/",
		"":                     "/",
		"runs":                 "/",
	} {
		if got := localPath(in); got != want {
			t.Errorf("localPath(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzOpenCookie: a cookie value is untrusted input. Opening never panics, and
// only what the sealer sealed opens.
func FuzzOpenCookie(f *testing.F) {
	s, err := newSealer(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		f.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	sealed := session{Token: "t", Expires: now.Add(time.Hour).Unix(), CSRF: "c"}
	good, err := s.seal(sealed)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add("")
	f.Add("AAAA")
	f.Add(good[:len(good)-2])
	f.Fuzz(func(t *testing.T, v string) {
		sess, err := s.open(v, now)
		if err != nil {
			return
		}
		// Seals carry a random nonce, so a worker's corpus may hold another
		// seal of the same session: what opens must be exactly that session.
		if sess != sealed {
			t.Fatalf("a value the sealer did not make opened: %q -> %+v", v, sess)
		}
	})
}
