package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// writeKeyPair writes a self-signed certificate and its key as cert.pem and key.pem
// in dir.
func writeKeyPair(t *testing.T, dir string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), NotAfter: time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "cert.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	writeFile(t, dir, "key.pem", string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})))
}

// TestConfig_ServeTLSPaths: relative paths from the file resolve against its folder;
// from --set or the environment against the working directory.
func TestConfig_ServeTLSPaths(t *testing.T) {
	wd, cfgDir := t.TempDir(), t.TempDir()
	writeKeyPair(t, filepath.Join(wd, "wdcerts"))       // only reachable from the working directory
	writeKeyPair(t, filepath.Join(cfgDir, "filecerts")) // only reachable from the file's folder
	writeFile(t, cfgDir, "c.yaml", "nodes: [{name: n1, memory_mib: 1024, cpus: 2}]\n")
	plain := writeFile(t, cfgDir, "plain.yaml", baseFile)
	withTLS := writeFile(t, cfgDir, "tls.yaml", baseFile+"server: {tls: {cert: filecerts/cert.pem, key: filecerts/key.pem}}\n")
	t.Chdir(wd)
	tests := []struct {
		name string
		file string
		sets []string
		env  map[string]string
		want string // folder of the files loaded
	}{
		{name: "file", file: withTLS, want: filepath.Join(cfgDir, "filecerts")},
		{name: "set", file: plain, sets: []string{"server.tls.cert=wdcerts/cert.pem", "server.tls.key=wdcerts/key.pem"}, want: filepath.Join(wd, "wdcerts")},
		{name: "set-beats-file", file: withTLS, sets: []string{"server.tls.cert=wdcerts/cert.pem", "server.tls.key=wdcerts/key.pem"}, want: filepath.Join(wd, "wdcerts")},
		{name: "env", file: plain, env: map[string]string{"DROVER_SERVER_TLS_CERT": "wdcerts/cert.pem", "DROVER_SERVER_TLS_KEY": "wdcerts/key.pem"}, want: filepath.Join(wd, "wdcerts")},
		{name: "env-beats-file", file: withTLS, env: map[string]string{"DROVER_SERVER_TLS_CERT": "wdcerts/cert.pem", "DROVER_SERVER_TLS_KEY": "wdcerts/key.pem"}, want: filepath.Join(wd, "wdcerts")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			cfg, err := Load(LoadOptions{File: tt.file, Sets: tt.sets})
			if err != nil {
				t.Fatal(err)
			}
			sc, err := cfg.Serve()
			if err != nil {
				t.Fatalf("Serve: %v", err)
			}
			if sc.TLS == nil || sc.Server.TLS.Cert != filepath.Join(tt.want, "cert.pem") || sc.Server.TLS.Key != filepath.Join(tt.want, "key.pem") {
				t.Errorf("tls = %+v (loaded %v), want the files in %s", sc.Server.TLS, sc.TLS != nil, tt.want)
			}
		})
	}
}
