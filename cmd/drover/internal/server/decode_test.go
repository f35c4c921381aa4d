package server

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestDecodeStart(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		field   string // "" with wantErr false = valid
		wantErr bool
		check   func(t *testing.T, r StartRequest)
	}{
		{name: "empty-body-is-empty-object", body: "", check: func(t *testing.T, r StartRequest) {
			if r.Cluster != "" || r.Policy != nil {
				t.Errorf("%+v", r)
			}
		}},
		{name: "cluster-and-overrides", body: `{"cluster":"a","policy":{"nodes":["n1","n2"],"force":true,"reboot_timeout":"20m"}}`, check: func(t *testing.T, r StartRequest) {
			if r.Cluster != "a" || r.Policy == nil || len(r.Policy.Nodes) != 2 || r.Policy.Force == nil || !*r.Policy.Force || *r.Policy.RebootTimeout != "20m" {
				t.Errorf("%+v", r)
			}
		}},
		{name: "null-policy", body: `{"policy":null}`, check: func(t *testing.T, r StartRequest) {
			if r.Policy != nil {
				t.Errorf("%+v", r)
			}
		}},
		{name: "unknown-top-field", body: `{"clusters":"a"}`, wantErr: true, field: "clusters"},
		{name: "unknown-policy-field", body: `{"policy":{"health_gate":{}}}`, wantErr: true, field: "policy.health_gate"},
		{name: "policy-not-object", body: `{"policy":3}`, wantErr: true, field: "policy"},
		{name: "mistyped-policy-field", body: `{"policy":{"nodes":"n1"}}`, wantErr: true, field: "policy.nodes"},
		{name: "mistyped-cluster", body: `{"cluster":7}`, wantErr: true, field: "cluster"},
		{name: "trailing-value", body: `{}{"x":1}`, wantErr: true},
		{name: "truncated", body: `{"cluster":"a"`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := decodeStart([]byte(tt.body))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil {
				var be *BodyError
				if !errors.As(err, &be) || be.Status != 400 || be.Field != tt.field {
					t.Errorf("err = %#v, want a 400 BodyError on field %q", err, tt.field)
				}
				return
			}
			tt.check(t, r)
		})
	}
}

// FuzzDecodeStart: no body makes the decoder panic; what it accepts has no unknown
// field (re-decoding its own encoding agrees), and what it refuses is a 400 with a
// message that does not echo long stretches of the body.
func FuzzDecodeStart(f *testing.F) {
	for _, seed := range []string{
		``, `{}`, `{"cluster":"demo"}`, `{"policy":{"max_parallel_migrations":2,"nodes":["a"],"reboot_timeout":"15m"}}`,
		`{"policy":{"pre_hook":{"command":["id"]}}}`, `{"cluster":"a"}{}`, `[`, `{"policy":{"nodes":[1]}}`, `null`, `"x"`,
		`{"policy":{"force":true,"override_reserve":false,"failback":"immediate","max_failed_nodes":-1}}`,
		`{"policy":{"nodes":[]}}`, `{"policy":{}}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := decodeStart(body)
		if err != nil {
			var be *BodyError
			if !errors.As(err, &be) || be.Status != 400 || be.Msg == "" {
				t.Fatalf("error %#v is not a 400 BodyError with a message", err)
			}
			if len(body) > 40 && strings.Contains(be.Error(), string(body)) {
				t.Fatalf("error echoes the body: %v", be)
			}
			return
		}
		again, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		back, err := decodeStart(again)
		if err != nil || !reflect.DeepEqual(back, req) {
			t.Fatalf("accepted %q, but its encoding %s decodes to %+v, %v", body, again, back, err)
		}
		if req.Policy != nil {
			var p = testPolicyForFuzz()
			if err := applyOverrides(*req.Policy, &p); err != nil {
				var be *BodyError
				if !errors.As(err, &be) || !strings.HasPrefix(be.Field, "policy.") {
					t.Fatalf("apply error %#v does not name a policy field", err)
				}
			}
		}
	})
}
