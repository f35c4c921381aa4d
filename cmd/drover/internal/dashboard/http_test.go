package dashboard_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

var csrfRe = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// client is a browser-less client of the dashboard: no redirects followed, one
// cookie jar.
type client struct {
	t      *testing.T
	base   string
	cookie *http.Cookie
	// tr is the transport (nil: the default one).
	tr http.RoundTripper
}

func (c *client) do(method, path string, form url.Values, hdr map[string]string) (*http.Response, string) {
	c.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, c.base+path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if c.cookie != nil {
		req.AddCookie(c.cookie)
	}
	hc := &http.Client{Transport: c.tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := hc.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestDashboard_SessionAndCSRF drives the sign-in and the forms without a browser:
// the cookie's flags, every way a forged state-changing request can come, and that
// the API's bearer tokens work as before while the cookie opens nothing there.
func TestDashboard_SessionAndCSRF(t *testing.T) {
	d := startDaemon(t, "lab", labCluster, 10, hostileNames)
	c := &client{t: t, base: d.URL}

	resp, _ := c.do("GET", "/", nil, nil)
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/signin") {
		t.Fatalf("signed out GET / = %d to %q, want 303 to /signin", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, _ := c.do("GET", "/runs/last/state", nil, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("signed out state = %d, want 401", resp.StatusCode)
	}
	resp, page := c.do("GET", "/signin", nil, nil)
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("sign-in page CSP = %q", csp)
	}
	if strings.Contains(page, "<nav") {
		t.Error("the sign-in page shows the navigation")
	}

	if resp, _ := c.do("POST", "/signin", url.Values{"token": {"wrong"}}, nil); resp.StatusCode != http.StatusUnauthorized || len(resp.Cookies()) != 0 {
		t.Errorf("wrong token: %d with %d cookies, want 401 and none", resp.StatusCode, len(resp.Cookies()))
	}
	if resp, _ := c.do("POST", "/signin", url.Values{"token": {operatorToken}}, map[string]string{"Origin": "http://evil.example"}); resp.StatusCode != http.StatusForbidden || len(resp.Cookies()) != 0 {
		t.Errorf("cross-origin sign-in: %d with %d cookies, want 403 and none", resp.StatusCode, len(resp.Cookies()))
	}
	resp, _ = c.do("POST", "/signin", url.Values{"token": {operatorToken}, "next": {"//evil.example/"}}, map[string]string{"Origin": d.URL})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Fatalf("sign-in = %d to %q, want 303 to / (never off-site)", resp.StatusCode, resp.Header.Get("Location"))
	}
	for _, ck := range resp.Cookies() {
		if ck.Name == "drover_session" {
			c.cookie = ck
		}
	}
	if c.cookie == nil {
		t.Fatal("no session cookie")
	}
	if !c.cookie.HttpOnly || c.cookie.SameSite != http.SameSiteStrictMode || c.cookie.Secure || c.cookie.MaxAge <= 0 || strings.Contains(c.cookie.Value, operatorToken) {
		t.Errorf("session cookie = %+v: want HttpOnly, SameSite=Strict, expiring, not Secure over HTTP, token sealed", c.cookie)
	}
	_, page = c.do("GET", "/", nil, nil)
	m := csrfRe.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token on the clusters page:\n%s", page)
	}
	csrf := m[1]

	forged := []struct {
		name string
		form url.Values
		hdr  map[string]string
	}{
		{"no-csrf-token", url.Values{}, nil},
		{"wrong-csrf-token", url.Values{"csrf": {"guessed"}}, nil},
		{"foreign-origin", url.Values{"csrf": {csrf}}, map[string]string{"Origin": "http://evil.example"}},
		{"cross-site-fetch", url.Values{"csrf": {csrf}}, map[string]string{"Sec-Fetch-Site": "cross-site"}},
		{"same-site-other-origin", url.Values{"csrf": {csrf}}, map[string]string{"Sec-Fetch-Site": "same-site", "Origin": "http://127.0.0.1:1"}},
	}
	for _, f := range forged {
		t.Run(f.name, func(t *testing.T) {
			resp, body := c.do("POST", "/clusters/lab/start", f.form, f.hdr)
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("forged start = %d, want 403:\n%s", resp.StatusCode, body)
			}
		})
	}
	var list []struct{ ID string }
	if d.api("GET", "/api/v1/runs", viewerToken, "", &list); len(list) != 0 {
		t.Fatalf("forged requests started %d runs", len(list))
	}

	// The real form: same origin, the session's token.
	resp, _ = c.do("POST", "/clusters/lab/start", url.Values{"csrf": {csrf}, "canary": {"on"}}, map[string]string{"Origin": d.URL})
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/runs/") {
		t.Fatalf("start = %d to %q, want 303 to the run", resp.StatusCode, loc)
	}
	id := strings.TrimPrefix(loc, "/runs/")
	resp, state := c.do("GET", "/runs/"+id+"/state", nil, nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(state, `"operator":true`) || !strings.Contains(state, `"id":"`+id+`"`) {
		t.Errorf("state = %d %s", resp.StatusCode, state)
	}

	// The API: bearer tokens as before; the session cookie is no credential there.
	if code := d.api("GET", "/api/v1/runs/"+id, viewerToken, "", nil); code != http.StatusOK {
		t.Errorf("API with a bearer token = %d", code)
	}
	if resp, _ := c.do("GET", "/api/v1/runs/"+id, nil, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("API with the session cookie only = %d, want 401", resp.StatusCode)
	}
	if resp, _ := c.do("GET", "/api/v2/nothing", nil, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("unknown API path = %d, want 401 as before", resp.StatusCode)
	}
	if code := d.api("POST", "/api/v1/runs/"+id+"/stop", operatorToken, "{}", nil); code != http.StatusAccepted {
		t.Errorf("stop through the API = %d", code)
	}

	// Sign out ends the cookie in the browser.
	resp, _ = c.do("POST", "/signout", url.Values{"csrf": {csrf}}, map[string]string{"Origin": d.URL})
	if resp.StatusCode != http.StatusSeeOther || len(resp.Cookies()) != 1 || resp.Cookies()[0].MaxAge >= 0 {
		t.Errorf("sign-out = %d with cookies %v, want 303 deleting the session", resp.StatusCode, resp.Cookies())
	}
	checkLogs(t, d, c.cookie.Value, csrf)
}

// selfSigned makes a certificate for 127.0.0.1 and a pool that trusts it.
func selfSigned(t *testing.T) (*tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "drover dashboard test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// TestDashboard_TLS serves the daemon over HTTPS: the session cookie is Secure, and
// the same-origin checks accept the https origin.
func TestDashboard_TLS(t *testing.T) {
	cert, pool := selfSigned(t)
	d := startDaemon(t, "lab", labCluster, 10, nil, withTLS(cert))
	c := &client{t: t, base: d.URL, tr: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	resp, _ := c.do("POST", "/signin", url.Values{"token": {operatorToken}}, map[string]string{"Origin": d.URL})
	for _, ck := range resp.Cookies() {
		if ck.Name == "drover_session" {
			c.cookie = ck
		}
	}
	if c.cookie == nil || !c.cookie.Secure || !c.cookie.HttpOnly || c.cookie.SameSite != http.SameSiteStrictMode {
		t.Fatalf("session cookie over TLS = %+v, want Secure, HttpOnly, SameSite=Strict", c.cookie)
	}
	_, page := c.do("GET", "/", nil, nil)
	m := csrfRe.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token on the clusters page over TLS:\n%s", page)
	}
	if resp, body := c.do("POST", "/clusters/lab/pause", url.Values{"csrf": {m[1]}, "paused": {"true"}}, map[string]string{"Origin": d.URL, "Sec-Fetch-Site": "same-origin"}); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("same-origin pause over TLS = %d:\n%s", resp.StatusCode, body)
	}
	var ci struct {
		Paused bool `json:"paused"`
	}
	req, _ := http.NewRequest("GET", d.URL+"/api/v1/clusters/lab", nil)
	req.Header.Set("Authorization", "Bearer "+viewerToken)
	hr, err := (&http.Client{Transport: c.tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer hr.Body.Close()
	if err := json.NewDecoder(hr.Body).Decode(&ci); err != nil || !ci.Paused {
		t.Errorf("the pause over TLS did not take (%v, paused=%v)", err, ci.Paused)
	}
}
