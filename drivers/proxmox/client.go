package proxmox

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	pxapi "github.com/luthermonson/go-proxmox"

	"github.com/droverhq/drover/drivers"
)

// api is the PVE API through go-proxmox, on retrying HTTP with the configured TLS
// check. Every error it returns has the secret scrubbed out.
type api struct {
	c       *pxapi.Client
	secret  string
	timeout time.Duration
}

func resolvePath(baseDir, p string) string {
	if p == "" || filepath.IsAbs(p) || baseDir == "" {
		return p
	}
	return filepath.Join(baseDir, p)
}

// tlsConfig builds the TLS check: a CA file, a pinned certificate fingerprint (PVE's
// self-signed node certificates), insecure, or the system's CAs.
func tlsConfig(cfg Config, baseDir string) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	switch {
	case cfg.CAFile != "":
		pem, err := os.ReadFile(resolvePath(baseDir, cfg.CAFile))
		if err != nil {
			return nil, fmt.Errorf("%w", &drivers.FieldError{Field: "ca_file", Problem: fmt.Sprintf("read: %v", err), Fix: "point ca_file to the cluster's CA, a copy of /etc/pve/pve-root-ca.pem"})
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, drivers.Fieldf("ca_file", "point ca_file to a PEM file, a copy of /etc/pve/pve-root-ca.pem", "no PEM certificate in %s", cfg.CAFile)
		}
		tc.RootCAs = pool
	case cfg.Fingerprint != "":
		want := strings.ToLower(strings.ReplaceAll(cfg.Fingerprint, ":", ""))
		// The chain is not checked against a CA; the leaf must be the pinned one.
		tc.InsecureSkipVerify = true
		tc.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return errors.New("no certificate presented")
			}
			sum := sha256.Sum256(raw[0])
			if hex.EncodeToString(sum[:]) != want {
				return &fingerprintError{got: hex.EncodeToString(sum[:])}
			}
			return nil
		}
	case cfg.Insecure:
		tc.InsecureSkipVerify = true
	}
	return tc, nil
}

type fingerprintError struct{ got string }

func (e *fingerprintError) Error() string {
	return "certificate fingerprint does not match the configured fingerprint"
}

func newAPI(cfg Config, secret, baseDir string, log *slog.Logger) (*api, error) {
	tc, err := tlsConfig(cfg, baseDir)
	if err != nil {
		return nil, err
	}
	rc := retryablehttp.NewClient()
	rc.HTTPClient = &http.Client{Transport: &http.Transport{
		TLSClientConfig:     tc,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		TLSHandshakeTimeout: 10 * time.Second,
		IdleConnTimeout:     30 * time.Second,
	}}
	rc.Logger = nil
	rc.RetryMax = 2
	rc.RetryWaitMin = 200 * time.Millisecond
	rc.RetryWaitMax = 2 * time.Second
	rc.ErrorHandler = retryablehttp.PassthroughErrorHandler
	rc.CheckRetry = checkRetry
	hc := rc.StandardClient()
	hc.Timeout = cfg.RequestTimeout
	base := make([]string, len(cfg.Endpoints))
	for i, e := range cfg.Endpoints {
		base[i] = strings.TrimRight(e, "/") + "/api2/json"
	}
	opts := []pxapi.Option{
		pxapi.WithHTTPClient(hc),
		pxapi.WithAPIToken(cfg.TokenID, secret),
		pxapi.WithLogger(quietLogger{}),
		pxapi.WithUserAgent("drover"),
		// A node that reboots is benched a short while only: it is back in minutes.
		pxapi.WithEndpointCooldown(2*time.Second, 30*time.Second),
	}
	if len(base) > 1 {
		opts = append(opts, pxapi.WithAdditionalEndpoints(base[1:]...))
	}
	_ = log
	return &api{c: pxapi.NewClient(base[0], opts...), secret: secret, timeout: cfg.RequestTimeout}, nil
}

// checkRetry retries only reads, and only on connection errors and gateway statuses:
// a POST that reached PVE may have started a task, and 595 means the node is down,
// which retrying at once does not change.
func checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	if resp != nil && resp.Request != nil && resp.Request.Method != http.MethodGet {
		return false, nil
	}
	if err != nil {
		// Without a response the method is unknown here: only a failed dial proves
		// the request never left, and only then is a retry safe for a POST too.
		return isDialErr(err), nil
	}
	switch resp.StatusCode {
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true, nil
	}
	return false, nil
}

func isDialErr(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// quietLogger drops go-proxmox's debug output (it logs bodies).
type quietLogger struct{}

func (quietLogger) Errorf(string, ...any) {}
func (quietLogger) Warnf(string, ...any)  {}
func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Debugf(string, ...any) {}

// scrub removes the secret from err's text (belt and braces: PVE never echoes it).
func (a *api) scrub(err error) error {
	if err == nil || a.secret == "" || !strings.Contains(err.Error(), a.secret) {
		return err
	}
	return &scrubbed{msg: strings.ReplaceAll(err.Error(), a.secret, "[redacted]"), err: err}
}

type scrubbed struct {
	msg string
	err error
}

func (s *scrubbed) Error() string { return s.msg }

// Unwrap keeps errors.Is/As working for sentinels; their texts hold no secret.
func (s *scrubbed) Unwrap() error { return s.err }

// classify maps an API error to the drivers' sentinels.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var ae *pxapi.APIError
	switch {
	case errors.As(err, &ae) && (ae.StatusCode == 595 || ae.StatusCode == 596):
		return fmt.Errorf("%w: %w", drivers.ErrUnavailable, err)
	case errors.As(err, &ae) && ae.StatusCode >= 500 && strings.Contains(ae.Message, "does not exist"):
		return fmt.Errorf("%w: %w", drivers.ErrNotFound, err)
	case errors.As(err, &ae):
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("%w: %w", drivers.ErrUnavailable, err)
}

func (a *api) do(ctx context.Context, fn func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	return a.scrub(classify(fn(ctx)))
}

func (a *api) get(ctx context.Context, path string, q url.Values, out any) error {
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	return a.do(ctx, func(ctx context.Context) error { return a.c.Get(ctx, path, out) })
}

func (a *api) post(ctx context.Context, path string, body map[string]any, out any) error {
	return a.do(ctx, func(ctx context.Context) error { return a.c.Post(ctx, path, body, out) })
}

// explainOpen turns the first call's failure into an error naming the key to fix.
func explainOpen(err error, endpoints []string) error {
	var ae *pxapi.APIError
	var fp *fingerprintError
	var unknown x509.UnknownAuthorityError
	var verify *tls.CertificateVerificationError
	var host x509.HostnameError
	switch {
	case errors.As(err, &ae) && (ae.StatusCode == 401 || ae.StatusCode == 403):
		return drivers.Fieldf("token_id", "check token_id and the secret in token_secret_env (pveum user token list USER); the token needs privilege separation off or its own role, see the README", "the API refused the token: %d %s", ae.StatusCode, ae.Message)
	case errors.As(err, &fp):
		return drivers.Fieldf("fingerprint", "compare with `pvenode cert info` on the node and update fingerprint", "TLS check of %s failed: %v", endpoints[0], fp)
	case errors.As(err, &unknown), errors.As(err, &verify), errors.As(err, &host):
		return drivers.Fieldf("ca_file", "set ca_file to a copy of /etc/pve/pve-root-ca.pem, or fingerprint to the node certificate's SHA-256 (insecure: true only for tests)", "TLS check of the API failed: %v", err)
	}
	return fmt.Errorf("reach the Proxmox API at %s: %w (check endpoints and that pveproxy listens on port 8006)", strings.Join(endpoints, ", "), err)
}
