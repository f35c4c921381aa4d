package hyperv_test

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/droverhq/drover/drivers/hyperv/wsmantest"
)

// TestHostGoesAway: with each node in its own network namespace, a rebooting node is
// gone from the network (a connect times out instead of being refused), then answers
// again with a new boot time, still paused.
func TestHostGoesAway(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root (make e2e-hyperv and .ci/run run as root)")
	}
	m := wsmantest.NewModel("HVCLUSTER01", 1, wsmantest.Timing{Down: 1500 * time.Millisecond},
		[]wsmantest.NodeSpec{{Name: "HV1", MemoryMiB: 1024, CPUs: 2}, {Name: "HV2", MemoryMiB: 1024, CPUs: 2}}, nil)
	ns, err := wsmantest.NewNetns([]string{"HV1", "HV2"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Close)
	c, err := wsmantest.StartClusterIn(m, testUser, testPW, ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	addr := c.Endpoints["HV2"].Addr()
	if host, _, _ := net.SplitHostPort(addr); !ns.IP("HV2").Equal(net.ParseIP(host)) {
		t.Fatalf("HV2 listens on %s, not in its namespace (%s)", addr, ns.IP("HV2"))
	}
	d := mustDriver(t, c, func(_, w map[string]any) { w["connect_timeout"] = "300ms" })
	before := m.Nodes()[1].Boot
	if err := d.PauseNode(t.Context(), "HV2", "drover-run:ns"); err != nil {
		t.Fatal(err)
	}
	if err := d.RebootNode(t.Context(), "HV2"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "HV2 down", func() bool { return m.Nodes()[1].State == "Down" })
	conn, err := net.DialTimeout("tcp", addr, 300*time.Millisecond)
	var ne net.Error
	if err == nil {
		conn.Close()
		t.Fatal("connected to a node that is down")
	}
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("connect to a node that is down: %v; want a timeout (the host is gone), not a refusal", err)
	}
	if ok, err := d.NodeReady(t.Context(), "HV2"); ok || err != nil {
		t.Errorf("ready while gone: %v, %v", ok, err)
	}
	waitFor(t, 10*time.Second, "HV2 ready", func() bool { ok, _ := d.NodeReady(t.Context(), "HV2"); return ok })
	n := m.Nodes()[1]
	if !n.Boot.After(before) || n.State != "Paused" || n.Description != "drover-run:ns" {
		t.Errorf("HV2 back: boot %v (was %v), %s, mark %q; want a new boot, Paused, drover-run:ns", n.Boot, before, n.State, n.Description)
	}
	if errs := c.RestartErrors(); len(errs) > 0 {
		t.Errorf("restart: %v", errs)
	}
}
