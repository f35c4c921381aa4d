package hyperv_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/droverhq/drover/drivers/hyperv/wsmantest"
)

// TestClientCertificateAuth: auth: certificate sends the client certificate in the
// TLS handshake and WS-Man's mutual profile header; the server verifies the chain
// against its CA and the subject against its users. A certificate of another CA is
// refused in the handshake.
func TestClientCertificateAuth(t *testing.T) {
	m := threeNodes(1, wsmantest.Timing{})
	c := startCluster(t, m)
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cert, key, err := c.CA.ClientCert("drover")
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := write("drover.pem", cert), write("drover.key", key)
	useCert := func(cf, kf string) func(_, w map[string]any) {
		return func(_, w map[string]any) {
			w["auth"], w["cert_file"], w["key_file"] = "certificate", cf, kf
			delete(w, "password_env")
		}
	}
	d := mustDriver(t, c, useCert(certFile, keyFile))
	if inv, err := d.Inventory(t.Context()); err != nil || len(inv.Nodes) != 3 {
		t.Fatalf("inventory with a client certificate: %+v, %v", inv, err)
	}
	if c.Endpoints["HV1"].Count("cert-ok") == 0 {
		t.Error("the server saw no certificate logon")
	}
	other, err := wsmantest.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	oc, ok, _ := other.ClientCert("drover")
	d2 := mustDriver(t, c, useCert(write("other.pem", oc), write("other.key", ok)))
	if _, err := d2.Inventory(t.Context()); err == nil || !strings.Contains(err.Error(), "tls") {
		t.Errorf("inventory with a certificate of another CA: %v; want a TLS refusal", err)
	}
	stranger, sk, _ := c.CA.ClientCert("mallory")
	d3 := mustDriver(t, c, useCert(write("m.pem", stranger), write("m.key", sk)))
	if _, err := d3.Inventory(t.Context()); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("inventory with a certificate of an unknown user: %v; want 401", err)
	}
}
