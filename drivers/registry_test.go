package drivers

import (
	"errors"
	"strings"
	"testing"
	"time"
)

type testConfig struct {
	URL     string        `mapstructure:"url"`
	Scale   float64       `mapstructure:"time_scale"`
	Timeout time.Duration `mapstructure:"timeout"`
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name    string
		raw     map[string]any
		want    testConfig
		wantErr []string
	}{
		{name: "typed-values", raw: map[string]any{"url": "http://127.0.0.1:1", "time_scale": 60, "timeout": "15m"},
			want: testConfig{URL: "http://127.0.0.1:1", Scale: 60, Timeout: 15 * time.Minute}},
		{name: "strings-from-env", raw: map[string]any{"time_scale": "2.5", "timeout": "3s"},
			want: testConfig{Scale: 2.5, Timeout: 3 * time.Second}},
		{name: "unknown-key", raw: map[string]any{"time_scal": 1}, wantErr: []string{"time_scal: unknown key", "known keys: time_scale, timeout, url"}},
		{name: "bad-number", raw: map[string]any{"time_scale": "fast"}, wantErr: []string{"time_scale: cannot parse"}},
		{name: "bad-duration", raw: map[string]any{"timeout": "soon"}, wantErr: []string{"timeout: time: invalid duration"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got testConfig
			err := Decode(tt.raw, &got)
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				if got != tt.want {
					t.Fatalf("Decode = %+v, want %+v", got, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Decode succeeded, want error %q", tt.wantErr)
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Errorf("error %v holds no *FieldError", err)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestPrefixFields(t *testing.T) {
	err := errors.Join(Fieldf("url", "", "bad"), errors.New("other"), Fieldf("time_scale", "use 60", "must be > 0"))
	got := PrefixFields("cluster.sim", err).Error()
	for _, w := range []string{"cluster.sim.url: bad", "other", "cluster.sim.time_scale: must be > 0 (use 60)"} {
		if !strings.Contains(got, w) {
			t.Errorf("%q does not contain %q", got, w)
		}
	}
}

type durationLike int64

func (d *durationLike) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	*d = durationLike(v)
	return err
}

func TestDecode_Durations(t *testing.T) {
	var c struct {
		A time.Duration `mapstructure:"a"`
		B durationLike  `mapstructure:"b"`
	}
	if err := Decode(map[string]any{"a": "2s", "b": "3m"}, &c); err != nil || c.A != 2*time.Second || time.Duration(c.B) != 3*time.Minute {
		t.Fatalf("Decode = %+v, %v", c, err)
	}
	for _, raw := range []map[string]any{{"a": 900}, {"b": 900}, {"b": 1.5}} {
		err := Decode(raw, &c)
		if err == nil || !strings.Contains(err.Error(), "without a unit") {
			t.Errorf("Decode(%v) = %v, want a unit error", raw, err)
		}
	}
}
