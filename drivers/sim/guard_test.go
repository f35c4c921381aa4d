package sim

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestServe_RefusesBrowserShapedRequests: the sim server on a socket refuses a
// body that is not declared JSON (a cross-site text/plain POST), a Host that is not
// loopback (DNS rebinding) and a cross-origin browser request; the driver's own
// requests pass (issue 10, item 12).
func TestServe_RefusesBrowserShapedRequests(t *testing.T) {
	c, err := ParseCluster([]byte("nodes: [{name: n1, memory_mib: 1024, cpus: 2, updates: [{name: k}]}, {name: n2, memory_mib: 1024, cpus: 2}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, ServeOptions{Cluster: c, Listen: "127.0.0.1:0", Ready: func(a string) { addr <- a }})
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	var base string
	select {
	case a := <-addr:
		base = "http://" + a
	case err := <-done:
		t.Fatal(err)
	case <-time.After(10 * time.Second):
		t.Fatal("sim serve did not start")
	}
	crash := base + "/v1/admin/nodes/n1/crash"
	tests := []struct {
		name   string
		method string
		url    string
		body   string
		header map[string]string
		want   int
	}{
		{"text-plain-body", "POST", base + "/v1/admin/faults", `{"api":[]}`, map[string]string{"Content-Type": "text/plain"}, http.StatusUnsupportedMediaType},
		{"body-without-type", "POST", base + "/v1/admin/faults", `{"api":[]}`, nil, http.StatusUnsupportedMediaType},
		{"rebound-host", "GET", base + "/v1/inventory", "", map[string]string{"Host": "attacker.example:80"}, http.StatusMisdirectedRequest},
		{"rebound-host-post", "POST", crash, "", map[string]string{"Host": "attacker.example"}, http.StatusMisdirectedRequest},
		{"cross-site-post", "POST", crash, "", map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		{"foreign-origin-post", "POST", crash, "", map[string]string{"Origin": "http://attacker.example"}, http.StatusForbidden},
		{"loopback-get", "GET", base + "/v1/inventory", "", nil, http.StatusOK},
		{"localhost-get", "GET", base + "/v1/inventory", "", map[string]string{"Host": "localhost"}, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			req, err := http.NewRequest(tt.method, tt.url, body)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.header {
				if k == "Host" {
					req.Host = v
				} else {
					req.Header.Set(k, v)
				}
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Errorf("status %d, want %d: %s", resp.StatusCode, tt.want, b)
			}
		})
	}
	// None of the refused requests crashed n1; the driver still works through it.
	d, err := Dial(ctx, base, ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	inv, err := d.Inventory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := inv.Node("n1"); !n.Ready() {
		t.Errorf("n1 is %s after refused requests, want up", n.State)
	}
	if err := d.PauseNode(ctx, "n2", "test"); err != nil {
		t.Errorf("the driver's own POST was refused: %v", err)
	}
}
