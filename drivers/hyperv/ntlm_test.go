package hyperv_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/droverhq/drover/drivers"
	"github.com/droverhq/drover/drivers/hyperv/wsmantest"
)

// ntlmOnly makes every endpoint of c accept NTLMv2 only (no Basic).
func ntlmOnly(c *wsmantest.Cluster) {
	for _, e := range c.Endpoints {
		e.SetAuth(true, true)
	}
}

// TestNTLMOverHTTPS: the driver with auth: ntlm (masterzen/winrm over
// Azure/go-ntlmssp) authenticates with an NTLMv2 handshake the server verifies
// against the password, and a wrong password is refused.
func TestNTLMOverHTTPS(t *testing.T) {
	m := threeNodes(2, wsmantest.Timing{})
	c := startCluster(t, m)
	ntlmOnly(c)
	d := mustDriver(t, c, func(_, w map[string]any) { w["auth"] = "ntlm" })
	inv, err := d.Inventory(t.Context())
	if err != nil || len(inv.Nodes) != 3 {
		t.Fatalf("inventory over NTLM: %+v, %v", inv, err)
	}
	ok, challenges, strays := 0, 0, 0
	for _, e := range c.Endpoints {
		ok += e.Count("ntlm-ok")
		challenges += e.Count("ntlm-challenge")
		strays += e.Count("ntlm-no-challenge")
	}
	t.Logf("%d challenges, %d verified, %d AUTHENTICATE messages on another connection (retried)", challenges, ok, strays)
	if ok == 0 || challenges < ok {
		t.Errorf("server saw %d NTLM challenges and %d verified AUTHENTICATE messages", challenges, ok)
	}
	cfg := winrmSection(t, c, func(_, w map[string]any) { w["auth"] = "ntlm" })
	t.Setenv(pwEnv, "wrong-"+testPW)
	wrong := openWithCurrentEnv(t, cfg)
	_, err = wrong.Inventory(t.Context())
	var fe *drivers.FieldError
	if !errors.As(err, &fe) || fe.Field != "cluster.hyperv.winrm.username" || strings.Contains(err.Error(), testPW) {
		t.Errorf("NTLM with a wrong password: %v; want the 401 field error", err)
	}
	noRejected(t, m)
}
