package pvesim

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// APIPrefix is where PVE serves its JSON API.
const APIPrefix = "/api2/json"

// Server serves the PVE API of a Model, one HTTPS listener per node; a node's
// listener is closed while the node is down (its API vanishes) and opened again on
// the same port when it is back.
type Server struct {
	model  *Model
	schema *Schema
	// token is "USER@REALM!TOKENID=SECRET" as the Authorization header carries it.
	token string
	log   *slog.Logger

	TLSCert tls.Certificate
	// CAPEM is the self-signed certificate in PEM (a ca_file for the driver);
	// Fingerprint its SHA-256 in PVE's colon-separated hex.
	CAPEM       []byte
	Fingerprint string

	mu        sync.Mutex
	listeners map[string]*nodeListener
}

type nodeListener struct {
	addr string
	srv  *http.Server
	up   bool
}

// NewServer builds a server for model with one API token (tokenID like
// drover@pve!rolling, and its secret).
func NewServer(model *Model, tokenID, secret string, log *slog.Logger) (*Server, error) {
	schema, err := LoadSchema()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{model: model, schema: schema, token: tokenID + "=" + secret, log: log, listeners: map[string]*nodeListener{}}
	if err := s.makeCert(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Server) makeCert() error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "pvesim", Organization: []string{"PVE Cluster Node"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:     []string{"localhost"},
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	s.TLSCert = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	s.CAPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	sum := sha256.Sum256(der)
	hexes := make([]string, len(sum))
	for i, b := range sum {
		hexes[i] = fmt.Sprintf("%02X", b)
	}
	s.Fingerprint = strings.Join(hexes, ":")
	return nil
}

// Listen opens node's API on addr (127.0.0.1:0 for a free port) and returns the
// base URL (https://127.0.0.1:PORT).
func (s *Server) Listen(node, addr string) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", err
	}
	nl := &nodeListener{addr: ln.Addr().String()}
	s.mu.Lock()
	s.listeners[node] = nl
	s.mu.Unlock()
	s.serve(node, nl, ln)
	return "https://" + nl.addr, nil
}

func (s *Server) serve(node string, nl *nodeListener, ln net.Listener) {
	h := s.Handler()
	down := func(w http.ResponseWriter, r *http.Request) {
		// Watch closes the listener on its next tick; until then the node is already
		// rebooting, so its connections drop as a real host's do.
		if !s.model.Online(node) {
			if hj, ok := w.(http.Hijacker); ok {
				if conn, _, err := hj.Hijack(); err == nil {
					_ = conn.Close()
					return
				}
			}
			panic(http.ErrAbortHandler)
		}
		h.ServeHTTP(w, r)
	}
	nl.srv = &http.Server{Handler: http.HandlerFunc(down), TLSConfig: &tls.Config{Certificates: []tls.Certificate{s.TLSCert}}, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)}
	nl.up = true
	go func() { _ = nl.srv.ServeTLS(ln, "", "") }()
}

// Watch closes and reopens node listeners as nodes go down and come back, until ctx
// ends; then it closes them all.
func (s *Server) Watch(ctx context.Context, tick time.Duration) {
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			s.Close()
			return
		case <-t.C:
		}
		s.mu.Lock()
		for node, nl := range s.listeners {
			online := s.model.Online(node)
			switch {
			case nl.up && !online:
				_ = nl.srv.Close()
				nl.up = false
			case !nl.up && online:
				ln, err := net.Listen("tcp", nl.addr)
				if err != nil {
					s.log.Warn("reopen node API", "node", node, "error", err)
					continue
				}
				s.serve(node, nl, ln)
			}
		}
		s.mu.Unlock()
	}
}

// Close stops every listener.
func (s *Server) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, nl := range s.listeners {
		if nl.up {
			_ = nl.srv.Close()
			nl.up = false
		}
	}
}

// Online reports whether node is up.
func (m *Model) Online(node string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, ok := m.nodes[node]
	return ok && n.Online
}

// request is one API call, validated.
type request struct {
	method string
	path   string // schema path, e.g. /nodes/{node}/status
	params map[string]any
}

func (r request) str(name string) string {
	s, _ := scalar(r.params[name])
	return s
}

func (r request) flag(name string) bool {
	switch strings.ToLower(r.str(name)) {
	case "1", "true", "yes", "on":
		return true
	}
	return false
}

func (r request) int(name string) int {
	var n int
	_, _ = fmt.Sscan(r.str(name), &n)
	return n
}

// Handler is the API on one node's port.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(s.serveHTTP)
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.URL.Path, APIPrefix+"/") {
		writeJSON(w, http.StatusNotImplemented, map[string]any{"data": nil, "message": "not an API path"})
		return
	}
	if r.Header.Get("Authorization") != "PVEAPIToken="+s.token {
		// PVE answers 401 without saying which part was wrong.
		writeJSON(w, http.StatusUnauthorized, map[string]any{"data": nil, "message": "authentication failure"})
		return
	}
	rest := strings.TrimPrefix(r.URL.Path, APIPrefix)
	if raw := r.URL.RawPath; raw != "" {
		rest = strings.TrimPrefix(raw, APIPrefix)
	}
	segs := strings.Split(strings.Trim(rest, "/"), "/")
	for i, seg := range segs {
		if u, err := url.PathUnescape(seg); err == nil {
			segs[i] = u
		}
	}
	spath, vars, methods, ok := s.schema.Lookup("/" + strings.Join(segs, "/"))
	if !ok {
		s.refuse(w, r, "path", fmt.Sprintf("no such path %s", rest))
		return
	}
	meth, ok := methods[r.Method]
	if !ok {
		s.refuse(w, r, "method", fmt.Sprintf("method %s not allowed on %s", r.Method, spath))
		return
	}
	params, err := readParams(r)
	if err != nil {
		s.refuse(w, r, "body", err.Error())
		return
	}
	for k, v := range vars {
		if _, dup := params[k]; dup {
			s.refuse(w, r, k, "duplicate parameter (also in path)")
			return
		}
		params[k] = v
	}
	if errs := meth.Validate(params); len(errs) > 0 {
		s.model.Violation("%s %s: %v", r.Method, rest, errs)
		writeJSON(w, http.StatusBadRequest, map[string]any{"data": nil, "errors": errs, "message": "Parameter verification failed."})
		return
	}
	req := request{method: r.Method, path: spath, params: params}
	data, err := s.model.handle(req)
	if err != nil {
		var ae *apiError
		if errors.As(err, &ae) {
			body := map[string]any{"data": nil, "message": ae.msg}
			if ae.errs != nil {
				body["errors"] = ae.errs
			}
			writeJSON(w, ae.status, body)
			return
		}
		writeJSON(w, 500, map[string]any{"data": nil, "message": err.Error()})
		return
	}
	// Answers are checked too: a model answering in a shape PVE never uses would
	// prove nothing about the driver.
	if b, err := json.Marshal(data); err == nil {
		var generic any
		_ = json.Unmarshal(b, &generic)
		if probs := CheckReturn(meth.Returns, generic); len(probs) > 0 {
			s.model.Violation("answer of %s %s does not match the schema: %v", r.Method, spath, probs)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": data})
}

// refuse answers a request the schema does not know, as PVE's parameter check does.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, key, msg string) {
	s.model.Violation("%s %s: %s", r.Method, r.URL.Path, msg)
	writeJSON(w, http.StatusBadRequest, map[string]any{"data": nil, "errors": map[string]string{key: msg}, "message": "Parameter verification failed."})
}

func readParams(r *http.Request) (map[string]any, error) {
	params := map[string]any{}
	for k, v := range r.URL.Query() {
		params[k] = v[len(v)-1]
	}
	if r.Body == nil || r.Method == http.MethodGet || r.Method == http.MethodDelete {
		return params, nil
	}
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 1<<20))
		dec.UseNumber()
		var body map[string]any
		if err := dec.Decode(&body); err != nil && err.Error() != "EOF" {
			return nil, fmt.Errorf("invalid JSON body: %v", err)
		}
		for k, v := range body {
			params[k] = v
		}
		return params, nil
	}
	if err := r.ParseForm(); err != nil {
		return nil, fmt.Errorf("invalid form body: %v", err)
	}
	for k, v := range r.PostForm {
		params[k] = v[len(v)-1]
	}
	return params, nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
