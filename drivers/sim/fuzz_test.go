package sim

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

// FuzzServer_Bodies sends arbitrary bodies to the routes that take one: the
// server must answer 2xx, 400, 404 or 409 with a JSON body, never 5xx or panic.
// Each input gets a fresh server: a valid body for /v1/admin/faults may inject
// API faults on purpose, and those 503s must not be blamed on the next input.
func FuzzServer_Bodies(f *testing.F) {
	routes := []string{"/v1/migrations", "/v1/admin/faults", "/v1/nodes/n1/pause", "/v1/migrations/m-000001/cancel"}
	for i, b := range []string{
		`{"vm":"web-1","to":"n2"}`, `{"vm":"web-1","from":"n1","to":"n2"}`, `{"vm":"web-1","to":"n3"}`,
		`{"vm":"../x","to":"n2"}`, `{"vm":"web-1","to":"n2","extra":1}`, `{"vm":"web-1","to":"n2"} {}`, `null`, `[]`, ``,
		`{"kind":"api_errors","burst":1,"path":"/v1/none"}`, `{"kind":"node_crash","node":"n2","at_seconds":5}`,
		`{"kind":"migration_fail","probability":2}`, `{}`,
	} {
		f.Add(uint8(i), []byte(b))
	}
	cluster := mustParse(f, testCluster)
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		srv, err := NewServer(cluster, ServerOptions{TimeScale: 1})
		if err != nil {
			t.Fatal(err)
		}
		h := srv.Handler()
		path := routes[int(route)%len(routes)]
		req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK, http.StatusBadRequest, http.StatusNotFound, http.StatusConflict:
		default:
			t.Fatalf("POST %s %q: status %d %s", path, body, rec.Code, rec.Body)
		}
		var v any
		if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
			t.Fatalf("POST %s: answer is not JSON: %q", path, rec.Body)
		}
		if rec.Code != http.StatusOK {
			var e ErrorResponse
			if json.Unmarshal(rec.Body.Bytes(), &e); e.Error == "" || e.Kind == "" {
				t.Fatalf("POST %s: error answer without error/kind: %q", path, rec.Body)
			}
		}
	})
}

func TestDecodeStrict(t *testing.T) {
	tests := []struct {
		name, body string
		ok         bool
	}{
		{"valid", `{"vm":"a","to":"b"}`, true},
		{"unknown-field", `{"vm":"a","to":"b","force":true}`, false},
		{"trailing-data", `{"vm":"a","to":"b"}{"vm":"c"}`, false},
		{"wrong-type", `{"vm":1,"to":"b"}`, false},
		{"not-json", `vm=a`, false},
		{"too-big", `{"vm":"` + string(bytes.Repeat([]byte("a"), maxBodyBytes)) + `"}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r StartMigrationRequest
			if err := decodeStrict([]byte(tt.body), &r); (err == nil) != tt.ok {
				t.Errorf("decodeStrict(%.40q) = %v, want ok %t", tt.body, err, tt.ok)
			}
		})
	}
}
